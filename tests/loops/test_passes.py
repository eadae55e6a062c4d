"""Pass plumbing: lenient JSON extraction, strict validation, the result record, and the
write batch a pass's threads share."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel
from support.clock import FakeClock
from support.fake_ollama import FakeOllama
from support.llm_scripts import install_thinking_routes, score_every_message

from crt_loops.db.session import SessionDB
from crt_loops.llm.client import DisabledLLM, LLMBadOutput, OllamaLLM
from crt_loops.loops.passes import PassResult, extract_json_object, parse_reply
from crt_loops.mind.personality import PersonalityService
from crt_loops.mind.reflection import ReflectionService


class Thing(BaseModel):
    name: str
    size: int


@pytest.mark.parametrize(
    "content",
    [
        '{"name": "a", "size": 1}',
        '<think>Let me think {"name": "wrong"}</think>{"name": "a", "size": 1}',
        'Sure! Here it is:\n```json\n{"name": "a", "size": 1}\n```\nAnything else?',
        'Prose with a {brace} first, then {"name": "a", "size": 1} and more.',
        '  {"name": "a", "size": "1"}  ',  # lax numbers are fine, the shape is strict
        # An unclosed <think> is searched when the visible text holds nothing, as for the
        # heartbeat's decisions: one rule for every reply (core.lenient_json).
        '<think>unfinished thinking {"name": "a", "size": 1}',
    ],
)
def test_parse_reply_is_lenient_about_wrapping(content: str) -> None:
    assert parse_reply(content, Thing) == Thing(name="a", size=1)


@pytest.mark.parametrize(
    "content",
    [
        "",
        "no json here",
        "<think>unfinished thinking, no object",
        "[1, 2, 3]",
        '{"name": "a"}',
        '{"name": "a", "size": "big"}',
    ],
)
def test_parse_reply_is_strict_about_shape(content: str) -> None:
    with pytest.raises(LLMBadOutput):
        parse_reply(content, Thing)


def test_extract_returns_the_first_object() -> None:
    assert extract_json_object('x {"a": {"b": 1}} y {"c": 2}') == {"a": {"b": 1}}


def test_pass_result_as_dict() -> None:
    result = PassResult("reflection", threads_seen=2, duration_ms=1.23456)
    result.errors.append("t1: RuntimeError: boom")
    data = result.as_dict()
    assert data["loop"] == "reflection" and data["duration_ms"] == 1.23
    assert {
        "threads_seen",
        "threads_processed",
        "threads_failed",
        "llm_calls",
        "entries_written",
        "errors",
    } <= set(data)
    assert data["errors"] == ["t1: RuntimeError: boom"]


# -- the write batch ---------------------------------------------------------------------------

_TABLES = (
    "messages",
    "journal_entries",
    "reflection_state",
    "loop_watermarks",
    "personality_profiles",
    "personality_history",
)


def _backlog(db: SessionDB) -> list[str]:
    texts = [
        "I started a new job today and I'm nervous about meeting the team.",
        "That sounds like a big step; how are you feeling about it now?",
        "Please keep answers short, bullet points are fine.",
        "Here is a short plan: list fixed costs, set a savings target, review monthly.",
        "My father was taken to the hospital last night, we are waiting for news!",
        "I'm sorry to hear that. I'm here if you want to talk it through.",
        "lol that's funny 😂 thanks so much",
        "Congratulations! Tell me more when you can.",
    ]
    ids = [f"t{i}" for i in range(6)]
    for k in range(12):
        for n, tid in enumerate(ids):
            db.ensure_thread(tid)
            db.add_message(tid, "user" if k % 2 == 0 else "assistant", texts[(k + n) % 8])
    return ids


def _rows(db: SessionDB) -> dict[str, list[tuple[Any, ...]]]:
    return {t: [tuple(r) for r in db.query(f"SELECT * FROM {t} ORDER BY 1, 2")] for t in _TABLES}


def _services(db: SessionDB, clock: FakeClock) -> list[ReflectionService | PersonalityService]:
    llm = DisabledLLM("http://127.0.0.1:9", "m")
    return [
        ReflectionService(db, llm, window=20, threshold=40, clock=clock),
        PersonalityService(db, llm, window=20, clock=clock),
    ]


def test_a_batched_pass_leaves_what_threads_run_one_by_one_leave(
    db_target: Any, tmp_path: Path, clock: FakeClock, db_backend: str
) -> None:
    # The pass commits many threads' writes together (Store.write_batch); a manual run of each
    # thread commits its own. Same scores, reflections, profiles, history and watermarks.
    batched = SessionDB(db_target, clock=clock)
    alone = SessionDB(tmp_path / "alone.db", clock=clock)
    try:
        ids = _backlog(batched)
        assert _backlog(alone) == ids
        for svc in _services(batched, clock):
            assert svc.run_pass().threads_processed == len(ids)
        for svc in _services(alone, clock):
            for tid in ids:
                assert svc.process_thread(tid).threads_processed == 1
        assert _rows(batched) == _rows(alone)
        assert _rows(alone)["journal_entries"]  # something was written
    finally:
        batched.close()
        alone.close()


@pytest.mark.sqlite_only
def test_no_write_lock_is_held_while_the_llm_answers(
    db: SessionDB, clock: FakeClock, fake_ollama: FakeOllama
) -> None:
    install_thinking_routes(fake_ollama)
    free: list[bool] = []

    def lock_is_free() -> bool:
        other = sqlite3.connect(db.path, timeout=0)
        try:
            other.execute("BEGIN IMMEDIATE")
            other.execute("ROLLBACK")
            return True
        except sqlite3.OperationalError:
            return False
        finally:
            other.close()

    def scores(request: dict[str, Any]) -> str:
        free.append(lock_is_free())
        return score_every_message(request)

    fake_ollama.route("ImportanceScores", scores)
    for tid in ("a", "b", "c"):
        db.ensure_thread(tid)
        db.add_message(tid, "user", f"I moved to a new city, thread {tid}")
    svc = ReflectionService(
        db, OllamaLLM(fake_ollama.url, "llama3.2:latest"), window=20, threshold=40, clock=clock
    )
    assert svc.run_pass().threads_processed == 3
    assert free == [True, True, True]
