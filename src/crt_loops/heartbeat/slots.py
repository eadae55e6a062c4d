"""LLM slots for heartbeats: a counted pool whose waits are bounded and end at shutdown.

A ``threading.BoundedSemaphore`` waited on without a timeout let 50 concurrent run-now requests
with a slow model each hold one of the server's worker threads for minutes: ``/health`` and the
dashboard stopped answering and SIGTERM waited for all of them. Here every wait has a deadline
(a manual run gives up after a few seconds and answers 429), and :meth:`SlotPool.close` wakes
every waiter at once so shutdown never queues behind the model.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator


class SlotPool:
    """``size`` slots; ``acquire`` waits at most ``timeout`` seconds (None: until free or
    closed). Thread-safe. ``waiting`` and ``in_use`` are for status and tests."""

    def __init__(self, size: int) -> None:
        if size < 1:
            raise ValueError("a slot pool needs at least one slot")
        self.size = size
        self._in_use = 0
        self._waiting = 0
        self._closed = False
        self._cond = threading.Condition()

    @property
    def in_use(self) -> int:
        with self._cond:
            return self._in_use

    @property
    def waiting(self) -> int:
        with self._cond:
            return self._waiting

    @property
    def closed(self) -> bool:
        with self._cond:
            return self._closed

    def acquire(self, timeout: float | None) -> bool:
        """Take a slot: True when taken, False when none freed within ``timeout`` or the pool
        was closed."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            self._waiting += 1
            try:
                while not self._closed and self._in_use >= self.size:
                    left = None if deadline is None else deadline - time.monotonic()
                    if left is not None and left <= 0:
                        return False
                    self._cond.wait(left)
                if self._closed:
                    return False
                self._in_use += 1
                return True
            finally:
                self._waiting -= 1

    def release(self) -> None:
        with self._cond:
            if self._in_use <= 0:
                raise RuntimeError("released a slot that was not taken")
            self._in_use -= 1
            self._cond.notify()

    @contextlib.contextmanager
    def holding(self) -> Iterator[None]:
        """For code that already called acquire() successfully: release on the way out."""
        try:
            yield
        finally:
            self.release()

    def close(self) -> None:
        """Refuse every new and waiting acquire (shutdown). Slots in use stay in use until
        released. Idempotent."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
