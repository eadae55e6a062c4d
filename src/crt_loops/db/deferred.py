"""Writes that must not be lost to a passing DB problem: retried until the DB takes them.

A heartbeat run-now that found the database locked (or the disk full) still has to appear in
the run history as ``failed``/``db_error``; at that moment nothing can be written. The caller
hands the write to :class:`DeferredWrites`, answers the client, and a short-lived retry thread
tries again with growing pauses until the write goes through, the problem turns out not to be a
passing one (logged and dropped), or ``max_age`` passes (logged and dropped). The thread exits
as soon as nothing is pending, so an idle service runs none. ``close()`` stops it within its
timeout and logs whatever was still pending: a run left ``running`` is then closed as
``interrupted`` by the next start's recovery.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from crt_loops.db.availability import classify

__all__ = ["DeferredWrites"]

logger = logging.getLogger(__name__)

RETRY_DELAYS = (0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0)
MAX_AGE_SECONDS = 3600.0


@dataclass
class _Pending:
    what: str
    write: Callable[[], None]
    since: float
    attempts: int = 0
    last_error: str = field(default="")


class DeferredWrites:
    """A queue of writes retried in the background until they succeed (module docstring)."""

    def __init__(
        self,
        name: str,
        *,
        delays: Sequence[float] = RETRY_DELAYS,
        max_age: float = MAX_AGE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = name
        self.delays = tuple(delays)
        self.max_age = max_age
        self.clock = clock
        self._lock = threading.Lock()
        self._pending: list[_Pending] = []
        self._in_flight = 0  # taken out of _pending by flush() while they are tried
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._closed = False

    @property
    def pending(self) -> int:
        """Writes not made yet, the ones being tried right now included."""
        with self._lock:
            return len(self._pending) + self._in_flight

    def submit(self, what: str, write: Callable[[], None]) -> None:
        """Retry ``write`` until it succeeds; ``what`` names it in the log."""
        with self._lock:
            if self._closed:
                logger.error("%s: not recorded (database closed): %s", self.name, what)
                return
            self._pending.append(_Pending(what, write, self.clock()))
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name=f"db-deferred-{self.name}", daemon=True
                )
                self._thread.start()
        logger.warning("%s: database unavailable; will record later: %s", self.name, what)

    def flush(self) -> int:
        """Try every pending write once now; return how many are still pending."""
        with self._lock:
            batch, self._pending = self._pending, []
            self._in_flight = len(batch)
        kept: list[_Pending] = []
        for item in batch:
            if self._attempt(item):
                with self._lock:
                    self._in_flight -= 1
                continue
            if self.clock() - item.since > self.max_age:
                logger.error(
                    "%s: gave up after %d attempts (%s): %s",
                    self.name,
                    item.attempts,
                    item.last_error,
                    item.what,
                )
                continue
            kept.append(item)
        with self._lock:
            self._pending = kept + self._pending
            self._in_flight = 0
            return len(self._pending)

    def _attempt(self, item: _Pending) -> bool:
        """True when the item is done with: written, or failed for a reason retrying won't fix."""
        item.attempts += 1
        try:
            item.write()
        except Exception as exc:
            if classify(exc) is not None:
                item.last_error = str(exc)[:200]
                return False
            logger.exception("%s: could not record %s", self.name, item.what)
            return True
        logger.info("%s: recorded after %d attempts: %s", self.name, item.attempts, item.what)
        return True

    def _run(self) -> None:
        step = 0
        while not self._stop.wait(self.delays[min(step, len(self.delays) - 1)]):
            step += 1
            if self.flush() == 0:
                with self._lock:
                    if not self._pending:  # a submit in between keeps this thread going
                        self._thread = None
                        return

    def close(self, timeout: float = 2.0) -> None:
        """Stop retrying (bounded by ``timeout``); what is still pending is logged as lost."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            thread = self._thread
        self._stop.set()
        if thread is not None:
            thread.join(timeout)
            if thread.is_alive():
                logger.warning("%s: the retry thread did not stop within %.1fs", self.name, timeout)
        for item in self._pending:
            logger.error("%s: not recorded before shutdown: %s", self.name, item.what)
        self._pending = []
