"""The owner's last word in a thread, and reply wakes: what makes a heartbeat wait or run early.

A wake row says "someone answered the agent in this thread's name": the reply watcher writes it
and pulls the thread's due time forward in the same transaction; the run that answers clears it.
"""

from __future__ import annotations

from crt_loops.db.heartbeat_claims import lease_name
from crt_loops.db.leases import take_lease
from crt_loops.db.session import SessionDB, dumps


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


def thread_of_sent(db: SessionDB, kind: str, ledger_id: str) -> str | None:
    """The thread whose heartbeat sent this post or comment (by its Ledger id), if any."""
    row = (
        db.read()
        .execute(
            "SELECT thread_id FROM heartbeat_actions WHERE state = 'sent' AND type = ? "
            "AND ledger_id = ? ORDER BY id DESC LIMIT 1",
            (kind, ledger_id),
        )
        .fetchone()
    )
    return None if row is None else str(row[0])


def take_poll_slot(db: SessionDB, name: str, owner: str, *, now: float, ttl: float) -> bool:
    """A lease that is never released: whoever takes it polls, nobody else for ``ttl``."""
    with db.write() as tx:
        return take_lease(tx, name, owner, now, ttl, renew=False)


def request_wake(
    db: SessionDB, thread_id: str, comment_ids: list[str], *, now: float, due_at: float
) -> None:
    """Record the wake and make the thread due by ``due_at`` (unless its run is in flight: it
    keeps its claim, and the wake makes it due again when that run ends)."""
    with db.write() as tx:
        tx.execute(
            "INSERT INTO heartbeat_wakes (thread_id, reason, comment_ids_json, requested_at) "
            "VALUES (?, 'reply', ?, ?) ON CONFLICT(thread_id) DO UPDATE SET "
            "comment_ids_json = excluded.comment_ids_json, "
            "requested_at = excluded.requested_at",
            (thread_id, dumps(comment_ids[-50:]), now),
        )
        tx.execute(
            "UPDATE thread_sessions SET heartbeat_next_due = MIN(heartbeat_next_due, ?) "
            "WHERE thread_id = ? AND heartbeat_next_due IS NOT NULL AND NOT EXISTS "
            "(SELECT 1 FROM leases WHERE name = ? AND expires_at > ?)",
            (due_at, thread_id, lease_name(thread_id), now),
        )


def pending_wake(db: SessionDB, thread_id: str) -> float | None:
    """When a reply wake for the thread was requested, or None."""
    row = (
        db.read()
        .execute("SELECT requested_at FROM heartbeat_wakes WHERE thread_id = ?", (thread_id,))
        .fetchone()
    )
    return None if row is None else float(row[0])


def clear_wake(db: SessionDB, thread_id: str, *, up_to: float) -> bool:
    """Drop the thread's wake if it was requested by ``up_to``; True when one is still left
    (a reply arrived during the run, so the thread is due again now)."""
    with db.write() as tx:
        tx.execute(
            "DELETE FROM heartbeat_wakes WHERE thread_id = ? AND requested_at <= ?",
            (thread_id, up_to),
        )
        left = tx.execute(
            "SELECT 1 FROM heartbeat_wakes WHERE thread_id = ?", (thread_id,)
        ).fetchone()
    return left is not None
