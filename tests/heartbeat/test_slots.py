"""LLM slots: bounded waits, and close() ends every wait at once."""

from __future__ import annotations

import threading
import time

import pytest

from crt_loops.heartbeat.slots import SlotPool


def test_acquire_within_size_then_a_bounded_wait_fails() -> None:
    pool = SlotPool(2)
    assert pool.acquire(0) and pool.acquire(0)
    started = time.monotonic()
    assert not pool.acquire(0.05)
    assert 0.05 <= time.monotonic() - started < 3.0  # the wait's own bound, not a hang
    pool.release()
    assert pool.acquire(0)
    assert pool.in_use == 2


def test_a_waiter_gets_the_slot_that_is_released() -> None:
    pool = SlotPool(1)
    assert pool.acquire(None)
    got: list[bool] = []
    waiter = threading.Thread(target=lambda: got.append(pool.acquire(10)))
    waiter.start()
    deadline = time.monotonic() + 5
    while pool.waiting == 0 and time.monotonic() < deadline:
        threading.Event().wait(0.005)
    pool.release()
    waiter.join(5)
    assert got == [True]


def test_close_wakes_every_waiter_at_once() -> None:
    pool = SlotPool(1)
    assert pool.acquire(None)
    results: list[bool] = []
    waiters = [
        threading.Thread(target=lambda: results.append(pool.acquire(None))) for _ in range(5)
    ]
    for w in waiters:
        w.start()
    deadline = time.monotonic() + 5
    while pool.waiting < 5 and time.monotonic() < deadline:
        threading.Event().wait(0.005)
    started = time.monotonic()
    pool.close()
    for w in waiters:
        w.join(5)
    assert results == [False] * 5
    assert time.monotonic() - started < 3.0  # woken, not left to time out: there is no timeout
    assert not pool.acquire(None)
    pool.release()  # the holder still releases its slot normally


def test_release_without_acquire_is_an_error() -> None:
    with pytest.raises(RuntimeError, match="not taken"):
        SlotPool(1).release()
