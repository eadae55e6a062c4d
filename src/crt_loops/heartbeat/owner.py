"""Quiet while the owner talks: a scheduled heartbeat waits while its thread is in use.

The owner is "active" in a thread while their last message there (a posted message or a chat)
is younger than ``CRT_HEARTBEAT_OWNER_QUIET_SECONDS``. A scheduled or reply-woken run in that
window is recorded as ``skipped``/``owner_active`` with the time it will retry, which is the
end of the quiet window, not a whole interval later; run-now is never deferred.
"""

from __future__ import annotations

from crt_loops.core import metrics
from crt_loops.core.clock import iso
from crt_loops.core.enums import RunReason
from crt_loops.db.heartbeats import RunRecord
from crt_loops.db.session import SessionDB
from crt_loops.db.wakes import last_owner_message_at
from crt_loops.heartbeat.gates import Verdict, skip


def quiet_until(last_message_at: float | None, quiet_seconds: float, now: float) -> float | None:
    """The end of the owner's quiet window if it is still open at ``now``, else None (pure)."""
    if last_message_at is None or quiet_seconds <= 0:
        return None
    until = last_message_at + quiet_seconds
    return until if until > now else None


def owner_active_until(
    db: SessionDB, thread_id: str, *, quiet_seconds: float, now: float
) -> float | None:
    """The time a deferred heartbeat of this thread should retry, or None to run now."""
    if quiet_seconds <= 0:
        return None
    return quiet_until(last_owner_message_at(db, thread_id), quiet_seconds, now)


def defer(db: SessionDB, run: RunRecord, quiet_seconds: float, now: float) -> Verdict | None:
    """The owner-active gate: while the owner is talking in the run's thread, the run is
    ``skipped``/``owner_active`` with ``retry_at`` at the end of the quiet window."""
    until = owner_active_until(db, run.thread_id, quiet_seconds=quiet_seconds, now=now)
    if until is None:
        return None
    run.retry_at = until
    metrics.observe_owner_deferral()
    return skip(
        RunReason.OWNER_ACTIVE,
        f"your owner is talking in this thread; retrying at {iso(until)} (no LLM call)",
    )
