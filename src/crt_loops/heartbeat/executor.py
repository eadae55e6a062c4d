"""The heartbeat runner: one heartbeat for one thread, end to end, from the lease to the record.

    lease ─► run row (running) ─► pipeline (gates ─► context ─► LLM ─► outbox ─► Ledger)
          ─► record (outcome, next due) ─► release

The runner holds the lease and the run's error boundary; the parts live in their own modules:
heartbeat/gates.py (each check that can stop a run), heartbeat/pipeline.py (the steps),
heartbeat/recording.py (the run's record and next due time), heartbeat/recovery.py (what a
crash left behind), heartbeat/updates.py (config changes) and heartbeat/schedule.py (the pure
time maths). Gates are cheap and recorded
as ``skipped`` with a reason and no LLM call. Run-now (``trigger=manual``) bypasses the
schedule, the active hours and the unchanged-context gate, never validation, the target or rate
limits. Every action is written to the outbox with its idempotency key before it is sent; the
Ledger deduplicates on that key, so re-sending after a crash lands once.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from crt_loops.core.enums import RunReason, Trigger
from crt_loops.db import heartbeats
from crt_loops.db.errors import DatabaseUnavailable
from crt_loops.heartbeat import recording, recovery, updates
from crt_loops.heartbeat.config import HeartbeatConfig
from crt_loops.heartbeat.deps import LedgerLimits, RunnerDeps, RunnerOptions, from_settings
from crt_loops.heartbeat.gates import fail
from crt_loops.heartbeat.pipeline import Pipeline
from crt_loops.heartbeat.recording import RunState
from crt_loops.heartbeat.schedule import BACKOFF_STEPS

if TYPE_CHECKING:
    from crt_loops.db.session import SessionDB
    from crt_loops.ledger.embed import EmbeddedLedger
    from crt_loops.llm.client import LLM
    from crt_loops.settings import Settings

__all__ = [
    "BACKOFF_STEPS",
    "HeartbeatBusy",
    "HeartbeatRunner",
    "HeartbeatThreadNotFound",
    "LedgerLimits",
    "RunnerDeps",
    "RunnerOptions",
]

logger = logging.getLogger(__name__)

PREFIX = "[HEARTBEAT_LOOP]"


class HeartbeatBusy(RuntimeError):
    """Raised when a heartbeat for the thread is already running (here or in another process)."""


class HeartbeatThreadNotFound(LookupError):
    """Raised when a heartbeat is asked for a thread that does not exist."""


class HeartbeatRunner:
    """Runs heartbeats. Thread-safe: one run per thread at a time (DB lease), any number of
    threads in parallel, at most ``max_concurrency`` LLM calls in flight.

    ``llm`` and ``ledger`` may be replaced between runs (each run uses them as they are at its
    start).
    """

    def __init__(self, deps: RunnerDeps, options: RunnerOptions) -> None:
        self.db: SessionDB = deps.db
        self.llm: LLM = deps.llm
        self.ledger = deps.ledger
        self.heartbeat_md = deps.heartbeat_md
        self.clock: Callable[[], float] = deps.clock
        self.options = options
        self.owner = options.owner
        self.lease_ttl = options.lease_ttl
        self._llm_slots = threading.BoundedSemaphore(max(1, options.max_concurrency))
        self.on_change: Callable[[], None] = lambda: None

    @classmethod
    def from_app_state(
        cls,
        *,
        settings: Settings,
        db: SessionDB,
        llm: LLM,
        ledger: EmbeddedLedger | None,
        ledger_error: str | None = None,
    ) -> HeartbeatRunner:
        return cls(
            *from_settings(settings, db=db, llm=llm, ledger=ledger, ledger_error=ledger_error)
        )

    # -- runs --------------------------------------------------------------------------------

    def run(
        self,
        thread_id: str,
        *,
        trigger: Trigger,
        force_dry_run: bool = False,
        lease_held: bool = False,
    ) -> heartbeats.RunRecord:
        """One heartbeat; always returns the finished run record (failures are outcomes).

        Raises HeartbeatBusy when another run holds the thread, HeartbeatThreadNotFound for an
        unknown thread.
        """
        trigger = Trigger(trigger)
        hb = heartbeats.get_thread_heartbeat(self.db, thread_id)
        if hb is None:
            if lease_held:
                heartbeats.release_thread_lease(self.db, thread_id, self.owner)
            raise HeartbeatThreadNotFound(f"thread {thread_id!r} does not exist")
        if not lease_held and not heartbeats.take_thread_lease(
            self.db, thread_id, self.owner, self.lease_ttl
        ):
            raise HeartbeatBusy(f"a heartbeat for thread {thread_id!r} is already running")
        started = time.perf_counter()
        now = self.clock()
        config = hb.config
        dry_run = force_dry_run or config.dry_run
        run = heartbeats.RunRecord.begin(thread_id, trigger=trigger, dry_run=dry_run, now=now)
        state = RunState(run=run, config=config)
        try:
            heartbeats.start_run(
                self.db,
                run_id=run.run_id,
                thread_id=thread_id,
                trigger=trigger,
                dry_run=dry_run,
                now=now,
            )
            self._run_pipeline(state, hb, forced=trigger is Trigger.MANUAL)
            recording.record(
                self.db,
                state,
                hb,
                started=started,
                clock=self.clock,
                default_timezone=self.options.default_timezone,
            )
        finally:
            try:
                heartbeats.release_thread_lease(self.db, thread_id, self.owner)
            except DatabaseUnavailable as exc:  # the lease expires on its own
                logger.warning("%s could not release the lease of %s: %s", PREFIX, thread_id, exc)
        self.on_change()
        finished = heartbeats.get_run(self.db, run.run_id)
        return finished or run

    def _run_pipeline(
        self, state: RunState, hb: heartbeats.ThreadHeartbeat, *, forced: bool
    ) -> None:
        """The run's error boundary: whatever happens becomes the run's verdict."""
        pipeline = Pipeline(
            db=self.db,
            llm=self.llm,
            ledger=self.ledger,
            heartbeat_md=self.heartbeat_md,
            options=self.options,
            llm_slots=self._llm_slots,
            clock=self.clock,
        )
        thread_id = state.run.thread_id
        try:
            verdict = pipeline.run(state, hb, forced=forced)
        except DatabaseUnavailable as exc:  # e.g. locked past the busy timeout
            logger.error("%s Failed to run heartbeat: %s: database: %s", PREFIX, thread_id, exc)
            verdict = fail(RunReason.DB_ERROR, f"database: {exc}")
        except Exception as exc:  # a failure is an outcome; BaseException goes through
            logger.exception("%s Failed to run heartbeat: %s: %s", PREFIX, thread_id, exc)
            verdict = fail(RunReason.INTERNAL_ERROR, f"{type(exc).__name__}: {exc}")
        recording.apply(state, verdict)

    def record_busy(self, thread_id: str, *, retry_in: float) -> None:
        """A due thread whose lease someone else holds: record it and retry shortly."""
        recording.record_busy(self.db, thread_id, now=self.clock(), retry_in=retry_in)

    def recover(self) -> dict[str, Any]:
        """At startup: runs left ``running`` by a crash become failed/interrupted, and outbox
        actions left ``pending`` are sent again with their original idempotency key."""
        report = recovery.recover(self.db, self.ledger, owner=self.owner, clock=self.clock)
        return dict(report.as_dict())

    # -- configs -----------------------------------------------------------------------------

    def update_config(self, thread_id: str, patch: dict[str, Any]) -> HeartbeatConfig:
        """Merge ``patch`` into the stored config atomically and reschedule the thread.

        Raises pydantic.ValidationError (nothing written) for an invalid patch.
        """
        config = updates.update_config(
            self.db,
            thread_id,
            patch,
            clock=self.clock,
            default_timezone=self.options.default_timezone,
        )
        self.on_change()  # a config change wakes the loop: it reschedules at once
        return config
