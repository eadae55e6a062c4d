"""Reflection: importance scoring (LLM and heuristic), reflection entries, scorecard, routes."""

from __future__ import annotations

import json
import logging
import warnings
from collections.abc import Callable
from typing import Any

import pytest
from fastapi import FastAPI
from support.clock import FakeClock
from support.fake_ollama import FakeOllama, Reply
from support.llm_scripts import (
    ASSISTANT_IMPORTANCE,
    USER_IMPORTANCE,
    install_thinking_routes,
    prompt_messages,
)

from crt_loops.api.routes import insights
from crt_loops.api.services import Services
from crt_loops.db.session import SessionDB, ThreadNotFound
from crt_loops.llm.client import DisabledLLM, OllamaLLM
from crt_loops.loops.passes import DETAIL_LINES_PER_PASS
from crt_loops.mind.journal import list_entries
from crt_loops.mind.reflection import (
    ReflectionService,
    heuristic_importance,
    latest_reflection,
    reflection_view,
)
from crt_loops.mind.topics import keywords, topic_scorecard
from crt_loops.settings import Settings

with warnings.catch_warnings():
    # docs/reference.md §3: Starlette's TestClient warns about httpx 0.28 at import; only that
    # warning.
    warnings.filterwarnings("ignore", "Using `httpx` with `starlette.testclient`")
    from fastapi.testclient import TestClient

MODEL = "llama3.2:latest"


def ollama(fake: FakeOllama, timeout: float = 5.0) -> OllamaLLM:
    return OllamaLLM(fake.url, MODEL, timeout_seconds=timeout)


def disabled() -> DisabledLLM:
    return DisabledLLM("http://127.0.0.1:9", MODEL)


def add(db: SessionDB, thread_id: str, *contents: str) -> list[int]:
    """Alternate user/assistant messages (starting with the user); returns their ids."""
    db.ensure_thread(thread_id)
    return [
        db.add_message(thread_id, "user" if i % 2 == 0 else "assistant", text).id
        for i, text in enumerate(contents)
    ]


def snapshot(db: SessionDB) -> dict[str, list[tuple[Any, ...]]]:
    tables = [
        "messages",
        "journal_entries",
        "reflection_state",
        "loop_state",
        "loop_watermarks",
        "thread_sessions",
    ]
    return {
        t: [tuple(r) for r in db.read().execute(f"SELECT * FROM {t} ORDER BY 1")] for t in tables
    }


def service(db: SessionDB, llm: Any, clock: FakeClock, **kw: Any) -> ReflectionService:
    return ReflectionService(
        db, llm, window=kw.pop("window", 20), threshold=kw.pop("threshold", 40), clock=clock
    )


# -- heuristic ------------------------------------------------------------------------------


def test_heuristic_ranks_small_talk_below_routine_below_life_events() -> None:
    small, _ = heuristic_importance("hi, thanks!")
    routine, _ = heuristic_importance("What's a good recipe for pasta tonight?")
    big, reason = heuristic_importance("My mom was diagnosed with cancer and I'm devastated")
    assert small == 1
    assert 2 <= routine <= 5
    assert big >= 8
    assert "health" in reason and "emotion" in reason


def test_heuristic_combines_features_not_a_keyword_count() -> None:
    # The same life-event word matters more when it is the person's own news, with feeling.
    detached, _ = heuristic_importance("The article was about a hospital.")
    personal, _ = heuristic_importance("I was in the hospital last night and I'm scared.")
    assert personal >= detached + 3
    # The agent's own words are compressed toward 1.
    as_user, _ = heuristic_importance("I decided to quit my job!", "user")
    as_agent, agent_reason = heuristic_importance("I decided to quit my job!", "assistant")
    assert as_agent < as_user and agent_reason.startswith("agent's reply")


@pytest.mark.parametrize(
    "text",
    ["", "   ", "!!!!!!!!!!", "a" * 50_000, "URGENT " * 500 + "died cancer fired married!!!"],
)
def test_heuristic_is_clamped_and_deterministic(text: str) -> None:
    first = heuristic_importance(text)
    assert 1 <= first[0] <= 10 and first[1]
    assert heuristic_importance(text) == first


# -- scoring through a pass -----------------------------------------------------------------


def test_every_message_scored_by_llm_in_one_call(
    db: SessionDB, clock: FakeClock, fake_ollama: FakeOllama
) -> None:
    install_thinking_routes(fake_ollama)
    ids = add(db, "t1", "I start a new job on Monday", "Congratulations!", "thanks", "Good luck.")
    result = service(db, ollama(fake_ollama), clock).run_pass()
    assert result.threads_processed == 1 and result.messages_processed == 4
    assert len(fake_ollama.calls_for("ImportanceScores")) == 1
    rows = [db.get_message(i) for i in ids]
    assert all(r is not None and r.scored_by == "llm" and r.importance_reason for r in rows)
    assert [r.importance for r in rows if r] == [USER_IMPORTANCE, ASSISTANT_IMPORTANCE] * 2
    request = fake_ollama.calls_for("ImportanceScores")[0]
    assert request["format"]["title"] == "ImportanceScores"
    assert request["options"]["temperature"] <= 0.3
    assert "10 = life-changing" in request["messages"][0]["content"]


def test_every_message_scored_by_heuristic_when_llm_disabled(
    db: SessionDB, clock: FakeClock
) -> None:
    ids = add(db, "t1", "hello", "hi there", "I got engaged yesterday, I'm so happy!")
    result = service(db, disabled(), clock).run_pass()
    assert result.llm_calls == 0 and result.fallbacks == 3
    rows = [db.get_message(i) for i in ids]
    assert all(r is not None and r.scored_by == "heuristic" for r in rows)
    assert rows[0] is not None and rows[0].importance == 1
    assert rows[2] is not None and rows[2].importance is not None and rows[2].importance >= 7


def test_more_messages_than_window_one_call_rest_heuristic(
    db: SessionDB, clock: FakeClock, fake_ollama: FakeOllama
) -> None:
    install_thinking_routes(fake_ollama)
    ids = add(db, "t1", *[f"message number {i} about gardening" for i in range(5)])
    service(db, ollama(fake_ollama), clock, window=3).run_pass()
    calls = fake_ollama.calls_for("ImportanceScores")
    assert len(calls) == 1
    assert [mid for mid, _, _ in prompt_messages(calls[0])] == ids[-3:]  # the newest
    by = [db.get_message(i).scored_by for i in ids]  # type: ignore[union-attr]
    assert by == ["heuristic", "heuristic", "llm", "llm", "llm"]


def test_untrusted_scores_are_replaced_by_heuristic(
    db: SessionDB, clock: FakeClock, fake_ollama: FakeOllama
) -> None:
    ids = add(db, "t1", "one", "two", "three", "four")

    def sloppy(request: dict[str, Any]) -> str:
        a, b, c, _ = (mid for mid, _, _ in prompt_messages(request))
        scores = [
            {"id": a, "importance": 7, "reason": "fine"},
            {"id": a, "importance": 2, "reason": "duplicate: ignored"},
            {"id": b, "importance": 11, "reason": "off the scale"},
            {"id": c, "importance": 0, "reason": "off the scale"},
            {"id": 999_999, "importance": 5, "reason": "not in the batch"},
        ]  # and the fourth message is missing
        return "<think>hmm</think>```json\n" + json.dumps({"scores": scores}) + "\n```"

    fake_ollama.route("ImportanceScores", sloppy)
    service(db, ollama(fake_ollama), clock).run_pass()
    rows = [db.get_message(i) for i in ids]
    assert rows[0] is not None and (rows[0].importance, rows[0].scored_by) == (7, "llm")
    assert [r.scored_by for r in rows if r][1:] == ["heuristic"] * 3
    assert db.get_message(999_999) is None


@pytest.mark.parametrize(
    "reply",
    [
        Reply(content="I think they are all quite important!"),
        Reply(content='{"scores": "many"}'),
        Reply(status=500, error="model crashed"),
        Reply(raw_body=b"this is not json"),
        Reply(content='{"scores": []}', done_reason="length"),
    ],
    ids=["prose", "wrong-shape", "http-500", "garbage-body", "truncated"],
)
def test_llm_garbage_falls_back_to_heuristic(
    db: SessionDB, clock: FakeClock, fake_ollama: FakeOllama, reply: Reply
) -> None:
    fake_ollama.route("ImportanceScores", lambda req: reply)
    ids = add(db, "t1", "I lost my job today", "I'm sorry.")
    result = service(db, ollama(fake_ollama), clock).run_pass()
    assert result.threads_processed == 1 and result.threads_failed == 0
    assert result.llm_failures == 1
    assert all(db.get_message(i).scored_by == "heuristic" for i in ids)  # type: ignore[union-attr]


def test_llm_timeout_falls_back_and_stops_calling_for_the_pass(
    db: SessionDB, clock: FakeClock, fake_ollama: FakeOllama
) -> None:
    fake_ollama.route("ImportanceScores", lambda req: Reply(content="{}", delay=0.6))
    for thread in ("a", "b", "c"):
        add(db, thread, f"news from {thread}")
    result = service(db, ollama(fake_ollama, timeout=0.2), clock).run_pass()
    assert result.threads_processed == 3
    # Two timeouts in a row: the rest of the pass does not wait on the LLM again.
    assert len(fake_ollama.calls_for("ImportanceScores")) == 2
    assert result.llm_failures == 2
    scored = db.read().execute("SELECT DISTINCT scored_by FROM messages").fetchall()
    assert [tuple(r) for r in scored] == [("heuristic",)]


# -- reflection entries ---------------------------------------------------------------------


def test_no_reflection_below_threshold_then_exactly_one(
    db: SessionDB, clock: FakeClock, fake_ollama: FakeOllama
) -> None:
    install_thinking_routes(fake_ollama)
    svc = service(db, ollama(fake_ollama), clock, threshold=20)
    add(db, "t1", "I moved to a new city", "How is it?")  # 6 + 3 = 9
    svc.run_pass()
    assert list_entries(db, "t1") == []
    assert len(fake_ollama.calls_for("ReflectionInsights")) == 0
    add(db, "t1", "Lonely, honestly", "That is hard.", "I joined a climbing gym", "Nice!")  # +18
    result = svc.run_pass()
    entries = list_entries(db, "t1")
    assert result.entries_written == 1 and [e.entry_type for e in entries] == ["reflection"]
    assert len(fake_ollama.calls_for("ReflectionInsights")) == 1
    view = reflection_view(db, "t1", threshold=20)
    assert view["importance_since_last_reflection"] == 0
    assert view["counts"]["reflections"] == 1
    # Importance accumulates again from zero: two more messages are not enough.
    add(db, "t1", "ok", "ok")
    svc.run_pass()
    assert len(list_entries(db, "t1")) == 1


def test_reflection_insights_cite_real_message_ids(
    db: SessionDB, clock: FakeClock, fake_ollama: FakeOllama
) -> None:
    other = add(db, "other", "a message in another thread")
    install_thinking_routes(fake_ollama)

    def citing(request: dict[str, Any]) -> str:
        shown = [mid for mid, _, _ in prompt_messages(request)]
        return json.dumps(
            {
                "title": "The move",
                "insights": [
                    {"text": "I notice the move weighs on them.", "evidence": [shown[0], 424242]},
                    {"text": "Invented evidence only.", "evidence": [424242, other[0]]},
                    {"text": "   ", "evidence": shown},
                    {"text": "I should ask how the new job goes.", "evidence": shown[-2:]},
                ],
            }
        )

    fake_ollama.route("ReflectionInsights", citing)
    ids = add(db, "t1", "We moved to Lisbon", "Exciting!", "I start a new job there", "Great.")
    ReflectionService(db, ollama(fake_ollama), window=20, threshold=10, clock=clock).run_pass()
    entry = latest_reflection(db, "t1")
    assert entry is not None and entry.meta["source"] == "llm" and entry.title == "The move"
    insights = entry.meta["insights"]
    assert [i["text"] for i in insights] == [
        "I notice the move weighs on them.",
        "I should ask how the new job goes.",
    ]
    assert insights[0]["evidence"] == [ids[0]]
    assert all(set(i["evidence"]) <= set(ids) for i in insights)
    assert f"#{ids[0]}" in entry.body


def test_reflection_without_valid_insights_is_heuristic(
    db: SessionDB, clock: FakeClock, fake_ollama: FakeOllama
) -> None:
    install_thinking_routes(fake_ollama)
    fake_ollama.route(
        "ReflectionInsights",
        lambda req: json.dumps({"insights": [{"text": "made up", "evidence": [123456]}]}),
    )
    ids = add(db, "t1", "My father died last week and I'm heartbroken", "I am so sorry.")
    ReflectionService(db, ollama(fake_ollama), window=20, threshold=5, clock=clock).run_pass()
    entry = latest_reflection(db, "t1")
    assert entry is not None and entry.meta["source"] == "heuristic"
    assert entry.meta["insights"][0]["evidence"] == [ids[0]]


def test_heuristic_reflection_when_llm_disabled(db: SessionDB, clock: FakeClock) -> None:
    ids = add(
        db,
        "t1",
        "I got fired today and I'm scared about rent",
        "That sounds really hard.",
        "My garden keeps me sane, the tomatoes are growing",
    )
    result = service(db, disabled(), clock, threshold=10).run_pass()
    assert result.entries_written == 1
    entry = latest_reflection(db, "t1")
    assert entry is not None and entry.entry_type == "reflection"
    assert entry.meta["source"] == "heuristic"
    assert entry.meta["message_range"] == [1, ids[-1]]
    assert entry.meta["insights"][0]["evidence"] == [ids[0]]
    assert "fired" in entry.body and entry.meta["importance_sum"] >= 10


def test_the_first_reflections_of_a_pass_are_logged_at_info_the_rest_at_debug(
    db: SessionDB, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    threads = [f"t{i}" for i in range(DETAIL_LINES_PER_PASS + 3)]
    for thread_id in threads:
        add(
            db,
            thread_id,
            "I got fired today and I'm scared about rent",
            "That sounds really hard.",
            "My garden keeps me sane, the tomatoes are growing",
        )
    with caplog.at_level(logging.DEBUG, logger="crt_loops.mind.reflection"):
        result = service(db, disabled(), clock, threshold=10).run_pass()
    assert result.entries_written == len(threads)
    lines = [r for r in caplog.records if "reflection written" in r.getMessage()]
    assert [r.levelno for r in lines] == [logging.INFO] * DETAIL_LINES_PER_PASS + [
        logging.DEBUG
    ] * 3
    assert all(r.getMessage().startswith("[REFLECTION_LOOP] thread t") for r in lines)


# -- watermarks, nothing new, failures ----------------------------------------------------


@pytest.mark.sqlite_only
def test_nothing_new_means_no_llm_call_and_no_write(
    db: SessionDB, clock: FakeClock, fake_ollama: FakeOllama
) -> None:
    install_thinking_routes(fake_ollama)
    svc = service(db, ollama(fake_ollama), clock, threshold=5)
    empty = svc.run_pass()  # a fresh DB: only the empty default thread
    assert empty.threads_seen == 0 and fake_ollama.requests == []
    add(db, "t1", "I passed my driving test!", "Well done!")
    svc.run_pass()
    calls, before = len(fake_ollama.requests), snapshot(db)
    changes = db.conn().total_changes
    again = svc.run_pass()
    assert again.threads_seen == 0 and again.llm_calls == 0 and again.entries_written == 0
    assert len(fake_ollama.requests) == calls  # not even the liveness probe
    assert db.conn().total_changes == changes
    assert snapshot(db) == before


@pytest.mark.sqlite_only
def test_a_failing_thread_does_not_block_others_and_is_retried(
    db: SessionDB, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    good = add(db, "good", "I adopted a dog")
    bad = add(db, "bad", "I adopted a cat")
    late = add(db, "zlate", "I adopted a parrot")
    db.conn().execute(
        "CREATE TRIGGER fail_bad BEFORE UPDATE OF importance ON messages "
        "WHEN NEW.thread_id = 'bad' BEGIN SELECT RAISE(ABORT, 'disk on fire'); END"
    )
    svc = service(db, disabled(), clock)
    result = svc.run_pass()
    assert result.threads_seen == 3 and result.threads_processed == 2
    assert result.threads_failed == 1 and result.errors[0].startswith("bad: ")
    assert "[REFLECTION_LOOP]" in caplog.text and "bad" in caplog.text
    assert db.get_message(good[0]).scored_by == "heuristic"  # type: ignore[union-attr]
    assert db.get_message(late[0]).scored_by == "heuristic"  # type: ignore[union-attr]
    assert db.get_message(bad[0]).importance is None  # type: ignore[union-attr]
    # The global watermark stops just below the failed thread's first message.
    assert db.loop_watermark("reflection") == bad[0] - 1
    db.conn().execute("DROP TRIGGER fail_bad")
    retry = svc.run_pass()
    assert retry.threads_seen == 1 and retry.threads_processed == 1
    assert db.get_message(bad[0]).scored_by == "heuristic"  # type: ignore[union-attr]
    assert db.loop_watermark("reflection") == late[0]


def test_keepalive_false_stops_the_pass_and_keeps_the_work(db: SessionDB, clock: FakeClock) -> None:
    first = add(db, "a", "hello there friend")
    second = add(db, "b", "another thread")
    answers = iter([True, False])
    svc = service(db, disabled(), clock)
    result = svc.run_pass(keepalive=lambda: next(answers))
    assert result.interrupted and result.threads_processed == 1
    assert db.get_message(first[0]).importance is not None  # type: ignore[union-attr]
    assert db.get_message(second[0]).importance is None  # type: ignore[union-attr]
    assert db.loop_watermark("reflection") == second[0] - 1
    assert svc.run_pass().threads_processed == 1
    assert db.get_message(second[0]).importance is not None  # type: ignore[union-attr]


def test_process_thread_runs_one_thread_now(db: SessionDB, clock: FakeClock) -> None:
    add(db, "a", "something happened")
    b = add(db, "b", "my sister got married")
    result = service(db, disabled(), clock).process_thread("b")
    assert result.threads_processed == 1 and result.messages_processed == 1
    assert db.get_message(b[0]).importance is not None  # type: ignore[union-attr]
    assert db.read().execute("SELECT COUNT(importance) FROM messages").fetchone()[0] == 1
    # The loop does not redo it.
    assert service(db, disabled(), clock).run_pass().messages_processed == 1
    with pytest.raises(ThreadNotFound):
        service(db, disabled(), clock).process_thread("nope")


# -- topics and the view ----------------------------------------------------------------------


def test_keywords_are_noun_ish_and_folded() -> None:
    assert keywords("I really love the tomatoes and cities, and my garden's soil!") == [
        "love",
        "tomato",
        "city",
        "garden",
        "soil",
    ]


def test_scorecard_top_rising_fading(db: SessionDB, clock: FakeClock) -> None:
    older = [
        "the garden soil is dry",
        "garden roses bloomed",
        "weeds in the garden again",
        "garden hose broke",
        "planting garden bulbs",
        "garden fence repair",
    ]
    newer = [
        "piano practice at dawn",
        "piano teacher was strict",
        "learning piano chords",
        "piano recital soon",
        "a piano bench",
        "piano scales",
    ]
    for text in older + newer:
        db.add_message("default", "user", text)
    card = topic_scorecard(db.list_messages("default", limit=100))
    assert {t["topic"] for t in card["top"][:2]} == {"garden", "piano"}
    assert card["rising"][0]["topic"] == "piano"
    assert "garden" in [t["topic"] for t in card["fading"]]
    assert all(t["share_change_pct"] > 0 for t in card["rising"])


def test_reflection_view_and_route(
    db: SessionDB, clock: FakeClock, make_settings: Callable[..., Settings]
) -> None:
    add(db, "t1", "I am training for a marathon", "Great goal!")
    service(db, disabled(), clock, threshold=100).run_pass()
    view = reflection_view(db, "t1", threshold=100)
    assert view["counts"]["scored_by_heuristic"] == 2 and view["latest_reflection"] is None
    assert view["importance_since_last_reflection"] > 0
    assert view["scorecard"]["top"][0]["topic"] == "marathon"
    with pytest.raises(ThreadNotFound):
        reflection_view(db, "missing")

    app = FastAPI()
    app.include_router(insights.router)
    app.state.services = Services(
        settings=make_settings(reflection_threshold=77),
        db=db,
        llm=DisabledLLM("http://127.0.0.1:9", "none"),
    )
    client = TestClient(app)
    ok = client.get("/api/threads/t1/reflection")
    assert ok.status_code == 200 and ok.json()["threshold"] == 77
    assert ok.json()["counts"]["messages"] == 2
    assert client.get("/api/threads/missing/reflection").status_code == 404
    bad = client.get("/api/threads/bad%20id!/reflection")
    assert bad.status_code == 422 and "A-Za-z0-9_-" in bad.text


def _reference_importance(content: str, role: str) -> tuple[int, str]:
    """heuristic_importance as first written: every pattern with re.IGNORECASE, no fast path."""
    import math
    import re

    from crt_loops.mind import reflection as r

    def rx(p: Any) -> re.Pattern[str]:
        return re.compile(p.pattern, re.IGNORECASE)

    text = content.strip()
    tokens = re.findall(r"[a-z][a-z'-]*", text.lower())
    if not tokens or (len(tokens) <= 6 and all(t in r._SMALL_TALK for t in tokens)):
        return 1, "small talk"
    parts: list[tuple[float, str]] = []
    categories = [name for name, p in r._LIFE_EVENTS.items() if rx(p).search(text)]
    if categories:
        parts.append(
            (3.0 + min(2, len(categories) - 1), "life event (" + ", ".join(categories) + ")")
        )
    intense = {m.lower() for m in rx(r._INTENSE_EMOTION).findall(text)}
    mild = {m.lower() for m in rx(r._EMOTION).findall(text)}
    if intense or mild:
        emotion = 2.5 if intense else 1.5
        if len(intense | mild) > 1:
            emotion += 0.5
        if rx(r._INTENSIFIER).search(text):
            emotion += 0.3
        parts.append((emotion, "emotion (" + ", ".join(sorted(intense | mild)[:3]) + ")"))
    if rx(r._FIRST_PERSON).search(text) and (categories or intense or mild):
        parts.append((1.5 if categories and (intense or mild) else 1.0, "personal stakes"))
    for p, weight, label in (
        (r._DECISION, 1.5, "a decision or plan"),
        (r._URGENCY, 1.5, "urgency"),
        (r._ADVICE, 1.0, "asks for advice"),
    ):
        if rx(p).search(text):
            parts.append((weight, label))
    if "?" in text:
        parts.append((0.5, "a question"))
    words = len(text.split())
    length = min(2.0, 0.5 * math.log2(1 + words / 8))
    parts.append((length, f"long message ({words} words)" if length >= 1.0 else ""))
    shouted = sum(1 for w in text.split() if len(w) >= 3 and w.isalpha() and w.isupper())
    intensity = 0.3 * min(2, text.count("!")) + 0.3 * min(2, shouted)
    if intensity:
        parts.append((intensity, "emphatic"))
    raw = 1.5 + sum(weight for weight, _ in parts)
    if role == "assistant":
        raw = 1 + 0.6 * (raw - 1)
    score = max(1, min(10, round(raw)))
    named = [label for weight, label in sorted(parts, key=lambda p: -p[0]) if label][:3]
    reason = ", ".join(named) or "routine message"
    if role == "assistant":
        reason = "agent's reply: " + reason
    return score, reason[: r.MAX_REASON_CHARS]


def test_heuristic_equals_its_reference_over_a_corpus() -> None:
    # Pins the fast paths (folded patterns, anchors, one lowering, the shouting filter).
    from support.corpus import corpus

    for text in corpus():
        for role in ("user", "assistant"):
            assert heuristic_importance(text, role) == _reference_importance(text, role), text
