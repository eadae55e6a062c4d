"""End to end: with the fake Ollama as the LLM and short intervals, a thread given 20 new
messages gets every message scored, one reflection entry, a personality profile and (chance 1)
a self-reply, all made by the loops on their own schedule; then idle passes cost nothing."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from fastapi.testclient import TestClient
from support import llm_scripts
from support.fake_ollama import FakeOllama
from support.waiting import wait_for

from crt_loops.api.app import create_app
from crt_loops.settings import Settings

MESSAGES = [
    "I got the offer from the lab in Lisbon today!",
    "Not sure yet whether to accept, my partner works here.",
    "Please keep answers short, bullet points are best.",
    "We talked about it over dinner, she might be able to work remotely.",
    "The salary is lower but the research is exactly what I want.",
] * 4


def test_loops_think_about_a_thread_on_their_own(
    make_settings: Callable[..., Settings], fake_ollama: FakeOllama, tmp_path: Path
) -> None:
    llm_scripts.install_thinking_routes(fake_ollama)
    settings = make_settings(
        ollama_host=fake_ollama.url,
        reflection_loop_enabled=False,  # started below, once the messages are in
        personality_loop_enabled=False,
        journal_self_reply_loop_enabled=False,
        reflection_loop_seconds=1,
        personality_loop_seconds=1,
        journal_self_reply_loop_seconds=1,
        journal_self_reply_chance=1.0,
        journal_self_reply_min_seconds=0,
    )
    with TestClient(create_app(settings), client=("127.0.0.1", 1)) as client:
        for text in MESSAGES:
            assert (
                client.post("/api/threads/lisbon/messages", json={"content": text}).status_code
                == 201
            )
        for name in ("reflection", "personality", "journal_self_reply"):
            assert client.post(f"/api/loops/{name}/start").json()["running"] is True

        def scored() -> bool:
            msgs = client.get("/api/threads/lisbon/messages").json()["messages"]
            return len(msgs) == 20 and all(m["importance"] is not None for m in msgs)

        wait_for(scored, timeout=30)
        msgs = client.get("/api/threads/lisbon/messages").json()["messages"]
        assert {m["scored_by"] for m in msgs} == {"llm"}

        def journal() -> list[dict[str, object]]:
            return client.get("/api/threads/lisbon/journal").json()["entries"]

        def has(kind: str) -> bool:
            return any(e["entry_type"] == kind for e in journal())

        wait_for(lambda: has("reflection") and has("personality") and has("self_reply"), timeout=30)
        entries = journal()
        reflections = [e for e in entries if e["entry_type"] == "reflection"]
        assert len(reflections) == 1
        evidence = [i for ins in reflections[0]["meta"]["insights"] for i in ins["evidence"]]
        assert evidence and set(evidence) <= {m["id"] for m in msgs}
        profile = client.get("/api/threads/lisbon/personality").json()
        assert profile["profile"]["verbosity"] is not None
        replies = [e for e in entries if e["entry_type"] == "self_reply"]
        assert replies[0]["reply_to"] in {e["id"] for e in entries}

        # The agent answers its entries and may continue each chain (at most 3 replies deep);
        # wait until the journal stops growing across several self-reply passes.
        def journal_ticks() -> int:
            loops = {lp["name"]: lp for lp in client.get("/api/loops").json()["loops"]}
            return int(loops["journal_self_reply"]["ticks"])

        def settled() -> bool:
            before, ticks_before = journal(), journal_ticks()
            wait_for(lambda: journal_ticks() >= ticks_before + 3, timeout=15)
            return journal() == before

        wait_for(settled, timeout=60)
        entries = journal()
        replies = [e for e in entries if e["entry_type"] == "self_reply"]
        assert 2 <= len(replies) <= 6  # both entries answered; chains capped at 3

        # Nothing new from here on: further passes make no LLM call and write nothing.
        loops = {lp["name"]: lp for lp in client.get("/api/loops").json()["loops"]}
        ticks = {name: loops[name]["ticks"] for name in ("reflection", "personality")}
        ticks["journal_self_reply"] = loops["journal_self_reply"]["ticks"]
        calls = len(fake_ollama.chat_calls)
        wait_for(
            lambda: all(
                loop["ticks"] >= ticks[loop["name"]] + 2
                for loop in client.get("/api/loops").json()["loops"]
                if loop["name"] in ticks
            ),
            timeout=15,
        )
        assert len(fake_ollama.chat_calls) == calls
        assert journal() == entries
