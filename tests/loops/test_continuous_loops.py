"""The loop runner: tick/run split, error boundary, bounded stop, restart, leases."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from support.clock import FakeClock
from support.waiting import wait_for

from crt_loops.db.session import SessionDB
from crt_loops.loops.runner import BackgroundLoop, LoopState, LoopStateError, TickOutcome


class CountingLoop(BackgroundLoop):
    name = "counting"
    log_prefix = "[COUNTING_LOOP]"

    def __init__(self, fail_on: set[int] | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.calls = 0
        self.fail_on = fail_on or set()
        self.ticked = threading.Event()

    def do_tick(self) -> Mapping[str, Any]:
        self.calls += 1
        self.ticked.set()
        if self.calls in self.fail_on:
            raise RuntimeError(f"boom on call {self.calls}")
        return {"calls": self.calls}


def test_tick_is_callable_directly_and_counts(clock: FakeClock) -> None:
    loop = CountingLoop(interval_seconds=1800, enabled=True, clock=clock)
    result = loop.tick()
    assert result.outcome is TickOutcome.OK
    assert loop.calls == 1 and loop.ticks == 1
    assert loop.status()["last_tick_at"] is not None
    assert loop.status()["running"] is False


def test_error_boundary_records_and_keeps_going(clock: FakeClock) -> None:
    loop = CountingLoop(fail_on={1}, interval_seconds=1800, enabled=True, clock=clock)
    first = loop.tick()
    assert first.outcome is TickOutcome.FAILED
    assert loop.failures == 1
    assert "boom on call 1" in (loop.last_error or "")
    second = loop.tick()
    assert second.outcome is TickOutcome.OK
    assert loop.last_error is None
    assert loop.failures == 1


def test_raising_tick_does_not_kill_thread() -> None:
    """A failing pass is recorded and the thread keeps ticking (woken, never slept on)."""
    loop = CountingLoop(fail_on={1, 2}, interval_seconds=1800, enabled=True)
    loop.start()
    try:
        wait_for(lambda: loop.calls >= 1)
        loop.wake()
        wait_for(lambda: loop.calls >= 2)
        loop.wake()
        wait_for(lambda: loop.calls >= 3)
        assert loop.running
        assert loop.failures == 2
    finally:
        assert loop.stop(timeout=2)


def test_stop_is_prompt_with_long_interval_and_restartable() -> None:
    loop = CountingLoop(interval_seconds=1800, enabled=True)
    assert loop.start() is True
    assert loop.start() is False  # already running: a no-op, not a second thread
    wait_for(lambda: loop.calls == 1)
    assert loop.stop(timeout=1.0) is True
    assert loop.state is LoopState.STOPPED and not loop.running
    assert loop.stop() is True  # idempotent
    # restart: a new thread, ticking again (the earlier system never restarted)
    assert loop.start() is True
    wait_for(lambda: loop.calls == 2)
    assert loop.running
    assert loop.stop(timeout=1.0) is True


def test_injected_waiter_drives_many_ticks_without_waiting(clock: FakeClock) -> None:
    """A 30-minute loop runs ten passes in milliseconds with a waiter that advances the clock."""
    waits: list[float] = []
    holder: dict[str, CountingLoop] = {}

    def waiter(event: threading.Event, timeout: float) -> bool:
        waits.append(timeout)
        clock.advance(timeout)
        if len(waits) >= 10:
            holder["loop"].stop(timeout=0)  # stop from inside: no self-join
        return False

    loop = CountingLoop(interval_seconds=1800, enabled=True, clock=clock, waiter=waiter)
    holder["loop"] = loop
    start = clock.now
    loop.start()
    wait_for(lambda: not loop.is_alive)
    assert loop.calls == 10
    assert waits == [1800.0] * 10
    assert clock.now - start == 18000
    assert loop.state is LoopState.STOPPED


def test_start_while_stopping_is_refused_with_a_sentence() -> None:
    release = threading.Event()

    class SlowLoop(CountingLoop):
        def do_tick(self) -> Mapping[str, Any]:
            self.ticked.set()
            release.wait(10)
            return {}

    loop = SlowLoop(interval_seconds=1800, enabled=True)
    loop.start()
    wait_for(loop.ticked.is_set)
    assert loop.stop(timeout=0.05) is False
    assert loop.state is LoopState.STOPPING
    with pytest.raises(LoopStateError, match="still stopping"):
        loop.start()
    release.set()
    wait_for(lambda: not loop.is_alive)
    assert loop.state is LoopState.STOPPED
    assert loop.stop() is True


def test_interval_must_be_positive() -> None:
    with pytest.raises(ValueError, match="interval_seconds"):
        CountingLoop(interval_seconds=0, enabled=True)


def test_lease_gives_one_owner_per_pass(tmp_path: Path, clock: FakeClock) -> None:
    """Two processes' loops sharing one DB: while one holds the pass lease the other skips."""
    db = SessionDB(tmp_path / "crt.db", clock=clock)
    try:
        a = CountingLoop(interval_seconds=60, enabled=True, db=db, clock=clock, owner="proc-a")
        b = CountingLoop(interval_seconds=60, enabled=True, db=db, clock=clock, owner="proc-b")
        assert db.acquire_lease(a.lease_name, "proc-a", 120)
        result = b.tick()
        assert result.outcome is TickOutcome.LEASE_HELD and b.calls == 0
        assert result.detail["holder"] == "proc-a"
        db.release_lease(a.lease_name, "proc-a")
        assert b.tick().outcome is TickOutcome.OK and b.calls == 1
        # the lease is released after the pass, so the other owner can run the next one
        assert a.tick().outcome is TickOutcome.OK and a.calls == 1
        # a crashed holder's lease expires
        assert db.acquire_lease(a.lease_name, "dead-proc", 120)
        assert b.tick().outcome is TickOutcome.LEASE_HELD
        clock.advance(121)
        assert b.tick().outcome is TickOutcome.OK
    finally:
        db.close()
