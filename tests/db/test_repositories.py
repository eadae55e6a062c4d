"""Repository writes whose decision is the write itself: stale profile saves, watermarks."""

from __future__ import annotations

from crt_loops.db import personality, progress
from crt_loops.db.journal import list_entries
from crt_loops.db.session import SessionDB


def _save(db: SessionDB, *, expected: int, version: int, seen: int) -> bool:
    change = personality.ProfileChange(
        changes=[{"field": "tone", "old": "neutral", "new": "warm"}],
        reason="tone: thanks",
        public_profile={"tone": "warm"},
        title="How I talk in this thread",
        body="warmer",
        meta={"version": version},
    )
    return personality.save_profile(
        db,
        loop="personality",
        thread_id="default",
        up_to_id=seen,
        expected_version=expected,
        profile={"tone": "warm", "messages_seen": seen},
        version=version,
        now=db.clock(),
        change=change,
    )


def test_a_stale_profile_save_writes_nothing(db: SessionDB) -> None:
    assert _save(db, expected=0, version=1, seen=5)
    assert not _save(db, expected=0, version=1, seen=9)  # a second "first" save
    assert not _save(db, expected=2, version=3, seen=9)  # a version that was never stored
    stored = personality.stored_profile(db, "default")
    assert stored is not None and (stored.version, stored.profile["messages_seen"]) == (1, 5)
    assert len(personality.history(db, "default", limit=10)) == 1
    assert [e.entry_type for e in list_entries(db, "default")] == ["personality"]
    assert db.thread_watermark("personality", "default") == 5
    assert _save(db, expected=1, version=2, seen=9)
    stored = personality.stored_profile(db, "default")
    assert stored is not None and stored.version == 2
    assert db.thread_watermark("personality", "default") == 9


def test_watermarks_only_rise_and_candidates_follow_them(db: SessionDB) -> None:
    first = db.add_message("default", "user", "one")
    second = db.add_message("default", "user", "two")
    assert progress.candidates(db, "reflection", "messages") == [
        progress.Candidate("default", 0, second.id)
    ]
    db.set_thread_watermark("reflection", "default", second.id)
    db.set_thread_watermark("reflection", "default", first.id)  # never lowers it
    assert db.thread_watermark("reflection", "default") == second.id
    assert progress.candidates(db, "reflection", "messages") == []
    assert progress.first_unprocessed(db, "reflection", "messages", "default", 0) is None
    assert progress.committed_high_id(db, "messages") == second.id


def test_since_last_reflection_is_state_and_importance_sum_in_one(db: SessionDB) -> None:
    from crt_loops.db import reflection

    db.ensure_thread("t")
    ids = [db.add_message("t", "user", f"m{i}").id for i in range(4)]
    assert reflection.since_last_reflection(db, "t", up_to_id=ids[-1]) == (0, 0)
    reflection.save_scores(
        db,
        {ids[0]: (5, "a", "heuristic"), ids[2]: (7, "b", "heuristic")},
        loop="reflection",
        thread_id="t",
        done_up_to=None,
    )
    assert reflection.since_last_reflection(db, "t", up_to_id=ids[-1]) == (0, 12)
    assert reflection.since_last_reflection(db, "t", up_to_id=ids[1]) == (0, 5)
    reflection.add_reflection(
        db, loop="reflection", thread_id="t", up_to_id=ids[1], title="", body="b", meta={}, now=1.0
    )
    scored = {m.id: m.importance or 0 for m in db.list_messages("t", limit=10)}
    for up_to in ids:
        last = reflection.state(db, "t").last_message_id
        want = (last, sum(v for mid, v in scored.items() if last < mid <= up_to))
        assert reflection.since_last_reflection(db, "t", up_to_id=up_to) == want
    assert reflection.since_last_reflection(db, "other", up_to_id=ids[-1]) == (0, 0)
    # A caller that has read every message after read_from sums them itself when the last
    # reflection is at or past it; otherwise it gets the sum as without read_from.
    last = reflection.state(db, "t").last_message_id
    for read_from in (0, ids[0], last, last + 1, ids[-1]):
        full = reflection.since_last_reflection(db, "t", up_to_id=ids[-1])
        got = reflection.since_last_reflection(db, "t", up_to_id=ids[-1], read_from=read_from)
        assert got == ((last, None) if last >= read_from else full), read_from
    assert reflection.since_last_reflection(db, "other", up_to_id=ids[-1], read_from=0) == (0, None)


def test_the_reflection_pass_picks_the_rows_most_important_would(db: SessionDB) -> None:
    # Right after a reflection (or before the first), the pass has read every message since
    # it and picks the shown ones itself: the same rows, in the same order, as the query.
    import random

    from crt_loops.db import reflection
    from crt_loops.mind.reflection import _most_important

    rng = random.Random(4)
    db.ensure_thread("t")
    ids = [db.add_message("t", rng.choice(["user", "assistant"]), f"m{i}").id for i in range(40)]
    reflection.save_scores(  # some scored already, ties among them
        db,
        {mid: (rng.randint(1, 4), "before", "llm") for mid in ids[:25] if rng.random() < 0.5},
        loop="reflection",
        thread_id="t",
        done_up_to=None,
    )
    messages = db.messages_in_range("t", 0, ids[-1])
    scores = {
        m.id: (rng.randint(1, 10), f"r{m.id}", "heuristic")
        for m in messages
        if m.importance is None
    }
    reflection.save_scores(db, scores, loop="reflection", thread_id="t", done_up_to=None)
    for after_id in (0, ids[3], ids[20], ids[-2], ids[-1]):
        for limit in (1, 5, 20, 100):
            want = reflection.most_important(
                db, "t", after_id=after_id, up_to_id=ids[-1], limit=limit
            )
            got = _most_important(messages, scores, after_id=after_id, limit=limit)
            assert got == want, (after_id, limit)
