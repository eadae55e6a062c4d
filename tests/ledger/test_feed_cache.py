"""The feed proxy's cache and budget: a burst costs one Ledger call, a flood only its share."""

from __future__ import annotations

import threading

import pytest
from support.clock import FakeClock

from crt_loops.ledger.feed_cache import FeedBudgetExhausted, FeedCache, RequestBudget, feed_budget


def test_budget_is_a_sliding_window() -> None:
    clock = FakeClock()
    budget = RequestBudget(2, 60.0, clock)
    assert budget.try_spend() is None
    clock.advance(10)
    assert budget.try_spend() is None
    wait = budget.try_spend()
    assert wait == pytest.approx(50.0)
    clock.advance(50)
    assert budget.try_spend() is None  # the first request left the window


def test_feed_share_is_a_fifth_of_the_agents_budget() -> None:
    assert feed_budget(100).limit == 20
    assert feed_budget(3).limit == 1


def test_cached_within_ttl_then_fetched_again() -> None:
    clock = FakeClock()
    cache: FeedCache[int] = FeedCache(RequestBudget(10, 60, clock), ttl=10, clock=clock)
    calls: list[int] = []

    def fetch() -> int:
        calls.append(1)
        return len(calls)

    assert cache.get("hot", fetch).value == 1
    clock.advance(9)
    hit = cache.get("hot", fetch)
    assert (hit.value, hit.stale, hit.age) == (1, False, 9)
    clock.advance(2)
    assert cache.get("hot", fetch).value == 2
    assert len(calls) == 2


def test_past_the_budget_a_stale_copy_is_served_or_a_wait_is_named() -> None:
    clock = FakeClock()
    cache: FeedCache[str] = FeedCache(RequestBudget(2, 60, clock), ttl=1, clock=clock)
    assert cache.get("a", lambda: "page a").value == "page a"
    assert cache.get("b", lambda: "page b").value == "page b"
    clock.advance(5)
    stale = cache.get("a", lambda: "never")
    assert (stale.value, stale.stale) == ("page a", True)
    with pytest.raises(FeedBudgetExhausted) as info:
        cache.get("c", lambda: "never")
    assert info.value.retry_after == pytest.approx(55)
    assert "heartbeat keeps the rest" in str(info.value)


def test_a_concurrent_burst_for_one_page_makes_one_call() -> None:
    cache: FeedCache[int] = FeedCache(RequestBudget(100, 60))
    release = threading.Event()
    calls: list[int] = []

    def slow_fetch() -> int:
        calls.append(1)
        release.wait(5)
        return 7

    results: list[int] = []
    workers = [
        threading.Thread(target=lambda: results.append(cache.get("hot", slow_fetch).value))
        for _ in range(20)
    ]
    for w in workers:
        w.start()
    release.set()
    for w in workers:
        w.join(5)
    assert results == [7] * 20
    assert len(calls) == 1


def test_a_failed_fetch_caches_nothing_and_pins_no_lock() -> None:
    cache: FeedCache[int] = FeedCache(RequestBudget(1000, 60))

    def broken() -> int:
        raise OSError("ledger down")

    for key in range(200):
        with pytest.raises(OSError):
            cache.get(("cursor", key), broken)
    assert cache._fetching == {}
    assert cache.get("hot", lambda: 1).value == 1


def test_a_fresh_read_skips_the_ttl_but_not_the_budget() -> None:
    clock = FakeClock()
    cache: FeedCache[int] = FeedCache(RequestBudget(3, 60, clock), ttl=10, clock=clock)
    calls: list[int] = []

    def fetch() -> int:
        calls.append(1)
        return len(calls)

    assert cache.get("hot", fetch).value == 1
    clock.advance(0.5)
    # The owner just acted: even a copy half a second old may predate it, so ask again.
    assert cache.get("hot", fetch, fresh=True).value == 2
    assert cache.get("hot", fetch).value == 2  # and the next plain read is served from it
    clock.advance(2)
    assert cache.get("hot", fetch, fresh=True).value == 3
    clock.advance(2)
    stale = cache.get("hot", fetch, fresh=True)  # the share is spent: the last copy, marked
    assert (stale.value, stale.stale) == (3, True)
    assert len(calls) == 3
