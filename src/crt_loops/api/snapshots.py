"""Answers every dashboard tab shares, read once for all of them.

With 20 tabs polling every 3 s, the thread list was built ~7 times a second from the same rows:
a COUNT and 100 rows read and serialized each time, a third of a poll's CPU (bench/scale.py). A
kept answer is used while two things hold: this process has ended no write transaction since it
was read (``SessionDB.writes_ended``, bumped after each commit, so a change made here is seen by
the very next poll), and it is younger than ``ttl`` seconds, the bound for writes this process
cannot count (another host on the same PostgreSQL database, a ``crt`` command on the file).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from crt_loops.core.clock import Clock

T = TypeVar("T")

#: The longest a kept answer is used: the dashboard polls every 3 s.
TTL_SECONDS = 1.0
#: Distinct keys kept at most (a key is a query's shape: a few in practice).
MAX_KEYS = 64


@dataclass(frozen=True)
class _Kept:
    value: Any
    writes: int
    at: float


class Snapshots:
    """Values keyed by name, each valid until the DB is written here or ``ttl`` passes."""

    def __init__(self, ttl: float = TTL_SECONDS, clock: Clock = time.monotonic) -> None:
        self.ttl = ttl
        self._clock = clock
        self._lock = threading.Lock()
        self._kept: dict[str, _Kept] = {}

    def get(self, key: str, writes: Callable[[], int], build: Callable[[], T]) -> T:
        """The kept value of ``key``, or ``build()`` kept from now; ``writes`` is the DB's
        count of ended writes, read before building (a write that commits while ``build``
        reads makes the result stale at once, never current)."""
        seen, now = writes(), self._clock()
        with self._lock:
            kept = self._kept.get(key)
        if kept is not None and kept.writes == seen and now - kept.at < self.ttl:
            value: T = kept.value
            return value
        value = build()
        with self._lock:
            if key not in self._kept and len(self._kept) >= MAX_KEYS:
                self._kept.clear()
            self._kept[key] = _Kept(value, seen, now)
        return value
