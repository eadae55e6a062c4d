"""The background loops: one runner, four loops, and ``build_loops``.

Every loop is a :class:`BackgroundLoop`: ``tick()`` does one pass of work and is what tests call;
``run()`` only waits on an event and calls ``tick()``. The clock and the waiter are injected, every
tick runs inside an error boundary that records the failure and keeps the thread alive, ``stop()``
is idempotent and bounded, and a stopped loop can be started again.

Passes of the reflection, personality and self-reply loops hold a DB lease (``loop:<name>``) so
that under ``uvicorn --workers N`` exactly one process does each pass.
"""

from __future__ import annotations

import abc
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from crt_loops.core import metrics
from crt_loops.core.clock import Clock, iso, system_clock
from crt_loops.core.enums import LoopState, TickOutcome
from crt_loops.core.identity import PROCESS_OWNER
from crt_loops.db.conn import POSTGRES
from crt_loops.db.session import DatabaseClosedError, SessionDB

if TYPE_CHECKING:
    from crt_loops.loops.passes import WatermarkedService

logger = logging.getLogger(__name__)

Waiter = Callable[[threading.Event, float], object]


def event_waiter(event: threading.Event, timeout: float) -> object:
    """The production waiter: block on the loop's signal until woken, stopped or timed out."""
    return event.wait(timeout)


class LoopStateError(RuntimeError):
    """Raised when a loop is asked for a transition its state does not allow."""


@dataclass
class TickResult:
    outcome: TickOutcome
    detail: Mapping[str, Any]
    duration_ms: float


class BackgroundLoop(abc.ABC):
    """A daemon loop with a tick/run split, an error boundary and a bounded stop."""

    name: str = "loop"
    log_prefix: str = "[LOOP]"
    #: Passes are exactly-once across processes through a DB lease.
    uses_lease: bool = True
    lease_ttl_seconds: float = 120.0

    def __init__(
        self,
        *,
        interval_seconds: float,
        enabled: bool,
        db: SessionDB | None = None,
        clock: Clock = system_clock,
        waiter: Waiter = event_waiter,
        owner: str = PROCESS_OWNER,
        maintenance: Callable[[], object] | None = None,
    ) -> None:
        if interval_seconds <= 0:
            raise ValueError(f"{self.name}: interval_seconds must be > 0, got {interval_seconds}")
        self.interval_seconds = float(interval_seconds)
        self.enabled = enabled
        self.db = db
        if db is not None and db.dialect == POSTGRES:
            # Several hosts share a PostgreSQL database: every host runs the pass and each
            # thread is claimed on its own (loops/passes.py, run_watermarked_pass), so the
            # work spreads instead of one host holding the whole pass.
            self.uses_lease = False
        self.clock = clock
        self._waiter = waiter
        self.owner = owner
        self.maintenance = maintenance  # e.g. retention; runs inside the error boundary
        self._signal = threading.Event()  # set by wake() and stop()
        self._stop = threading.Event()
        self._tick_lock = threading.Lock()  # one tick at a time (loop thread vs. /api/loops/run)
        self._state_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._lease_renewed_at: float | None = None  # time.monotonic() of the last renewal
        self._state = LoopState.STOPPED
        self.ticks = 0
        self.failures = 0
        self.last_error: str | None = None
        self.last_error_at: float | None = None
        self.last_tick_at: float | None = None
        self.last_tick_ms: float | None = None
        self.last_result: Mapping[str, Any] | None = None
        self.next_wake_at: float | None = None

    # -- work -------------------------------------------------------------------------------

    @abc.abstractmethod
    def do_tick(self) -> Mapping[str, Any]:
        """One pass of work. Returns a small summary for status."""

    def has_work(self) -> bool:
        """Read-only check before a pass: False skips it without taking the lease or writing."""
        return True

    def run_for_thread(self, thread_id: str) -> Mapping[str, Any]:
        """This loop's work for one thread, now (``POST /api/loops/run``)."""
        raise LoopStateError(f"the {self.name} loop cannot run for a single thread")

    def next_delay(self) -> float:
        """Seconds to wait after a tick before the next one."""
        return self.interval_seconds

    def keepalive(self) -> bool:
        """Renew this pass's lease; False when the pass should stop early (stopping, or lost).

        Called before every thread of a pass, it writes only when a quarter of the lease's TTL
        has passed since the last renewal: renewing per thread was one row write per thread
        per pass (1,000 writes for a pass over 1,000 threads)."""
        if self._stop.is_set() and self.is_alive:
            return False
        if self.uses_lease and self.db is not None:
            now = time.monotonic()
            renewed = self._lease_renewed_at
            if renewed is not None and now - renewed < self.lease_ttl_seconds / 4:
                return True
            held = self.db.acquire_lease(self.lease_name, self.owner, self.lease_ttl_seconds)
            self._lease_renewed_at = now if held else None
            return held
        return True

    @property
    def lease_name(self) -> str:
        return f"loop:{self.name}"

    def tick(self) -> TickResult:
        """Run one pass inside the error boundary. Never raises an ``Exception``."""
        with self._tick_lock:
            started = time.perf_counter()
            now = self.clock()
            leased = False
            try:
                if self.maintenance is not None:
                    self.maintenance()
                if not self.has_work():
                    self.last_error = None
                    return self._finish(TickOutcome.OK, {"idle": True}, started, now)
                if self.uses_lease and self.db is not None:
                    leased = self.db.acquire_lease(
                        self.lease_name, self.owner, self.lease_ttl_seconds
                    )
                    self._lease_renewed_at = time.monotonic() if leased else None
                    if not leased:
                        holder = self.db.lease_holder(self.lease_name)
                        logger.debug("%s pass skipped: lease held by %s", self.log_prefix, holder)
                        return self._finish(
                            TickOutcome.LEASE_HELD, {"holder": holder and holder[0]}, started, now
                        )
                detail = self.do_tick()
                self.last_error = None
                return self._finish(TickOutcome.OK, detail, started, now)
            except DatabaseClosedError as exc:
                # The service closed the DB while this pass was still going (it was abandoned
                # at shutdown): expected, and not worth a traceback.
                logger.debug("%s pass ended by shutdown: %s", self.log_prefix, exc)
                return self._finish(TickOutcome.FAILED, {"error": "shutdown"}, started, now)
            except Exception as exc:  # the error boundary: record, log, keep the thread alive
                self.failures += 1
                self.last_error = f"{type(exc).__name__}: {exc}"
                self.last_error_at = now
                logger.exception("%s pass failed: %s", self.log_prefix, exc)
                return self._finish(TickOutcome.FAILED, {"error": self.last_error}, started, now)
            finally:
                self._lease_renewed_at = None
                if leased and self.db is not None and not self.db.closed:
                    try:
                        self.db.release_lease(self.lease_name, self.owner)
                    except Exception as exc:  # the lease expires on its own; say so
                        logger.warning(
                            "%s could not release lease %s (it will expire): %s",
                            self.log_prefix,
                            self.lease_name,
                            exc,
                        )

    def _finish(
        self, outcome: TickOutcome, detail: Mapping[str, Any], started: float, now: float
    ) -> TickResult:
        duration_ms = (time.perf_counter() - started) * 1000
        self.ticks += 1
        self.last_tick_at = now
        self.last_tick_ms = duration_ms
        self.last_result = {"outcome": outcome.value, **detail}
        metrics.observe_loop_tick(self.name, outcome.value, duration_ms / 1000)
        return TickResult(outcome, detail, duration_ms)

    # -- lifecycle --------------------------------------------------------------------------

    @property
    def state(self) -> LoopState:
        return self._state

    @property
    def is_alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    @property
    def running(self) -> bool:
        return self._state is LoopState.RUNNING and self.is_alive

    def start(self) -> bool:
        """Start the thread; False if it was already running. Raises while still stopping."""
        with self._state_lock:
            if self._state is LoopState.RUNNING and self.is_alive:
                return False
            if self.is_alive:
                raise LoopStateError(
                    f"{self.name} loop is still stopping (its last pass has not finished); "
                    "try again in a moment"
                )
            self._stop.clear()
            self._signal.clear()
            self._state = LoopState.RUNNING
            self._thread = threading.Thread(target=self.run, name=f"{self.name}-loop", daemon=True)
            self._thread.start()
        logger.info("%s started (interval %.0fs)", self.log_prefix, self.interval_seconds)
        return True

    def request_stop(self) -> None:
        """Ask the thread to stop without waiting (a shutdown asks every loop first, then
        waits on them together). The pass in progress ends after its current item."""
        with self._state_lock:
            thread = self._thread
            if thread is None or not thread.is_alive():
                return
            self._state = LoopState.STOPPING
            self._stop.set()
            self._signal.set()

    def stop(self, timeout: float = 5.0) -> bool:
        """Ask the thread to stop and wait up to ``timeout``; True once it has stopped.

        Idempotent. A pass in progress finishes its current item first; if it takes longer than
        ``timeout`` the loop stays ``stopping``, says so in the log, and stops after that item.
        """
        with self._state_lock:
            thread = self._thread
            if thread is None or not thread.is_alive():
                self._state = LoopState.STOPPED
                return True
            self._state = LoopState.STOPPING
            self._stop.set()
            self._signal.set()
        if thread is threading.current_thread():
            return False
        thread.join(timeout)
        if thread.is_alive():
            logger.warning(
                "%s did not stop within %.1fs; it will stop after its current pass",
                self.log_prefix,
                timeout,
            )
            return False
        with self._state_lock:
            if self._thread is thread:
                self._state = LoopState.STOPPED
        logger.info("%s stopped", self.log_prefix)
        return True

    def wake(self) -> None:
        """Cut the current wait short: the loop ticks again now."""
        self._signal.set()

    def run(self) -> None:
        """The thread body: tick, then wait on the signal until woken, stopped or due."""
        try:
            while not self._stop.is_set():
                self._signal.clear()
                self.tick()
                if self._stop.is_set():
                    break
                delay = max(0.0, self.next_delay())
                self.next_wake_at = self.clock() + delay
                self._waiter(self._signal, delay)
        finally:
            self.next_wake_at = None
            with self._state_lock:
                if self._thread is threading.current_thread():
                    self._state = LoopState.STOPPED

    def status(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "enabled": self.enabled,
            "running": self.running,
            "state": self._state.value,
            "interval_seconds": self.interval_seconds,
            "last_tick_at": iso(self.last_tick_at),
            "next_wake_at": iso(self.next_wake_at) if self.running else None,
            "last_error": self.last_error,
            "last_error_at": iso(self.last_error_at),
            "ticks": self.ticks,
            "failures": self.failures,
            "last_tick_ms": None if self.last_tick_ms is None else round(self.last_tick_ms, 2),
            "last_result": dict(self.last_result) if self.last_result else None,
        }


class ServiceLoop(BackgroundLoop):
    """A loop whose passes are a thinking service's (reflection, personality, self-reply)."""

    def __init__(self, service: WatermarkedService, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.service = service

    def has_work(self) -> bool:
        return self.service.has_work()

    def do_tick(self) -> Mapping[str, Any]:
        return self.service.run_pass(keepalive=self.keepalive).as_dict()

    def run_for_thread(self, thread_id: str) -> Mapping[str, Any]:
        with self._tick_lock:
            return self.service.process_thread(thread_id).as_dict()


class ReflectionLoop(ServiceLoop):
    """Scores new messages and writes reflection entries (see reflection.py)."""

    name = "reflection"
    log_prefix = "[REFLECTION_LOOP]"


class PersonalityLoop(ServiceLoop):
    """Keeps each thread's personality/style profile current (see personality.py)."""

    name = "personality"
    log_prefix = "[PERSONALITY_LOOP]"


class SelfReplyLoop(ServiceLoop):
    """Answers people's journal comments, and sometimes the agent's own entries (journal.py)."""

    name = "journal_self_reply"
    log_prefix = "[JOURNAL_SELF_REPLY_LOOP]"


LOOP_NAMES = ("reflection", "personality", "journal_self_reply", "heartbeat")
