"""Recording a heartbeat run: its verdict, its row, the thread's next due time, the metrics.

A run is written ``running`` when it starts (heartbeats.start_run) and closed here, once, with
the verdict it came to. The next due time comes from the pure schedule maths: the interval
after a run that went through, the backoff after a failure. A locked DB is retried a few times,
so a record is never dropped for a transient lock.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from crt_loops.core import metrics
from crt_loops.core.enums import RunOutcome, RunReason, Trigger
from crt_loops.db import agent_history, heartbeats
from crt_loops.db.errors import DatabaseUnavailable
from crt_loops.db.session import SessionDB
from crt_loops.heartbeat.config import HeartbeatConfig
from crt_loops.heartbeat.gates import Verdict
from crt_loops.heartbeat.schedule import due_after_failure, next_due

logger = logging.getLogger(__name__)

PREFIX = "[HEARTBEAT_LOOP]"
RECORD_RETRY_DELAYS = (0.1, 0.25, 0.5, 1.0, 2.0)


@dataclass
class RunState:
    """A run being built; its ``run`` is written by :func:`record` when it is finished.

    ``context_hash``: the fingerprint of what the run looked at (None: it never looked).
    ``seen_activity``: comment ids the prompt showed, settled once the run decided on them.
    """

    run: heartbeats.RunRecord
    config: HeartbeatConfig
    context_hash: str | None = None
    seen_activity: set[str] = field(default_factory=set)


def apply(state: RunState, verdict: Verdict) -> None:
    """Give the run its verdict; a failure is logged as a ``Failed to run heartbeat`` line."""
    run = state.run
    run.outcome, run.reason = verdict.outcome, verdict.reason
    if verdict.error is not None:
        run.error = verdict.error[:2000]
    if verdict.summary is not None:
        run.summary = verdict.summary
    if verdict.outcome is RunOutcome.FAILED:
        logger.warning(
            "%s Failed to run heartbeat: thread %s: %s (%s)",
            PREFIX,
            run.thread_id,
            verdict.reason,
            (verdict.error or verdict.summary or "")[:300],
        )


def due_after(
    run: heartbeats.RunRecord,
    config: HeartbeatConfig,
    failures: int,
    *,
    now: float,
    default_timezone: str | None,
) -> float | None:
    """The thread's next due time after ``run``: None when disabled, the backoff after a
    failure, else the interval (moved to the window's next opening when out of hours)."""
    if not config.enabled:
        return None
    window = config.active_window(default_timezone)
    if run.outcome is RunOutcome.FAILED:
        return due_after_failure(now, failures, config.every_seconds, window=window)
    return next_due(now, config.every_seconds, now, run.thread_id, window=window)


def record(
    db: SessionDB,
    state: RunState,
    hb: heartbeats.ThreadHeartbeat,
    *,
    started: float,
    clock: Callable[[], float],
    default_timezone: str | None,
) -> None:
    """Write the run's record, retrying a locked DB a few times. If it still cannot be written,
    the run stays ``running`` and the next start's recovery closes it as ``interrupted``."""
    delays = RECORD_RETRY_DELAYS
    for attempt in range(len(delays) + 1):
        try:
            _finish(db, state, hb, started=started, now=clock(), default_timezone=default_timezone)
            return
        except DatabaseUnavailable as exc:
            if attempt == len(delays):
                logger.error(
                    "%s Failed to run heartbeat: could not record run %s of %s: %s",
                    PREFIX,
                    state.run.run_id,
                    state.run.thread_id,
                    exc,
                )
                raise
            threading.Event().wait(delays[attempt])


def _finish(
    db: SessionDB,
    state: RunState,
    hb: heartbeats.ThreadHeartbeat,
    *,
    started: float,
    now: float,
    default_timezone: str | None,
) -> None:
    run = state.run
    run.finished_at = now
    run.duration_ms = (time.perf_counter() - started) * 1000
    failures = hb.failures + 1 if run.outcome is RunOutcome.FAILED else 0
    due = due_after(run, state.config, failures, now=now, default_timezone=default_timezone)
    if run.outcome in (RunOutcome.ACTED, RunOutcome.SILENT):
        # Decided on: a failed or dry run leaves them for the next heartbeat.
        agent_history.settle_activity(db, state.seen_activity)
    # A skip that never looked at the context keeps the old fingerprint.
    heartbeats.finish_run(db, run, next_due=due, failures=failures, context_hash=state.context_hash)
    metrics.observe_heartbeat_run(run.outcome, run.reason, run.trigger, run.duration_ms / 1000)
    logger.info(
        "%s heartbeat for thread %s: %s%s in %.0f ms",
        PREFIX,
        run.thread_id,
        run.outcome,
        f"/{run.reason}" if run.reason else "",
        run.duration_ms,
    )


def record_busy(db: SessionDB, thread_id: str, *, now: float, retry_in: float) -> None:
    """A due thread whose lease someone else holds: record it and retry shortly."""
    run = heartbeats.RunRecord.begin(thread_id, trigger=Trigger.SCHEDULE, dry_run=False, now=now)
    heartbeats.start_run(
        db,
        run_id=run.run_id,
        thread_id=thread_id,
        trigger=run.trigger,
        dry_run=False,
        now=now,
    )
    run.outcome, run.reason = RunOutcome.SKIPPED, RunReason.BUSY
    run.summary = "another heartbeat for this thread was still running; retrying shortly"
    run.finished_at, run.duration_ms = now, 0.0
    heartbeats.finish_run(
        db,
        run,
        next_due=now + retry_in,
        failures=None,
        context_hash=None,
        update_last=False,
    )
    metrics.observe_heartbeat_run(run.outcome, run.reason, run.trigger, 0.0)
    logger.info("%s thread %s is busy; retrying in %.0fs", PREFIX, thread_id, retry_in)
