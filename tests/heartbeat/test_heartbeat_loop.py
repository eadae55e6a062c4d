"""HeartbeatLoop: sleeps until the earliest due thread, claims with leases, honours per-thread
intervals and the concurrency limit, retries busy threads shortly; driven by an injected clock."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from support import heartbeat_scripts as hs
from support.fake_ollama import FakeOllama, Reply
from support.hb_env import HeartbeatEnv, heartbeat_env
from support.waiting import wait_for

from crt_loops.db import heartbeat_claims, heartbeats
from crt_loops.heartbeat.loop import BUSY_RETRY_SECONDS, HeartbeatLoop
from crt_loops.heartbeat.slots import SlotPool


@pytest.fixture
def env(tmp_path: Path, fake_ollama: FakeOllama, db_target: Path | str) -> Iterator[HeartbeatEnv]:
    with heartbeat_env(tmp_path, fake_ollama, db_target=db_target) as e:
        hs.install(fake_ollama, hs.silent)
        yield e


def make_loop(env: HeartbeatEnv, **kwargs: object) -> HeartbeatLoop:
    return HeartbeatLoop(
        runner_factory=lambda: env.runner,
        interval_seconds=1800,
        enabled=True,
        db=env.db,
        clock=env.clock,
        **kwargs,  # type: ignore[arg-type]
    )


def test_sleeps_the_full_interval_when_nothing_is_enabled(env: HeartbeatEnv) -> None:
    loop = make_loop(env)
    assert loop.tick().detail == {"runs": 0, "busy": 0}
    assert loop.next_delay() == 1800
    assert env.fake.chat_calls == []


def test_newly_enabled_thread_runs_within_a_minute(
    env: HeartbeatEnv, caplog: pytest.LogCaptureFixture
) -> None:
    loop = make_loop(env)
    env.configure(enabled=True, every_seconds=3600)
    delay = loop.next_delay()
    assert 0 < delay <= 60
    with caplog.at_level(logging.INFO):
        assert loop.tick().detail["runs"] == 0  # not due yet
    # The first wake says the loop runs at INFO; later wakes say it at DEBUG only.
    assert "[HEARTBEAT_LOOP] Checker loop running" in caplog.text
    caplog.clear()
    env.clock.advance(delay)
    with caplog.at_level(logging.INFO):
        assert loop.tick().detail["runs"] == 1
    assert "Checker loop running" not in caplog.text
    (run,) = heartbeats.list_runs(env.db, "default")
    assert run.trigger == "schedule" and run.outcome == "silent"
    assert "[HEARTBEAT_LOOP] Heartbeat due for thread: default" in caplog.text
    with caplog.at_level(logging.DEBUG):
        loop.tick()
    assert "[HEARTBEAT_LOOP] Checker loop running" in caplog.text
    # then it sleeps until the thread is next due, an interval later
    assert loop.next_delay() == pytest.approx(1800)  # capped by CRT_HEARTBEAT_LOOP_SECONDS
    hb = heartbeats.get_thread_heartbeat(env.db, "default")
    assert hb is not None and hb.next_due == pytest.approx(env.clock.now + 3600)


def test_per_thread_intervals_are_honoured(env: HeartbeatEnv) -> None:
    """The earlier system ignored per-thread intervals (an `every` vs `every_seconds` mismatch)."""
    env.configure("fast", enabled=True, every=600, skip_when_unchanged=False)
    env.configure("slow", enabled=True, every_seconds="30m", skip_when_unchanged=False)
    loop = make_loop(env)
    start = env.clock.now
    while env.clock.now - start < 3 * 3600:
        loop.tick()
        env.clock.advance(max(loop.next_delay(), 1))
    fast = len(heartbeats.list_runs(env.db, "fast", limit=100))
    slow = len(heartbeats.list_runs(env.db, "slow", limit=100))
    assert fast in (18, 19) and slow in (6, 7), (fast, slow)


def test_threads_do_not_all_fire_together(env: HeartbeatEnv) -> None:
    for i in range(20):
        env.configure(f"t{i}", enabled=True, every_seconds=1800)
    dues = {heartbeats.get_thread_heartbeat(env.db, f"t{i}").next_due for i in range(20)}  # type: ignore[union-attr]
    assert len(dues) >= 15  # a deterministic per-thread phase spreads them


def test_busy_thread_is_retried_shortly(env: HeartbeatEnv) -> None:
    env.configure(enabled=True, every_seconds=1800)
    env.clock.advance(61)
    assert heartbeat_claims.take_thread_lease(env.db, "default", "another-worker", 300)
    loop = make_loop(env)
    assert loop.tick().detail == {"runs": 0, "busy": 1}
    (run,) = heartbeats.list_runs(env.db, "default")
    assert (run.outcome, run.reason) == ("skipped", "busy")
    assert loop.next_delay() == pytest.approx(BUSY_RETRY_SECONDS)
    heartbeat_claims.release_thread_lease(env.db, "default", "another-worker")
    env.clock.advance(BUSY_RETRY_SECONDS)
    assert loop.tick().detail["runs"] == 1


def test_at_most_max_concurrency_llm_calls_in_flight(env: HeartbeatEnv) -> None:
    for i in range(5):
        env.configure(f"t{i}", enabled=True, every_seconds=1800)
    env.clock.advance(61)
    env.fake.route("HeartbeatDecision", lambda req: Reply(content="HEARTBEAT_OK", delay=0.2))
    env.runner._llm_slots = SlotPool(2)
    loop = make_loop(env, max_concurrency=2)
    assert loop.tick().detail == {"runs": 5, "busy": 0}
    assert env.fake.max_in_flight == 2
    for i in range(5):
        (run,) = heartbeats.list_runs(env.db, f"t{i}")  # exactly one run each, no spurious "busy"
        assert run.outcome == "silent"


def test_a_bad_stored_config_does_not_stop_the_pass(env: HeartbeatEnv) -> None:
    env.configure("good", enabled=True)
    env.configure("bad", enabled=True)
    with env.db.write() as tx:
        tx.execute(
            "UPDATE thread_sessions SET heartbeat_config_json = ? WHERE thread_id = 'bad'",
            (json.dumps({"enabled": True, "every_seconds": "soon", "target": 7}),),
        )
    env.clock.advance(61)
    loop = make_loop(env)
    assert loop.tick().outcome.value == "ok"
    assert heartbeats.list_runs(env.db, "good")[0].outcome == "silent"
    assert len(heartbeats.list_runs(env.db, "bad")) == 1


def test_runner_that_cannot_be_built_is_reported_and_retried(env: HeartbeatEnv) -> None:
    attempts = []

    def factory():  # type: ignore[no-untyped-def]
        attempts.append(1)
        if len(attempts) == 1:
            raise RuntimeError("no Ledger key")
        return env.runner

    loop = HeartbeatLoop(
        runner_factory=factory, interval_seconds=1800, enabled=True, db=env.db, clock=env.clock
    )
    result = loop.tick()
    assert result.outcome.value == "failed"
    assert "no Ledger key" in (loop.status()["last_error"] or "")
    assert loop.tick().outcome.value == "ok"
    assert loop.status()["last_error"] is None


def test_wake_cuts_the_sleep_short(env: HeartbeatEnv) -> None:
    loop = HeartbeatLoop(
        runner_factory=lambda: env.runner, interval_seconds=1800, enabled=True, db=env.db
    )
    loop.start()
    try:
        wait_for(lambda: loop.ticks >= 1)
        loop.wake()
        wait_for(lambda: loop.ticks >= 2)
    finally:
        assert loop.stop(timeout=2)
