"""Personality: signals, smoothing, history, entries only on change, style, LLM nudge, routes."""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable
from typing import Any

import pytest
from fastapi import FastAPI
from support.clock import FakeClock
from support.fake_ollama import FakeOllama, Reply
from support.llm_scripts import install_thinking_routes

from crt_loops.api.routes import insights
from crt_loops.api.services import Services
from crt_loops.db.session import SessionDB, ThreadNotFound
from crt_loops.llm.client import DisabledLLM, OllamaLLM
from crt_loops.mind.journal import list_entries
from crt_loops.mind.personality import (
    PersonalityService,
    default_profile,
    get_profile,
    personality_view,
    style_instructions,
)
from crt_loops.settings import Settings

with warnings.catch_warnings():
    # docs/reference.md §3: Starlette's TestClient warns about httpx 0.28 at import; only that
    # warning.
    warnings.filterwarnings("ignore", "Using `httpx` with `starlette.testclient`")
    from fastapi.testclient import TestClient

MODEL = "llama3.2:latest"


def disabled() -> DisabledLLM:
    return DisabledLLM("http://127.0.0.1:9", MODEL)


def service(db: SessionDB, clock: FakeClock, llm: Any = None) -> PersonalityService:
    return PersonalityService(db, llm or disabled(), window=20, clock=clock)


def say(db: SessionDB, thread_id: str, *texts: str) -> None:
    """The person says each text, and the agent answers something neutral."""
    db.ensure_thread(thread_id)
    for text in texts:
        db.add_message(thread_id, "user", text)
        db.add_message(thread_id, "assistant", "Here is my answer, with some detail in it.")


def profile_of(db: SessionDB, thread_id: str) -> dict[str, Any]:
    profile = get_profile(db, thread_id)
    assert profile is not None
    return profile


def history(db: SessionDB, thread_id: str) -> list[tuple[list[dict[str, Any]], str]]:
    rows = db.read().execute(
        "SELECT changes_json, reason FROM personality_history WHERE thread_id = ? ORDER BY id",
        (thread_id,),
    )
    return [(json.loads(r[0]), r[1]) for r in rows]


def test_one_explicit_request_nudges_two_switch(db: SessionDB, clock: FakeClock) -> None:
    svc = service(db, clock)
    say(db, "t1", "Can you be brief please?")
    svc.run_pass()
    first = profile_of(db, "t1")
    assert first["verbosity"] == "balanced" and first["scores"]["verbosity"] < 0.5
    say(db, "t1", "tl;dr please, that was too long")
    svc.run_pass()
    assert profile_of(db, "t1")["verbosity"] == "brief"
    (changes, reason), *_ = [h for h in history(db, "t1") if h[0][0]["field"] == "verbosity"]
    assert changes[0] == {"field": "verbosity", "old": "balanced", "new": "brief"}
    assert 'asked "tl;dr"' in reason and "verbosity:" in reason


def test_one_outlier_message_does_not_flip_the_profile(db: SessionDB, clock: FakeClock) -> None:
    svc = service(db, clock)
    casual = [
        "hey lol whats up",
        "yeah gonna try that tbh",
        "ok cool thx man",
        "nah idk man",
        "lol ok sure thing",
        "yo thx dude",
        "gonna do it tmrw lol",
        "yep sounds good tbh",
    ]
    say(db, "t1", *casual)
    svc.run_pass()
    settled = profile_of(db, "t1")
    assert settled["formality"] == "casual" and settled["emoji"] == "none"
    say(
        db,
        "t1",
        "Dear assistant, could you kindly provide a thorough, formal overview? Thank you. 😀🎉",
    )
    svc.run_pass()
    after = profile_of(db, "t1")
    assert (after["formality"], after["emoji"]) == ("casual", "none")
    assert after["scores"]["formality"] > settled["scores"]["formality"]  # moved, not flipped


def test_emoji_and_formality_follow_consistent_writing(db: SessionDB, clock: FakeClock) -> None:
    svc = service(db, clock)
    say(db, "t1", *[f"Could you please explain item {i}? Thank you. 🙂🌱" for i in range(8)])
    svc.run_pass()
    profile = profile_of(db, "t1")
    assert profile["formality"] == "formal"
    assert profile["emoji"] in {"some", "lots"}
    assert profile["tone"] == "warm"


def test_formatting_switches_only_after_consistent_evidence(
    db: SessionDB, clock: FakeClock
) -> None:
    svc = service(db, clock)
    say(db, "t1", "Give me the options as bullet points")
    svc.run_pass()
    assert profile_of(db, "t1")["formatting"] == "auto"
    say(db, "t1", "again, bullet points please")
    svc.run_pass()
    assert profile_of(db, "t1")["formatting"] == "bullets"
    say(db, "t1", "```\nprint('hi')\n```")  # one code block does not switch it back
    svc.run_pass()
    assert profile_of(db, "t1")["formatting"] == "bullets"


def test_entry_and_history_only_when_something_changed(db: SessionDB, clock: FakeClock) -> None:
    svc = service(db, clock)
    say(db, "t1", "What time is it?")
    first = svc.run_pass()
    assert first.entries_written == 0 and history(db, "t1") == []
    assert list_entries(db, "t1") == []
    view = personality_view(db, "t1")
    assert view["version"] == 1 and view["profile"]["messages_seen"] == 1
    say(db, "t1", "be brief", "be concise")
    changed = svc.run_pass()
    entries = list_entries(db, "t1")
    assert changed.entries_written == 1 and [e.entry_type for e in entries] == ["personality"]
    assert entries[0].meta["changes"][0]["new"] == "brief" and "→ brief" in entries[0].body
    assert personality_view(db, "t1")["version"] == 2
    say(db, "t1", "What day is it?")
    same = svc.run_pass()
    assert same.entries_written == 0 and len(list_entries(db, "t1")) == 1
    assert len(history(db, "t1")) == 1 and personality_view(db, "t1")["version"] == 2


def test_interests_from_recurring_topics(db: SessionDB, clock: FakeClock) -> None:
    svc = service(db, clock)
    say(db, "t1", "my sourdough starter died", "new sourdough recipe?", "sourdough hydration")
    svc.run_pass()
    assert "sourdough" in profile_of(db, "t1")["interests"]
    changes, reason = history(db, "t1")[-1]
    assert any(c["field"] == "interests" and "sourdough" in c["new"] for c in changes)
    assert "interests" in reason


def test_only_agent_messages_make_no_profile(db: SessionDB, clock: FakeClock) -> None:
    db.ensure_thread("t1")
    db.add_message("t1", "assistant", "Hello! Be brief, says I.")
    result = service(db, clock).run_pass()
    assert result.threads_processed == 1 and get_profile(db, "t1") is None


def test_style_instructions_follow_the_profile() -> None:
    assert style_instructions(None) == ""
    profile = default_profile()
    assert style_instructions(profile) == "Do not use emoji."
    profile.update(
        verbosity="brief",
        formality="casual",
        emoji="lots",
        formatting="bullets",
        tone="direct",
        interests=["climbing", "rust"],
    )
    text = style_instructions(profile)
    for fragment in ("short", "casually", "emoji freely", "bullet", "direct", "climbing, rust"):
        assert fragment in text
    profile.update(verbosity="detailed", formality="formal", formatting="code", tone="warm")
    text = style_instructions(profile)
    for fragment in ("detailed", "formal", "code blocks", "warm"):
        assert fragment in text


def test_llm_only_nudges_and_is_validated(
    db: SessionDB, clock: FakeClock, fake_ollama: FakeOllama
) -> None:
    install_thinking_routes(fake_ollama)
    fake_ollama.route(
        "PersonalityUpdate",
        lambda req: json.dumps(
            {
                "verbosity": "detailed",
                "formatting": "markdown",
                "interests": ["chess", "astrophysics"],
                "reason": "they like depth",
            }
        ),
    )
    llm = OllamaLLM(fake_ollama.url, MODEL, timeout_seconds=5)
    svc = service(db, clock, llm)
    say(db, "t1", "I play chess every evening")
    result = svc.run_pass()
    assert result.llm_calls == 1 and len(fake_ollama.calls_for("PersonalityUpdate")) == 1
    profile = profile_of(db, "t1")
    # One reading from the model moves the scores, never the labels on its own.
    assert profile["verbosity"] == "balanced" and profile["formatting"] == "auto"
    assert profile["scores"]["verbosity"] > 0.5
    # Interests the person never mentioned are not taken from the model.
    assert "astrophysics" not in profile["interest_weights"]
    assert profile["interest_weights"]["chess"] > 1.0

    fake_ollama.route(
        "PersonalityUpdate", lambda req: json.dumps({"verbosity": "verbose", "emoji": 7})
    )
    say(db, "t1", "also checkers")
    invalid = svc.run_pass()
    assert invalid.llm_failures == 1 and invalid.threads_processed == 1


@pytest.mark.sqlite_only
def test_nothing_new_means_no_llm_call_and_no_write(
    db: SessionDB, clock: FakeClock, fake_ollama: FakeOllama
) -> None:
    install_thinking_routes(fake_ollama)
    svc = service(db, clock, OllamaLLM(fake_ollama.url, MODEL, timeout_seconds=5))
    say(db, "t1", "be brief", "no emoji please")
    svc.run_pass()
    requests, changes = len(fake_ollama.requests), db.conn().total_changes
    again = svc.run_pass()
    assert again.threads_seen == 0 and again.llm_calls == 0
    assert len(fake_ollama.requests) == requests and db.conn().total_changes == changes


def test_llm_down_is_heuristic_only(
    db: SessionDB, clock: FakeClock, fake_ollama: FakeOllama
) -> None:
    fake_ollama.route("PersonalityUpdate", lambda req: Reply(status=500, error="boom"))
    svc = service(db, clock, OllamaLLM(fake_ollama.url, MODEL, timeout_seconds=5))
    say(db, "t1", "be brief", "keep it short")
    result = svc.run_pass()
    assert result.llm_failures == 1 and profile_of(db, "t1")["verbosity"] == "brief"
    assert list_entries(db, "t1")[0].meta["source"] == "heuristic"


@pytest.mark.sqlite_only
def test_a_failing_thread_does_not_block_others(db: SessionDB, clock: FakeClock) -> None:
    say(db, "bad", "be brief")
    say(db, "good", "be brief")
    db.conn().execute(
        "CREATE TRIGGER fail_bad BEFORE INSERT ON personality_profiles "
        "WHEN NEW.thread_id = 'bad' BEGIN SELECT RAISE(ABORT, 'no room'); END"
    )
    svc = service(db, clock)
    result = svc.run_pass()
    assert result.threads_failed == 1 and result.threads_processed == 1
    assert result.errors[0].startswith("bad: ") and get_profile(db, "good") is not None
    db.conn().execute("DROP TRIGGER fail_bad")
    retry = svc.run_pass()
    assert retry.threads_processed == 1 and get_profile(db, "bad") is not None
    assert profile_of(db, "bad")["messages_seen"] == 1  # retried once, not double-counted


def test_process_thread_and_view(
    db: SessionDB, clock: FakeClock, make_settings: Callable[..., Settings]
) -> None:
    say(db, "t1", "no emoji, be brief", "be concise")
    result = service(db, clock).process_thread("t1")
    assert result.threads_processed == 1
    view = personality_view(db, "t1")
    assert view["profile"]["verbosity"] == "brief"
    assert view["history"][0]["changes"][0]["field"] == "verbosity"
    assert view["updated_at"].endswith("Z") and "short" in view["style_instructions"]
    with pytest.raises(ThreadNotFound):
        personality_view(db, "nope")

    app = FastAPI()
    app.include_router(insights.router)
    app.state.services = Services(
        settings=make_settings(), db=db, llm=DisabledLLM("http://127.0.0.1:9", "none")
    )
    client = TestClient(app)
    ok = client.get("/api/threads/t1/personality")
    assert ok.status_code == 200 and ok.json()["version"] == 1
    assert ok.json()["history"][0]["created_at"].endswith("Z")
    empty = client.get("/api/threads/default/personality")
    assert empty.status_code == 200 and empty.json()["profile"] is None
    assert client.get("/api/threads/nope/personality").status_code == 404
    assert client.get("/api/threads/x.y/personality").status_code == 422


def _reference_observe(message_id: int, text: str) -> list[tuple[Any, ...]]:
    """signals.observe as first written: every pattern with re.IGNORECASE, no fast path."""
    import re

    from crt_loops.mind import signals as s

    def rx(p: Any) -> re.Pattern[str]:
        return re.compile(p.pattern, re.IGNORECASE | re.MULTILINE)

    tag = f"#{message_id}"
    words = text.split()
    out: list[tuple[Any, ...]] = []

    def asked(match: re.Match[str]) -> str:
        return f'asked "{match.group(0).lower()}" ({tag})'

    if m := rx(s._BRIEF).search(text):
        out.append(("verbosity", 0.0, s.EXPLICIT, asked(m)))
    elif m := rx(s._DETAIL).search(text):
        out.append(("verbosity", 1.0, s.EXPLICIT, asked(m)))
    elif len(words) > 80:
        out.append(("verbosity", 0.8, s.HINT, f"writes at length ({tag})"))
    elif rx(s._WHY_HOW).search(text):
        out.append(("verbosity", 0.7, s.HINT, f"asks why/how ({tag})"))
    if m := rx(s._FORMAL).search(text):
        out.append(("formality", 1.0, s.EXPLICIT, asked(m)))
    elif m := rx(s._CASUAL).search(text):
        out.append(("formality", 0.0, s.EXPLICIT, asked(m)))
    elif len(words) >= 3:
        lowered = [w.strip(".,!?;:").lower() for w in words]
        formal = len(rx(s._FORMAL_MARK).findall(text)) + 0.5 * text[:1].isupper()
        formal += 0.5 * (text.rstrip()[-1:] in ".?!")
        casual = sum(1 for w in lowered if w in s._SLANG) + (1.0 if text == text.lower() else 0.0)
        casual += 0.5 * ("!!" in text or "??" in text)
        target = max(0.0, min(1.0, 0.5 + 0.12 * (formal - casual)))
        label = "formal" if target > 0.6 else "casual" if target < 0.4 else "neutral"
        out.append(("formality", target, s.IMPLICIT, f"{label} phrasing ({tag})"))
    if m := rx(s._NO_EMOJI).search(text):
        out.append(("emoji", 0.0, s.EXPLICIT, asked(m)))
    elif m := rx(s._MORE_EMOJI).search(text):
        out.append(("emoji", 1.0, s.EXPLICIT, asked(m)))
    else:
        n = len(s._EMOJI.findall(text))
        target = 1.0 if n >= 2 else 0.7 if n == 1 else 0.0
        out.append(("emoji", target, s.IMPLICIT, f"{n} emoji ({tag})"))
    for field, options, implicit in (
        ("formatting", s._FMT_EXPLICIT, s._FMT_IMPLICIT),
        ("tone", s._TONE_EXPLICIT, s._TONE_IMPLICIT),
    ):
        vote = next(((c, asked(m)) for c, p in options if (m := rx(p).search(text))), None)
        weight = s.VOTE_EXPLICIT
        if vote is None:
            weight = s.VOTE_IMPLICIT
            vote = next(
                ((c, f"{c} style ({tag})") for c, p in implicit if rx(p).search(text)), None
            )
            if vote is None and field == "formatting" and len(rx(s._LIST_LINE).findall(text)) >= 2:
                vote = ("bullets", f"writes lists ({tag})")
        if vote is not None:
            out.append((field, vote[0], weight, vote[1]))
    return out


def test_observe_equals_its_reference_over_a_corpus() -> None:
    # Pins the fast paths (folded patterns and their anchors, one lowering, named tuples).
    from support.corpus import corpus

    from crt_loops.db.session import MessageRow
    from crt_loops.mind.signals import observe

    for i, text in enumerate(corpus()):
        message = MessageRow(i, "t", "user", text, 0.0, None, None, None)
        assert [tuple(s) for s in observe(message)] == _reference_observe(i, text), text


def test_the_slang_pattern_says_whether_a_word_counts_as_slang() -> None:
    # observe() counts slang only where _SLANG_WORD matches: on ASCII text it must match
    # exactly when some word, stripped of the marks the count strips, is on the slang list.
    import random

    from support.corpus import corpus

    from crt_loops.mind import signals as s
    from crt_loops.mind.patterns import Folded

    rng = random.Random(9)
    pieces = ["lol", "u", "ur", "yo", "tbh", "us", "you", "ya", "lolx", ".", ",", "!", ";", "-"]
    spaces = [" ", "\n", "\t", "\x0b", "\x1c", ""]
    texts = [
        "".join(rng.choice(pieces) + rng.choice(spaces) for _ in range(rng.randint(1, 6)))
        for _ in range(5000)
    ]
    for text in [*corpus(), *texts]:
        if not text.isascii():
            continue
        want = any(w.strip(s._STRIPPED) in s._SLANG for w in text.lower().split())
        assert (s._SLANG_WORD.search(Folded.of(text)) is not None) == want, repr(text)
