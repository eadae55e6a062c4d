"""Exactly once under ``uvicorn crt_api:app --workers 3``.

Three worker processes share one data dir, so each runs all four loops and tries to serve the
embedded Ledger. The DB leases must make every pass of the reflection, personality and
self-reply loops, and every heartbeat slot of a thread, happen in one process only, and the
Ledger must be served by one process and used by the others. The test counts what the fake
Ollama was asked (per schema title), the journal, the heartbeat runs and the Ledger's posts,
reading the session DB read-only after a graceful stop.
"""

from __future__ import annotations

import itertools
import json
import re
import sqlite3
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from support import heartbeat_scripts, llm_scripts
from support.fake_ollama import FakeOllama
from support.service import Service
from support.waiting import wait_for

pytestmark = pytest.mark.slow

WORKERS = 3
THRESHOLD = 40
HEARTBEAT_MD = "# HEARTBEAT.md\n\n## Checklist\n- Share one useful note about my owner's day\n"
EVERY = 10  # the smallest interval a heartbeat config accepts
WANTED_ACTED = 3  # heartbeat periods to watch

# Two threads, each with enough of the person's words (6 points each from the scripted scorer)
# to cross the reflection threshold once or twice depending on how passes batch them.
MESSAGES = {
    "default": [f"Day {i}: I worked on the migration plan and felt stressed." for i in range(9)],
    "work": [f"Note {i}: my manager asked me to lead the new project." for i in range(8)],
}


def read_db(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    conn.row_factory = sqlite3.Row
    return conn


@pytest.fixture
def service(tmp_path: Path, fake_ollama: FakeOllama) -> Iterator[Service]:
    llm_scripts.install_thinking_routes(fake_ollama)
    heartbeat_scripts.install(fake_ollama, heartbeat_scripts.poster)
    (tmp_path / "HEARTBEAT.md").write_text(HEARTBEAT_MD, encoding="utf-8")
    svc = Service(
        tmp_path,
        workers=WORKERS,
        env={
            "CRT_OLLAMA_HOST": fake_ollama.url,
            "CRT_REFLECTION_LOOP_SECONDS": "1",
            "CRT_PERSONALITY_LOOP_SECONDS": "1",
            "CRT_JOURNAL_SELF_REPLY_LOOP_SECONDS": "1",
            "CRT_JOURNAL_SELF_REPLY_CHANCE": "1",
            "CRT_JOURNAL_SELF_REPLY_MIN_SECONDS": "0",
            "CRT_REFLECTION_THRESHOLD": str(THRESHOLD),
            "CRT_HEARTBEAT_LOOP_ENABLED": "true",
            "CRT_HEARTBEAT_LOOP_SECONDS": "2",
            "CRT_LEDGER_POST_COOLDOWN_SECONDS": "0",
            "CRT_LEDGER_REQUESTS_PER_MINUTE": "10000",
        },
    )
    svc.start(timeout=60)
    try:
        # The parent answers /health as soon as one worker is up: wait for all of them.
        wait_for(lambda: svc.log().count("Application startup complete") >= WORKERS, timeout=60)
        yield svc
    finally:
        svc.stop()


def prompt_ids(call: dict[str, Any]) -> list[int]:
    return [mid for mid, _, _ in llm_scripts.prompt_messages(call)]


def test_every_pass_runs_in_one_process(service: Service, fake_ollama: FakeOllama) -> None:
    url = service.url
    # -- drive it: messages, a heartbeat every 10 s -----------------------------------------
    for thread_id, texts in MESSAGES.items():
        for text in texts:
            r = httpx.post(f"{url}/api/threads/{thread_id}/messages", json={"content": text})
            assert r.status_code == 201, r.text
    r = httpx.post(
        f"{url}/api/threads/default/heartbeat/config",
        json={
            "enabled": True,
            "every_seconds": EVERY,
            "target": "post",
            "skip_when_unchanged": False,
        },
    )
    assert r.status_code == 200, r.text
    n_messages = sum(len(t) for t in MESSAGES.values())

    def all_scored() -> bool:
        for thread_id in MESSAGES:
            msgs = httpx.get(f"{url}/api/threads/{thread_id}/messages").json()["messages"]
            if any(m["importance"] is None for m in msgs):
                return False
        return True

    wait_for(all_scored, timeout=30, interval=0.2)

    # A person's comment on the first reflection: it must be answered exactly once.
    def first_reflection() -> dict[str, Any] | None:
        entries = httpx.get(f"{url}/api/threads/default/journal").json()["entries"]
        refl = [e for e in entries if e["entry_type"] == "reflection"]
        return refl[-1] if refl else None

    reflection = wait_for(first_reflection, timeout=30, interval=0.2)
    r = httpx.post(
        f"{url}/api/threads/default/journal/{reflection['id']}/reply",
        json={"content": "Was it really the migration, or the deadline?"},
    )
    assert r.status_code == 201, r.text
    comment_id = r.json()["id"]

    def acted() -> list[dict[str, Any]]:
        runs = httpx.get(
            f"{url}/api/threads/default/heartbeat/history", params={"limit": 100}
        ).json()["runs"]
        return [run for run in runs if run["outcome"] == "acted"]

    def comment_answered() -> bool:
        entries = httpx.get(f"{url}/api/threads/default/journal").json()["entries"]
        return any(e["reply_to"] == comment_id for e in entries)

    wait_for(lambda: len(acted()) >= WANTED_ACTED and comment_answered(), timeout=60, interval=0.3)

    # -- the Ledger: served once, used by the others ----------------------------------------
    statuses = [httpx.get(f"{url}/api/ledger/status").json() for _ in range(24)]
    assert {s["url"] for s in statuses} == {statuses[0]["url"]}
    assert all(s["reachable"] and s["registered"] for s in statuses), statuses
    log = service.log()
    assert log.count("ledger listening on") == 1, log
    assert log.count("already serves a Ledger (another worker?); using it") == WORKERS - 1, log
    feed = httpx.get(f"{url}/api/ledger/feed", params={"sort": "new", "limit": 100}).json()

    service.stop()  # graceful: runs in flight finish and are recorded
    log = service.log()
    assert "Traceback" not in log, log

    conn = read_db(service.tmp / "data" / "crt.db")
    calls = {
        title: fake_ollama.calls_for(title)
        for title in (
            "ImportanceScores",
            "ReflectionInsights",
            "PersonalityUpdate",
            "JournalReply",
            "HeartbeatDecision",
        )
    }

    # -- reflection: every message scored by exactly one LLM call -----------------------------
    scored = Counter(
        itertools.chain.from_iterable(prompt_ids(c) for c in calls["ImportanceScores"])
    )
    ids = [r["id"] for r in conn.execute("SELECT id FROM messages")]
    assert len(ids) == n_messages
    assert sorted(scored) == sorted(ids), "every message is shown to the scorer"
    assert max(scored.values()) == 1, f"messages scored twice: {scored}"
    assert (
        conn.execute("SELECT COUNT(*) FROM messages WHERE scored_by = 'llm'").fetchone()[0]
        == n_messages
    )

    # -- reflection entries: one per threshold crossing, one LLM call each --------------------
    reflections = conn.execute(
        "SELECT thread_id, meta_json FROM journal_entries WHERE entry_type = 'reflection' "
        "ORDER BY id"
    ).fetchall()
    assert len(reflections) == len(calls["ReflectionInsights"]) >= len(MESSAGES)
    for thread_id in MESSAGES:
        ranges = [json.loads(r["meta_json"]) for r in reflections if r["thread_id"] == thread_id]
        start = 1
        for meta in ranges:
            lo, hi = meta["message_range"]
            assert lo >= start, f"overlapping reflections in {thread_id}: {ranges}"
            assert meta["importance_sum"] >= THRESHOLD
            start = hi + 1
        left = conn.execute(
            "SELECT COALESCE(SUM(importance), 0) FROM messages WHERE thread_id = ? AND id >= ?",
            (thread_id, start),
        ).fetchone()[0]
        assert left < THRESHOLD, f"{thread_id}: a crossing without its reflection"

    # -- personality: each message learnt from once ------------------------------------------
    shown_to_personality = Counter(
        itertools.chain.from_iterable(
            re.findall(r"\[id (\d+)\]", llm_scripts.prompt_text(c))
            for c in calls["PersonalityUpdate"]
        )
    )
    assert calls["PersonalityUpdate"], "the personality loop ran"
    seen = conn.execute(
        "SELECT SUM(json_extract(profile_json, '$.messages_seen')) FROM personality_profiles"
    ).fetchone()[0]
    assert seen == n_messages, "each of the person's messages counted once in the profiles"
    if shown_to_personality:
        assert max(shown_to_personality.values()) == 1, shown_to_personality

    # -- self-reply: no entry answered twice, one LLM call per reply --------------------------
    replies = conn.execute(
        "SELECT reply_to FROM journal_entries WHERE entry_type = 'self_reply'"
    ).fetchall()
    targets = Counter(r["reply_to"] for r in replies)
    assert targets[comment_id] == 1
    assert max(targets.values()) == 1, f"entries answered twice: {targets}"
    assert len(replies) == len(calls["JournalReply"])

    # -- heartbeat: one run per slot, never two at once, one post per acted run ---------------
    runs = conn.execute(
        "SELECT run_id, outcome, reason, started_at, finished_at FROM heartbeat_runs "
        "WHERE thread_id = 'default' ORDER BY started_at"
    ).fetchall()
    assert all(r["outcome"] != "running" for r in runs)
    real = [r for r in runs if r["reason"] != "busy"]
    for a, b in itertools.pairwise(real):
        assert a["finished_at"] <= b["started_at"], f"overlapping runs: {dict(a)} {dict(b)}"
    acted_runs = [r for r in real if r["outcome"] == "acted"]
    assert len(acted_runs) >= WANTED_ACTED
    assert len(calls["HeartbeatDecision"]) == len(real) - sum(
        1 for r in real if r["outcome"] == "skipped"
    )
    sent = conn.execute(
        "SELECT run_id, json_extract(payload_json, '$.title') AS title, ledger_id "
        "FROM heartbeat_actions WHERE state = 'sent' AND type = 'post'"
    ).fetchall()
    assert Counter(r["run_id"] for r in sent) == Counter(r["run_id"] for r in acted_runs)
    ledger = read_db(service.tmp / "data" / "ledger.db")
    posts = ledger.execute("SELECT id, title FROM posts").fetchall()
    titles = Counter(p["title"] for p in posts)
    assert max(titles.values()) == 1, f"duplicate posts: {titles}"
    assert {p["id"] for p in posts} == {r["ledger_id"] for r in sent}
    assert {p["title"] for p in feed["posts"]} <= set(titles)
    busy = [r for r in runs if r["reason"] == "busy"]
    assert not busy, f"{len(busy)} busy skip(s) recorded for another worker's run"
    conn.close()
    ledger.close()
