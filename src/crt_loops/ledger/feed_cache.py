"""The dashboard's view of the Ledger feed, kept from spending the heartbeat's request budget.

The Ledger allows the agent a number of requests per minute (Moltbook: 100), and the proxy route
``/api/ledger/feed`` spends them with the agent's key. Anything that can make the owner's
browser load a URL (even a cross-site ``<img>``) could call it in a loop, and the next heartbeat
then failed on its own ``GET /home`` with a 429. So the proxy answers from a short cache, with
concurrent misses for the same page sharing one Ledger call, and may spend only a share of the
per-minute budget; past that share it serves the last copy it has (marked stale), or refuses
with the time a request frees up.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")

#: The share of the agent's per-minute Ledger budget the feed proxy may spend.
FEED_BUDGET_SHARE = 0.2
#: How long a fetched feed page is served without asking the Ledger again.
FEED_TTL_SECONDS = 10.0
MAX_ENTRIES = 64


class FeedBudgetExhausted(RuntimeError):
    """Raised when the proxy has spent its share of the budget and holds no copy of the page;
    ``retry_after`` is how many seconds until its next request is allowed."""

    def __init__(self, retry_after: float, limit: int, window: float) -> None:
        super().__init__(
            f"the dashboard's share of the Ledger budget ({limit} requests per {window:.0f} s) "
            f"is spent, so the heartbeat keeps the rest; try again in {math.ceil(retry_after)} s"
        )
        self.retry_after = retry_after


class RequestBudget:
    """At most ``limit`` requests in any ``window`` seconds (a sliding log). Thread-safe."""

    def __init__(
        self, limit: int, window: float = 60.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if limit < 1:
            raise ValueError("a request budget needs a limit of at least 1")
        self.limit = limit
        self.window = window
        self._clock = clock
        self._spent: deque[float] = deque()
        self._lock = threading.Lock()

    def try_spend(self) -> float | None:
        """Spend one request: None if allowed, else the seconds until one is allowed."""
        with self._lock:
            now = self._clock()
            while self._spent and self._spent[0] <= now - self.window:
                self._spent.popleft()
            if len(self._spent) >= self.limit:
                return max(0.0, self._spent[0] + self.window - now)
            self._spent.append(now)
            return None

    @property
    def spent(self) -> int:
        with self._lock:
            now = self._clock()
            return sum(1 for t in self._spent if t > now - self.window)


def feed_budget(
    requests_per_minute: int, clock: Callable[[], float] = time.monotonic
) -> RequestBudget:
    """The feed proxy's share of the agent's per-minute budget (at least one request)."""
    return RequestBudget(max(1, int(requests_per_minute * FEED_BUDGET_SHARE)), 60.0, clock)


@dataclass(frozen=True)
class Cached(Generic[T]):
    """A page as the route returns it: ``age`` seconds old, ``stale`` when past the TTL."""

    value: T
    age: float
    stale: bool


@dataclass
class _Entry(Generic[T]):
    value: T
    fetched_at: float


class FeedCache(Generic[T]):
    """Pages by key, fetched through ``budget``; see the module docstring."""

    def __init__(
        self,
        budget: RequestBudget,
        *,
        ttl: float = FEED_TTL_SECONDS,
        max_entries: int = MAX_ENTRIES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.budget = budget
        self.ttl = ttl
        self.max_entries = max_entries
        self._clock = clock
        self._entries: OrderedDict[Hashable, _Entry[T]] = OrderedDict()
        self._fetching: dict[Hashable, threading.Lock] = {}
        self._lock = threading.Lock()
        self.fetches = 0

    def get(self, key: Hashable, fetch: Callable[[], T], *, fresh: bool = False) -> Cached[T]:
        """The page for ``key``: cached, fetched (one caller per key at a time), or stale.

        ``fresh`` (the owner just acted, or clicked refresh) accepts only a copy fetched after
        the call began, so it shows what the owner just did (a burst of fresh reads still
        makes one Ledger call: the rest wait for it); the budget still applies, so asking for
        it in a loop spends no more than the share.
        Raises FeedBudgetExhausted when the budget is spent and no copy exists; whatever
        ``fetch`` raises propagates and nothing is cached.
        """
        not_before = self._clock() if fresh else None
        cached = self._fresh(key, self.ttl, not_before)
        if cached is not None:
            return cached
        with self._lock:
            gate = self._fetching.setdefault(key, threading.Lock())
        try:
            with gate:  # one Ledger call per key: the rest of a burst reads its result
                return self._fetch_locked(key, fetch, not_before)
        finally:
            with self._lock:
                if key not in self._entries:
                    # A key that never got a page (a failed fetch, a spent budget, a made-up
                    # cursor) must not pin a lock: callers choose keys.
                    self._fetching.pop(key, None)

    def _fetch_locked(
        self, key: Hashable, fetch: Callable[[], T], not_before: float | None
    ) -> Cached[T]:
        cached = self._fresh(key, self.ttl, not_before)
        if cached is not None:
            return cached
        wait = self.budget.try_spend()
        if wait is not None:
            with self._lock:
                entry = self._entries.get(key)
            if entry is None:
                raise FeedBudgetExhausted(wait, self.budget.limit, self.budget.window)
            return Cached(entry.value, self._clock() - entry.fetched_at, stale=True)
        value = fetch()
        with self._lock:
            self.fetches += 1
            self._entries[key] = _Entry(value, self._clock())
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                old, _ = self._entries.popitem(last=False)
                self._fetching.pop(old, None)
        return Cached(value, 0.0, stale=False)

    def _fresh(
        self, key: Hashable, max_age: float, not_before: float | None = None
    ) -> Cached[T] | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            if not_before is not None and entry.fetched_at < not_before:
                return None
            age = self._clock() - entry.fetched_at
            if age > max_age:
                return None
            return Cached(entry.value, age, stale=False)
