"""A heartbeat run the database refused to record is recorded once the database can take it.

With the session DB locked by another connection past the busy timeout, or the disk full, a
run-now could neither take its lease nor write its record: the client got an error and the run
never appeared in the history. Now the run is marked ``failed``/``db_error`` and its record is
handed to the store's :class:`~crt_loops.db.deferred.DeferredWrites`, which writes it (the row
first, if even that had failed) as soon as the database is writable again.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import TYPE_CHECKING

from crt_loops.db import heartbeats
from crt_loops.db.availability import classify
from crt_loops.db.session import SessionDB

if TYPE_CHECKING:
    from crt_loops.heartbeat.executor import RunState

__all__ = ["record_when_writable"]


def record_when_writable(
    db: SessionDB,
    state: RunState,
    exc: sqlite3.Error,
    *,
    mark: Callable[..., None],
    finish: Callable[[], None],
) -> bool:
    """Mark the run failed/db_error (``mark(state, "failed", "db_error", error=...)``, the
    runner's own outcome setter) and queue its record (``finish()``, after inserting the run's
    row if it is missing). False, and nothing queued, when ``exc`` is not a passing database
    problem: that is a bug for the caller to raise."""
    if classify(exc) is None:
        return False
    run = state.run
    ended = "" if run.outcome in ("running", "failed") else f"; the run had ended {run.outcome}"
    mark(state, "failed", "db_error", error=f"database: {exc}{ended}; recorded once writable")

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
        finish()

    db.deferred.submit(f"heartbeat run {run.run_id} of thread {run.thread_id} (db_error)", write)
    return True
