"""A heartbeat run the database refused to record is recorded once the database can take it.

With the session DB locked by another connection past the busy timeout, or the disk full, a
run-now could neither take its lease nor write its record: the client got an error and the run
never appeared in the history. Now the run gets the verdict ``failed``/``db_error`` and its
record is handed to the store's :class:`~crt_loops.db.deferred.DeferredWrites`, which writes it
(the row first, if even that had failed) as soon as the database is writable again.
"""

from __future__ import annotations

from collections.abc import Callable

from crt_loops.core.enums import RunOutcome, RunReason
from crt_loops.db import heartbeats
from crt_loops.db.availability import classify
from crt_loops.db.session import SessionDB
from crt_loops.heartbeat import recording
from crt_loops.heartbeat.gates import fail
from crt_loops.heartbeat.recording import RunState

__all__ = ["record_when_writable"]


def record_when_writable(
    db: SessionDB,
    state: RunState,
    hb: heartbeats.ThreadHeartbeat,
    exc: Exception,
    *,
    started: float,
    clock: Callable[[], float],
    default_timezone: str | None,
) -> bool:
    """Give the run the verdict failed/db_error and queue its record. False, and nothing
    queued, when ``exc`` is not a passing database problem (a bug, for the caller to raise)."""
    if classify(exc) is None:
        return False
    run = state.run
    ended = (
        ""
        if run.outcome in (RunOutcome.RUNNING, RunOutcome.FAILED)
        else f"; the run had ended {run.outcome}"
    )
    recording.apply(
        state, fail(RunReason.DB_ERROR, f"database: {exc}{ended}; recorded once writable")
    )

    def write() -> None:
        if heartbeats.get_run(db, run.run_id) is None:
            heartbeats.start_run(
                db,
                run_id=run.run_id,
                thread_id=run.thread_id,
                trigger=run.trigger,
                dry_run=run.dry_run,
                now=run.started_at,
            )
        recording.record(
            db, state, hb, started=started, clock=clock, default_timezone=default_timezone
        )

    db.deferred.submit(f"heartbeat run {run.run_id} of thread {run.thread_id} (db_error)", write)
    return True
