"""The agent's history across threads: what each piece counts, and the indexes it reads."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from support.clock import FakeClock

from crt_loops.core.enums import ActionState
from crt_loops.db import agent_history, heartbeats
from crt_loops.db.heartbeats import OutboxRow
from crt_loops.db.session import SessionDB

DAY = 86_400.0
_runs = itertools.count(1)


def act(
    db: SessionDB,
    clock: FakeClock,
    kind: str,
    payload: dict[str, Any],
    state: ActionState,
    *,
    ago: float = 3600.0,
    ledger_id: str | None = None,
    content_hash: str | None = None,
) -> None:
    """One action of its own run, last changed ``ago`` seconds before the clock's now."""
    now = clock.now
    clock.now = now - ago
    run_id = f"run-{next(_runs)}"
    heartbeats.start_run(
        db, run_id=run_id, thread_id="default", trigger="schedule", dry_run=False, now=clock.now
    )
    first = ActionState.PENDING if state is ActionState.SENT else state
    row = OutboxRow(
        seq=0,
        type=kind,
        payload=payload,
        state=first,
        idempotency_key=f"key-{run_id}",
        content_hash=content_hash,
    )
    heartbeats.add_actions(db, run_id, "default", [row])
    if state is ActionState.SENT:
        heartbeats.update_action(
            db, row.idempotency_key, state=ActionState.SENT, ledger_id=ledger_id
        )
    clock.now = now


def seed(db: SessionDB, clock: FakeClock) -> None:
    sent, pending, proposed = ActionState.SENT, ActionState.PENDING, ActionState.PROPOSED
    act(db, clock, "vote", {"post_id": "p1", "direction": "up"}, sent, ledger_id="p1")
    act(db, clock, "vote", {"post_id": "p0", "direction": "up"}, sent, ledger_id="p0", ago=40 * DAY)
    post = {"submolt": "general", "title": "t", "content": "c"}
    act(db, clock, "post", post, sent, ledger_id="mine1", content_hash="h-post", ago=2 * DAY)
    reply = {"post_id": "p2", "content": "r", "parent_id": "c1"}
    act(db, clock, "comment", reply, sent, ledger_id="cm1", content_hash="h1")
    act(db, clock, "comment", {"post_id": "p3", "content": "top"}, sent, ledger_id="cm2")
    act(db, clock, "comment", {"post_id": "p7", "content": "x", "parent_id": ""}, sent)
    act(db, clock, "comment", {"post_id": "p2", "content": "r2", "parent_id": "c2"}, pending)
    act(db, clock, "comment", {"post_id": "p4", "content": "top"}, pending, content_hash="h4")
    act(db, clock, "comment", {"post_id": "p2", "content": "r3", "parent_id": "c3"}, proposed)
    act(db, clock, "comment", {"post_id": "p5", "content": "top"}, proposed)  # not yet a thread
    rejected = {"post_id": "p2", "content": "r4", "parent_id": "c4"}
    act(db, clock, "comment", rejected, ActionState.REJECTED)
    dry = {"post_id": "p6", "content": "top"}
    act(db, clock, "comment", dry, ActionState.DRY_RUN, content_hash="h6")
    act(db, clock, "follow", {"name": "bob"}, sent, ledger_id="follow:bob")
    act(db, clock, "subscribe", {"submolt": "art"}, sent, ledger_id="subscribe:art")


def test_each_piece_of_the_history(db: SessionDB, clock: FakeClock) -> None:
    seed(db, clock)
    past = agent_history.agent_history(db, since=clock.now - DAY)
    assert past.voted_post_ids == {"p1"}  # p0 is older than HISTORY_HORIZON
    assert past.own_post_ids == {"mine1"}
    # Sent, pending or proposed answers count; a rejected one does not.
    assert past.answered_comment_ids == {"c1", "c2", "c3"}
    # Sent or pending top-level comments (an empty parent is not the top level).
    assert past.commented_post_ids == {"p3", "p4"}
    assert past.social_done == {"follow:bob", "subscribe:art"}
    assert past.recent_hashes == {"h1", "h4", "h6"}  # the post's is older than a day
    assert past.comments_last_24h == 3
    assert past.last_comment_at == pytest.approx(clock.now - 3600)
    assert past.last_post_at == pytest.approx(clock.now - 2 * DAY)


ABOUTS = [
    agent_history.About(frozenset({"p1", "mine1", "p3", "p4", "p9"}), frozenset({"c1", "c3"})),
    agent_history.About(frozenset({"p0", "p2", "p5", "p6", "p7"}), frozenset({"c2", "c4", ""})),
    agent_history.About(frozenset(), frozenset({"c1", "c2", "c3"})),
    agent_history.About(frozenset({"p1", "p3", "mine1"}), frozenset()),
    agent_history.About(frozenset(), frozenset()),
]


@pytest.mark.parametrize("about", ABOUTS, ids=range(len(ABOUTS)))
def test_a_read_about_some_ids_is_the_whole_read_cut_to_them(
    db: SessionDB, clock: FakeClock, about: agent_history.About
) -> None:
    seed(db, clock)
    whole = agent_history.agent_history(db, since=clock.now - DAY)
    cut = agent_history.agent_history(db, since=clock.now - DAY, about=about)
    assert cut.voted_post_ids == whole.voted_post_ids & about.posts
    assert cut.own_post_ids == whole.own_post_ids & about.posts
    assert cut.commented_post_ids == whole.commented_post_ids & about.posts
    assert cut.answered_comment_ids == whole.answered_comment_ids & about.comments
    # Read whole whatever the ids: they are not about a post or a comment.
    assert (cut.social_done, cut.recent_hashes) == (whole.social_done, whole.recent_hashes)
    assert (cut.last_post_at, cut.last_comment_at, cut.comments_last_24h) == (
        whole.last_post_at,
        whole.last_comment_at,
        whole.comments_last_24h,
    )


def test_a_changed_after_read_sees_only_what_changed(db: SessionDB, clock: FakeClock) -> None:
    seed(db, clock)
    first = agent_history.agent_history(db, since=clock.now - DAY)
    read_at = clock.now
    clock.advance(60)
    act(db, clock, "comment", {"post_id": "p9", "content": "new"}, ActionState.SENT, ago=0)
    later = agent_history.agent_history(db, since=clock.now - DAY, changed_after=read_at)
    assert later.commented_post_ids == {"p9"} and later.comments_last_24h == 1
    assert later.voted_post_ids == frozenset() and later.answered_comment_ids == frozenset()
    merged = agent_history.merge_history(first, later)
    assert merged.commented_post_ids == {"p3", "p4", "p9"}


@pytest.mark.sqlite_only
def test_the_comment_reads_use_the_partial_indexes(db: SessionDB, clock: FakeClock) -> None:
    """A ``state IN (...)`` read every action of the horizon through ix_hb_actions_updated (0.6
    ms of each heartbeat with 20,000 past actions); each state is its own indexed read now."""
    seed(db, clock)
    conn = db.read()
    statements: list[str] = []
    conn.set_trace_callback(statements.append)
    try:
        agent_history.agent_history(db, since=clock.now - DAY)
    finally:
        conn.set_trace_callback(None)
    plans = {
        sql: " | ".join(str(r[3]) for r in conn.execute(f"EXPLAIN QUERY PLAN {sql}"))
        for sql in statements
    }
    comment_reads = {sql: plan for sql, plan in plans.items() if "'comment'" in sql}
    assert len(comment_reads) >= 3
    for sql, plan in comment_reads.items():
        assert any(
            index in plan
            for index in ("ix_hb_actions_sent", "ix_hb_actions_pending", "ix_hb_actions_owner")
        ), (sql, plan)
    assert not [plan for plan in plans.values() if "SCAN heartbeat_actions" in plan]


@pytest.mark.sqlite_only
def test_a_read_about_ids_looks_each_id_up(db: SessionDB, clock: FakeClock) -> None:
    """Read about the ids a prompt shows, votes, own posts, answers and top-level comments are
    found through migration 7's indexes, an id at a time: never through a time range that holds
    every action of the last 30 days."""
    seed(db, clock)
    conn = db.read()
    statements: list[str] = []
    conn.set_trace_callback(statements.append)
    try:
        agent_history.agent_history(db, since=clock.now - DAY, about=ABOUTS[0])
    finally:
        conn.set_trace_callback(None)
    plans = {
        sql: " | ".join(str(r[3]) for r in conn.execute(f"EXPLAIN QUERY PLAN {sql}"))
        for sql in statements
        if "ledger_id IN (" in sql or "_id') IN (" in sql  # the reads about ids
    }
    used = {
        index
        for plan in plans.values()
        for index in (
            "ix_hb_actions_sent_id (type=? AND ledger_id=?",
            "ix_hb_actions_comment_parent (<expr>=?)",
            "ix_hb_actions_comment_post (<expr>=?)",
        )
        if index in plan
    }
    assert len(used) == 3, plans
    assert len(plans) == 4, plans  # votes, own posts, top-level comments, answers
    time_ranges = ("ix_hb_actions_sent (", "ix_hb_actions_updated", "ix_hb_actions_pending")
    assert not [p for p in plans.values() if any(r in p for r in time_ranges)], plans
