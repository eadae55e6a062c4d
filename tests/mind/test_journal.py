"""Journal: entries, comments, settings, the self-reply policy, and the journal routes."""

from __future__ import annotations

import random
import warnings
from collections.abc import Callable
from typing import Any

import pytest
from fastapi import FastAPI
from support.clock import FakeClock
from support.fake_ollama import FakeOllama, Reply
from support.llm_scripts import install_thinking_routes

from crt_loops.api.routes import journal as journal_routes
from crt_loops.api.services import Services
from crt_loops.db import journal as journal_db
from crt_loops.db.session import SessionDB, ThreadNotFound
from crt_loops.llm.client import DisabledLLM, OllamaLLM
from crt_loops.mind.journal import (
    EntryNotFound,
    JournalEntry,
    SelfReplyService,
    add_comment,
    add_entry,
    get_settings,
    list_entries,
    set_settings,
)
from crt_loops.settings import Settings

with warnings.catch_warnings():
    # docs/reference.md §3: Starlette's TestClient warns about httpx 0.28 at import; only that
    # warning.
    warnings.filterwarnings("ignore", "Using `httpx` with `starlette.testclient`")
    from fastapi.testclient import TestClient

MODEL = "llama3.2:latest"


def write_entry(
    db: SessionDB, thread_id: str, entry_type: str = "reflection", reply_to: int | None = None
) -> JournalEntry:
    db.ensure_thread(thread_id)
    return add_entry(
        db,
        thread_id=thread_id,
        entry_type=entry_type,
        title=f"A {entry_type}",
        body=f"I notice something about {thread_id}.",
        created_at=db.clock(),
        reply_to=reply_to,
        meta={"source": "heuristic"},
    )


def self_replies(db: SessionDB, thread_id: str) -> list[JournalEntry]:
    return [e for e in reversed(list_entries(db, thread_id)) if e.entry_type == "self_reply"]


@pytest.fixture
def llm(fake_ollama: FakeOllama) -> OllamaLLM:
    install_thinking_routes(fake_ollama)
    return OllamaLLM(fake_ollama.url, MODEL, timeout_seconds=5)


def make(db: SessionDB, clock: FakeClock, llm: Any, **kw: Any) -> SelfReplyService:
    return SelfReplyService(
        db,
        llm,
        chance=kw.get("chance", 1.0),
        min_seconds=kw.get("min_seconds", 0.0),
        window=20,
        rng=random.Random(kw.get("seed", 1)),
        clock=clock,
    )


# -- entries, comments, settings ------------------------------------------------------------


def test_entries_newest_first_with_paging(db: SessionDB) -> None:
    ids = [write_entry(db, "t1").id for _ in range(5)]
    write_entry(db, "other")
    page = list_entries(db, "t1", limit=2)
    assert [e.id for e in page] == ids[:-3:-1]
    older = list_entries(db, "t1", limit=10, before_id=page[-1].id)
    assert [e.id for e in older] == ids[-3::-1]
    record = page[0].as_dict()
    assert set(record) == {
        "id",
        "thread_id",
        "entry_type",
        "title",
        "body",
        "created_at",
        "reply_to",
        "meta",
    }
    assert record["created_at"].endswith("Z") and record["meta"] == {"source": "heuristic"}


def test_add_comment_checks_the_entry_belongs_to_the_thread(db: SessionDB) -> None:
    mine = write_entry(db, "t1")
    theirs = write_entry(db, "t2")
    comment = add_comment(db, "t1", mine.id, "  Nice thought.  ")
    assert (comment.entry_type, comment.reply_to, comment.body) == (
        "comment",
        mine.id,
        "Nice thought.",
    )
    with pytest.raises(EntryNotFound):
        add_comment(db, "t1", theirs.id, "not yours")
    with pytest.raises(EntryNotFound):
        add_comment(db, "t1", 999_999, "no such entry")
    with pytest.raises(ThreadNotFound):
        add_comment(db, "ghost", mine.id, "no such thread")
    with pytest.raises(ValueError, match="empty"):
        add_comment(db, "t1", mine.id, "   ")
    with pytest.raises(ValueError, match="at most"):
        add_comment(db, "t1", mine.id, "x" * 10_001)


def test_settings_partial_update_and_effective_policy(db: SessionDB, clock: FakeClock) -> None:
    db.ensure_thread("t1")
    base = get_settings(db, "t1", chance=0.25, min_seconds=1800)
    assert base["self_reply"] == "default" and base["effective_chance"] == 0.25
    assert base["last_self_reply_at"] is None
    on = set_settings(db, "t1", self_reply="on", chance=0.25, min_seconds=1800)
    assert on["self_reply"] == "on" and on["effective_chance"] == 1.0
    kept = set_settings(db, "t1", self_reply=None, chance=0.25)
    assert kept["self_reply"] == "on"
    off = set_settings(db, "t1", self_reply="off")
    assert off["effective_chance"] == 0.0 and off["answers_comments"] is False
    with pytest.raises(ValueError, match="self_reply"):
        set_settings(db, "t1", self_reply="sometimes")
    with pytest.raises(ThreadNotFound):
        set_settings(db, "ghost", self_reply="on")
    with pytest.raises(ThreadNotFound):
        get_settings(db, "ghost")


# -- the self-reply policy -------------------------------------------------------------------


def test_chance_zero_never_replies(db: SessionDB, clock: FakeClock, llm: OllamaLLM) -> None:
    write_entry(db, "t1")
    svc = make(db, clock, llm, chance=0.0)
    for _ in range(5):
        assert svc.run_pass().entries_written == 0
    assert self_replies(db, "t1") == [] and llm.stats.calls == 0


def test_chance_one_always_replies_with_llm_text(
    db: SessionDB, clock: FakeClock, llm: OllamaLLM, fake_ollama: FakeOllama
) -> None:
    reflection = write_entry(db, "t1")
    db.add_message("t1", "user", "I keep worrying about the exam")
    result = make(db, clock, llm, chance=1.0).run_pass()
    assert result.entries_written == 1 and result.llm_calls == 1
    (reply,) = self_replies(db, "t1")
    assert reply.reply_to == reflection.id and reply.title == "Re: A reflection"
    assert reply.meta == {"kind": "self_reply", "depth": 1, "source": "llm", "model": MODEL}
    assert f"entry {reflection.id}" in reply.body
    request = fake_ollama.calls_for("JournalReply")[0]
    assert "worrying about the exam" in request["messages"][1]["content"]
    assert get_settings(db, "t1")["last_self_reply_at"] is not None


def test_seeded_rng_decides_and_is_deterministic(db: SessionDB, clock: FakeClock) -> None:
    def replies_with(seed: int) -> list[int]:
        counts = []
        for i in range(6):
            thread = f"s{seed}x{i}"
            write_entry(db, thread)
        svc = make(db, clock, DisabledLLM("h", MODEL), chance=0.5, seed=seed)
        svc.run_pass()
        for i in range(6):
            counts.append(len(self_replies(db, f"s{seed}x{i}")))
        return counts

    first = replies_with(3)
    expected_rng = random.Random(3)
    assert first == [int(expected_rng.random() < 0.5) for _ in range(6)]
    assert 0 < sum(first) < 6


def test_min_gap_between_self_replies(db: SessionDB, clock: FakeClock, llm: OllamaLLM) -> None:
    write_entry(db, "t1")
    svc = make(db, clock, llm, chance=1.0, min_seconds=600)
    svc.run_pass()
    assert len(self_replies(db, "t1")) == 1
    clock.advance(599)
    waiting = svc.run_pass()
    assert waiting.entries_written == 0 and waiting.threads_deferred == 1
    clock.advance(2)
    svc.run_pass()
    first, second = self_replies(db, "t1")
    assert second.reply_to == first.id and second.meta["depth"] == 2


@pytest.mark.sqlite_only
def test_chain_stops_at_three_then_nothing_is_new(
    db: SessionDB, clock: FakeClock, llm: OllamaLLM, fake_ollama: FakeOllama
) -> None:
    root = write_entry(db, "t1")
    svc = make(db, clock, llm, chance=1.0)
    for _ in range(6):
        svc.run_pass()
    chain = self_replies(db, "t1")
    assert [e.reply_to for e in chain] == [root.id, chain[0].id, chain[1].id]
    assert [e.meta["depth"] for e in chain] == [1, 2, 3]
    requests, changes = len(fake_ollama.requests), db.conn().total_changes
    idle = svc.run_pass()
    assert idle.threads_seen == 0 and idle.llm_calls == 0
    assert len(fake_ollama.requests) == requests and db.conn().total_changes == changes


def test_comment_answered_first_whatever_the_chance_and_gap(
    db: SessionDB, clock: FakeClock, llm: OllamaLLM
) -> None:
    reflection = write_entry(db, "t1")
    svc = make(db, clock, llm, chance=0.0, min_seconds=10**9)
    with db.write() as tx:  # the agent self-replied just now: the gap is not over
        tx.execute(
            "UPDATE thread_sessions SET last_self_reply_at = ? WHERE thread_id = 't1'", (clock(),)
        )
    svc.run_pass()
    assert self_replies(db, "t1") == []
    comment = add_comment(db, "t1", reflection.id, "Why do you think that?")
    result = svc.run_pass()
    assert result.entries_written == 1
    (answer,) = self_replies(db, "t1")
    assert answer.reply_to == comment.id
    assert answer.meta["kind"] == "comment_answer" and answer.meta["source"] == "llm"
    for _ in range(3):
        svc.run_pass()
    assert len(self_replies(db, "t1")) == 1  # answered once; no unprompted chain follows


def test_override_off_and_on(db: SessionDB, clock: FakeClock, llm: OllamaLLM) -> None:
    quiet = write_entry(db, "quiet")
    set_settings(db, "quiet", self_reply="off")
    add_comment(db, "quiet", quiet.id, "hello?")
    eager = write_entry(db, "eager")
    set_settings(db, "eager", self_reply="on")
    svc = make(db, clock, llm, chance=0.0, min_seconds=100)
    svc.run_pass()
    assert self_replies(db, "quiet") == []  # off: not even the comment is answered
    assert len(self_replies(db, "eager")) == 1  # on: chance 1 despite the configured 0
    assert self_replies(db, "eager")[0].reply_to == eager.id
    svc.run_pass()
    assert len(self_replies(db, "eager")) == 1  # ... but the minimum gap still holds
    clock.advance(101)
    svc.run_pass()
    assert len(self_replies(db, "eager")) == 2


def test_template_only_when_llm_unavailable(db: SessionDB, clock: FakeClock) -> None:
    reflection = write_entry(db, "t1")
    svc = make(db, clock, DisabledLLM("h", MODEL), chance=1.0)
    result = svc.run_pass()
    assert result.fallbacks == 1
    (reply,) = self_replies(db, "t1")
    assert reply.meta["source"] == "template" and reply.reply_to == reflection.id
    for _ in range(3):  # a chain is never continued with the template
        svc.run_pass()
    assert len(self_replies(db, "t1")) == 1
    comment = add_comment(db, "t1", reflection.id, "Tell me more about that")
    svc.run_pass()
    answer = self_replies(db, "t1")[-1]
    assert answer.reply_to == comment.id and answer.meta["source"] == "template"
    assert "Tell me more about that" in answer.body


@pytest.mark.parametrize(
    "reply", [Reply(content="just prose"), Reply(status=500, error="boom")], ids=["prose", "500"]
)
def test_llm_failure_falls_back_to_template(
    db: SessionDB, clock: FakeClock, llm: OllamaLLM, fake_ollama: FakeOllama, reply: Reply
) -> None:
    fake_ollama.route("JournalReply", lambda req: reply)
    write_entry(db, "t1")
    result = make(db, clock, llm).run_pass()
    assert result.llm_failures == 1 and result.threads_failed == 0
    assert self_replies(db, "t1")[0].meta["source"] == "template"


@pytest.mark.sqlite_only
def test_nothing_new_means_no_llm_call_and_no_write(
    db: SessionDB, clock: FakeClock, llm: OllamaLLM, fake_ollama: FakeOllama
) -> None:
    svc = make(db, clock, llm)
    changes = db.conn().total_changes
    result = svc.run_pass()
    assert result.threads_seen == 0 and fake_ollama.requests == []
    assert db.conn().total_changes == changes
    # A reflection already followed up by a comment: done, and stays quiet afterwards.
    entry = write_entry(db, "t1")
    write_entry(db, "t1", "comment", reply_to=entry.id)
    write_entry(db, "t1", "self_reply", reply_to=entry.id + 1)
    with db.write() as tx:
        tx.execute(
            'UPDATE journal_entries SET meta_json = \'{"kind": "comment_answer"}\' '
            "WHERE entry_type = 'self_reply'"
        )
    assert svc.run_pass().threads_processed == 1
    requests, changes = len(fake_ollama.requests), db.conn().total_changes
    assert svc.run_pass().threads_seen == 0
    assert len(fake_ollama.requests) == requests and db.conn().total_changes == changes


@pytest.mark.sqlite_only
def test_a_failing_thread_does_not_block_others(
    db: SessionDB, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    write_entry(db, "bad")
    write_entry(db, "good")
    db.conn().execute(
        "CREATE TRIGGER fail_bad BEFORE INSERT ON journal_entries WHEN NEW.thread_id = 'bad' "
        "AND NEW.entry_type = 'self_reply' BEGIN SELECT RAISE(ABORT, 'full'); END"
    )
    svc = make(db, clock, DisabledLLM("h", MODEL))
    result = svc.run_pass()
    assert result.threads_failed == 1 and result.errors[0].startswith("bad: ")
    assert "[JOURNAL_SELF_REPLY_LOOP]" in caplog.text
    assert len(self_replies(db, "good")) == 1 and self_replies(db, "bad") == []
    db.conn().execute("DROP TRIGGER fail_bad")
    svc.run_pass()
    assert len(self_replies(db, "bad")) == 1


def test_keepalive_false_stops_early(db: SessionDB, clock: FakeClock) -> None:
    write_entry(db, "a")
    write_entry(db, "b")
    svc = make(db, clock, DisabledLLM("h", MODEL))
    answers = iter([True, False])
    result = svc.run_pass(keepalive=lambda: next(answers))
    assert result.interrupted and self_replies(db, "b") == []
    svc.run_pass()
    assert len(self_replies(db, "b")) == 1


def test_process_thread_forces_the_dice_not_off(
    db: SessionDB, clock: FakeClock, llm: OllamaLLM
) -> None:
    write_entry(db, "t1")
    svc = make(db, clock, llm, chance=0.0, min_seconds=10**9)
    assert svc.run_pass().entries_written == 0
    now = svc.process_thread("t1")
    assert now.entries_written == 1 and len(self_replies(db, "t1")) == 1
    write_entry(db, "t2")
    set_settings(db, "t2", self_reply="off")
    assert svc.process_thread("t2").entries_written == 0
    with pytest.raises(ThreadNotFound):
        svc.process_thread("ghost")


# -- routes ----------------------------------------------------------------------------------


@pytest.fixture
def client(db: SessionDB, make_settings: Callable[..., Settings]) -> TestClient:
    app = FastAPI()
    app.include_router(journal_routes.router)
    app.state.services = Services(
        settings=make_settings(journal_self_reply_chance=0.5, journal_self_reply_min_seconds=60),
        db=db,
        llm=DisabledLLM("http://127.0.0.1:9", "none"),
    )
    return TestClient(app)


def test_journal_routes(db: SessionDB, client: TestClient) -> None:
    entries = [write_entry(db, "t1") for _ in range(3)]
    page = client.get("/api/threads/t1/journal", params={"limit": 2})
    assert page.status_code == 200
    assert [e["id"] for e in page.json()["entries"]] == [entries[2].id, entries[1].id]
    rest = client.get("/api/threads/t1/journal", params={"before": page.json()["next_before"]})
    assert [e["id"] for e in rest.json()["entries"]] == [entries[0].id]
    assert client.get("/api/threads/t1/journal", params={"limit": 0}).status_code == 422
    assert client.get("/api/threads/ghost/journal").status_code == 404
    bad = client.get("/api/threads/no%20spaces/journal")
    assert bad.status_code == 422 and "^[A-Za-z0-9_-]{1,64}$" in bad.text

    posted = client.post(f"/api/threads/t1/journal/{entries[0].id}/reply", json={"content": "Hm?"})
    assert posted.status_code == 201
    assert posted.json()["entry_type"] == "comment" and posted.json()["reply_to"] == entries[0].id
    other = write_entry(db, "t2")
    assert (
        client.post(f"/api/threads/t1/journal/{other.id}/reply", json={"content": "x"}).status_code
        == 404
    )
    assert (
        client.post("/api/threads/t1/journal/999/reply", json={"content": "x"}).status_code == 404
    )
    for body in ({"content": ""}, {"content": "   "}, {"content": "x", "author": "me"}, {}):
        assert (
            client.post(f"/api/threads/t1/journal/{entries[0].id}/reply", json=body).status_code
            == 422
        )


def test_journal_settings_routes(client: TestClient, db: SessionDB) -> None:
    db.ensure_thread("t1")
    got = client.get("/api/threads/t1/journal/settings")
    assert got.status_code == 200
    assert got.json()["self_reply"] == "default" and got.json()["effective_chance"] == 0.5
    assert got.json()["min_seconds"] == 60
    on = client.post("/api/threads/t1/journal/settings", json={"self_reply": "on"})
    assert on.status_code == 200 and on.json()["effective_chance"] == 1.0
    kept = client.post("/api/threads/t1/journal/settings", json={})
    assert kept.json()["self_reply"] == "on"
    assert (
        client.post("/api/threads/t1/journal/settings", json={"self_reply": "maybe"}).status_code
        == 422
    )
    assert client.post("/api/threads/t1/journal/settings", json={"chance": 1}).status_code == 422
    assert client.get("/api/threads/ghost/journal/settings").status_code == 404
    assert (
        client.post("/api/threads/ghost/journal/settings", json={"self_reply": "on"}).status_code
        == 404
    )


# -- idle with the LLM off -------------------------------------------------------------------


class SwitchableLLM(DisabledLLM):
    """The LLM off, then (``on = True``) answering the availability probe again."""

    on = False

    def available(self, *, refresh: bool = False) -> bool:
        return self.on


def seed_threads(db: SessionDB, n: int) -> None:
    now = db.clock()
    with db.write() as tx:
        for i in range(n):
            tx.execute(
                "INSERT INTO thread_sessions (thread_id, title, created_at, updated_at) "
                "VALUES (?, ?, ?, ?)",
                (f"t{i:04d}", f"t{i:04d}", now, now),
            )
        for i in range(n):
            journal_db.insert_entry(
                tx,
                thread_id=f"t{i:04d}",
                entry_type="reflection",
                title="r",
                body="a reflection",
                created_at=now,
                reply_to=None,
                meta={},
            )


@pytest.mark.parametrize("threads", [10, 1000])
@pytest.mark.sqlite_only
def test_self_reply_goes_idle_with_the_llm_off(
    db: SessionDB, clock: FakeClock, threads: int
) -> None:
    """Once every chain waits for the LLM, a pass writes nothing and reads the same three
    indexed rows whatever the number of threads; a new entry or the LLM's return wakes it."""
    from crt_loops.loops.runner import SelfReplyLoop

    seed_threads(db, threads)
    llm = SwitchableLLM("http://127.0.0.1:9", MODEL)
    loop = SelfReplyLoop(make(db, clock, llm), interval_seconds=1800, enabled=True, db=db)
    loop.tick()  # a template follow-up for every reflection
    assert len(self_replies(db, "t0000")) == 1
    loop.tick()  # every chain now waits for the LLM: nothing written, the pass goes idle
    statements: list[str] = []
    db.conn().set_trace_callback(statements.append)
    try:
        changes = db.conn().total_changes
        for _ in range(3):
            result = loop.tick()
            assert result.detail == {"idle": True}
        idle_writes = db.conn().total_changes - changes
        per_pass = len(statements) / 3
    finally:
        db.conn().set_trace_callback(None)
    print(f"idle self-reply pass at {threads} threads: {idle_writes} writes, {per_pass} reads")
    assert idle_writes == 0
    assert per_pass == 3  # MAX(id), the loop's watermark, MAX(id) against the idle mark
    write_entry(db, "t0001")  # news: the next pass looks again, and answers it
    assert loop.tick().detail.get("entries_written") == 1
    loop.tick()
    assert loop.tick().detail == {"idle": True}
    llm.on = True  # the LLM is back: the waiting chains are worth a pass
    assert loop.tick().detail.get("threads_seen") == threads


def test_a_minimum_gap_ending_wakes_an_idle_self_reply_loop(
    db: SessionDB, clock: FakeClock
) -> None:
    from crt_loops.loops.runner import SelfReplyLoop

    write_entry(db, "t1")
    svc = make(db, clock, DisabledLLM("http://127.0.0.1:9", MODEL), min_seconds=600)
    db.ensure_thread("t1")
    with db.write() as tx:
        tx.execute("UPDATE thread_sessions SET last_self_reply_at = ?", (clock(),))
    loop = SelfReplyLoop(svc, interval_seconds=60, enabled=True, db=db)
    assert loop.tick().detail.get("threads_seen") == 1  # waits for the gap
    assert loop.tick().detail == {"idle": True}
    clock.advance(601)
    assert loop.tick().detail.get("entries_written") == 1  # the template follow-up
