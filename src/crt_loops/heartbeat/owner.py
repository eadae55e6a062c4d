"""Quiet while the owner talks: a scheduled heartbeat waits while its thread is in use.

The owner is "active" in a thread while their last message there (a posted message or a chat)
is younger than ``CRT_HEARTBEAT_OWNER_QUIET_SECONDS``. A scheduled or reply-woken run in that
window is recorded as ``skipped``/``owner_active`` with the time it will retry, which is the
end of the quiet window, not a whole interval later; run-now is never deferred.
"""

from __future__ import annotations

from crt_loops.db.session import SessionDB


def last_owner_message_at(db: SessionDB, thread_id: str) -> float | None:
    """When the owner last wrote in the thread (walks ``ix_messages_thread`` from the end)."""
    row = (
        db.read()
        .execute(
            "SELECT created_at FROM messages WHERE thread_id = ? AND role = 'user' "
            "ORDER BY id DESC LIMIT 1",
            (thread_id,),
        )
        .fetchone()
    )
    return None if row is None else float(row[0])


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
