"""Abandoner: calls run on threads that are kept for the next call, and a stop ends them."""

from __future__ import annotations

import threading

import pytest
from support.waiting import wait_for

from crt_loops.core.abandon import Abandoner


class Stopped(Exception):
    """What the tests' callers get once the Abandoner was aborted."""


def _thread_name() -> str:
    return threading.current_thread().name


def test_a_finished_call_leaves_its_thread_for_the_next_one() -> None:
    calls = Abandoner("Test", idle_seconds=30)
    first = calls.run(threading.get_ident, Stopped)
    wait_for(lambda: calls.idle_threads == 1)
    assert calls.run(threading.get_ident, Stopped) == first
    # Each call still has a name of its own in the log; a waiting thread says it waits.
    names = [calls.run(_thread_name, Stopped) for _ in range(2)]
    assert names[0] != names[1] and all(n.startswith("test-call-") for n in names)
    wait_for(lambda: calls.idle_threads == 1)
    (idle,) = [t for t in threading.enumerate() if t.name == "test-idle"]
    calls.abort()
    idle.join(5)
    assert not idle.is_alive() and calls.idle_threads == 0


def test_an_idle_thread_ends_after_idle_seconds() -> None:
    calls = Abandoner("Test", idle_seconds=0.05)
    calls.run(lambda: None, Stopped)
    wait_for(lambda: not [t for t in threading.enumerate() if t.name.startswith("test-")])
    assert calls.idle_threads == 0
    assert calls.run(lambda: 7, Stopped) == 7  # a new thread, then
    calls.abort()


def test_errors_reach_the_caller_and_the_thread_stays_usable() -> None:
    calls = Abandoner("Test", idle_seconds=30)

    def fail() -> None:
        raise ValueError("boom")

    with pytest.raises(ValueError, match="boom"):
        calls.run(fail, Stopped)
    assert calls.run(lambda: "after", Stopped) == "after"
    calls.abort()


def test_abort_releases_a_waiting_caller_and_the_stuck_thread_ends_after_its_call() -> None:
    calls = Abandoner("Test", idle_seconds=30)
    release = threading.Event()
    started = threading.Event()
    outcome: list[BaseException] = []

    def stuck() -> None:
        started.set()
        release.wait(10)

    def caller() -> None:
        try:
            calls.run(stuck, Stopped)
        except Stopped as exc:
            outcome.append(exc)

    waiting = threading.Thread(target=caller, name="caller")
    waiting.start()
    started.wait(5)
    (worker,) = [t for t in threading.enumerate() if t.name.startswith("test-call-")]
    assert calls.abort() == 1
    waiting.join(5)
    assert [type(e) for e in outcome] == [Stopped]
    with pytest.raises(Stopped, match="no Test call made"):
        calls.run(lambda: None, Stopped)
    release.set()
    worker.join(5)
    assert not worker.is_alive()  # aborted: it does not wait for a next call
    assert calls.idle_threads == 0


def test_concurrent_calls_each_get_a_thread() -> None:
    calls = Abandoner("Test", idle_seconds=30)
    barrier = threading.Barrier(3, timeout=5)
    results: list[int] = []

    def meet() -> int:
        barrier.wait()
        return threading.get_ident()

    callers = [
        threading.Thread(target=lambda: results.append(calls.run(meet, Stopped))) for _ in range(2)
    ]
    for t in callers:
        t.start()
    barrier.wait()  # both calls are running at once, on two threads
    for t in callers:
        t.join(5)
    assert len(set(results)) == 2
    wait_for(lambda: calls.idle_threads == 2)
    calls.abort()
