"""The heartbeat under attack: bounded LLM-slot waits, Ledger 429s, the owner's private data,
secrets split or encoded, and look-alike fence markers in Ledger text."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support import heartbeat_scripts as hs
from support.fake_ollama import FakeOllama, Reply
from support.hb_env import HeartbeatEnv, heartbeat_env

from crt_loops.db import heartbeats as store
from crt_loops.heartbeat.executor import LedgerLimits


@pytest.fixture
def env(tmp_path: Path, fake_ollama: FakeOllama) -> Iterator[HeartbeatEnv]:
    with heartbeat_env(tmp_path, fake_ollama) as e:
        e.configure(enabled=True, every_seconds=600, target="any")
        yield e


def answer(env: HeartbeatEnv, *actions: dict[str, Any]) -> None:
    reply = hs.decision(list(actions), "decided")
    env.fake.route("HeartbeatDecision", lambda req: Reply(content=reply))


# -- LLM slots: a manual run never waits without bound ---------------------------------------


def test_run_now_gives_up_on_a_busy_slot_and_keeps_the_schedule(env: HeartbeatEnv) -> None:
    hs.install(env.fake, hs.silent)
    before = store.get_thread_heartbeat(env.db, "default")
    assert before is not None and before.next_due is not None
    env.runner.manual_slot_wait = 0.2
    assert env.runner._llm_slots.acquire(0)  # another heartbeat is thinking
    try:
        started = time.monotonic()
        run = env.run()
        waited = time.monotonic() - started
    finally:
        env.runner._llm_slots.release()
    assert (run.outcome, run.reason) == ("skipped", "busy")
    assert "no LLM call made" in (run.summary or "")
    assert 0.2 <= waited < 2.0
    assert env.fake.calls_for("HeartbeatDecision") == []
    after = store.get_thread_heartbeat(env.db, "default")
    assert after is not None
    # Nothing was tried: not pushed back an interval, and the last-run columns are untouched.
    assert after.next_due == before.next_due
    assert after.last_outcome == before.last_outcome
    assert env.run().outcome == "silent"  # the slot is free again: the next run-now thinks


def test_close_ends_a_scheduled_wait_at_once(env: HeartbeatEnv) -> None:
    hs.install(env.fake, hs.silent)
    assert env.runner._llm_slots.acquire(0)
    done: list[store.RunRecord] = []
    worker = threading.Thread(target=lambda: done.append(env.run(trigger="schedule")))
    worker.start()
    deadline = time.monotonic() + 10
    while env.runner._llm_slots.waiting == 0 and time.monotonic() < deadline:
        threading.Event().wait(0.01)
    started = time.monotonic()
    env.runner.close()
    worker.join(5)
    env.runner._llm_slots.release()
    assert not worker.is_alive()
    assert time.monotonic() - started < 2.0
    assert (done[0].outcome, done[0].reason) == ("skipped", "busy")
    assert "shutting down" in (done[0].summary or "")
    assert not env.runner.manual_admission.acquire(0)  # no run-now is admitted after close


# -- Ledger 429: rate_limited with the time it may retry -------------------------------------


def test_a_429_while_reading_the_ledger_is_rate_limited_not_ledger_error(
    env: HeartbeatEnv,
) -> None:
    hs.install(env.fake, hs.silent)
    # Someone spent the agent's per-minute budget (the Ledger's clock does not move here).
    for _ in range(100):
        env.ledger.me()
    run = env.run()
    assert (run.outcome, run.reason) == ("failed", "rate_limited")
    assert "may retry at" in (run.error or "")
    hb = store.get_thread_heartbeat(env.db, "default")
    assert hb is not None and hb.next_due is not None
    assert hb.next_due >= env.clock.now + 1  # at the Ledger's reset, not at once
    assert env.fake.calls_for("HeartbeatDecision") == []


def test_a_429_on_a_post_is_rate_limited_and_waits_for_the_cooldown(
    tmp_path: Path, fake_ollama: FakeOllama
) -> None:
    # The Ledger's post cooldown is 30 min, but the runner was not told (another Ledger).
    with heartbeat_env(
        tmp_path, fake_ollama, post_cooldown=1800, known_limits=LedgerLimits(0, 0, 50)
    ) as env:
        env.configure(enabled=True, every_seconds=600, target="any")
        hs.install(env.fake, hs.poster)
        assert env.run().outcome == "acted"
        env.clock.advance(5)
        answer(env, {"type": "post", "submolt": "general", "title": "Again", "content": "More."})
        run = env.run()
        assert (run.outcome, run.reason) == ("failed", "rate_limited"), run.error
        assert "may retry at" in (run.error or "")
        hb = store.get_thread_heartbeat(env.db, "default")
        assert hb is not None and hb.next_due is not None
        assert hb.next_due >= env.clock.now + 1700
