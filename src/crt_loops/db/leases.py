"""Leases and the key/value table: the small shared records several repositories write.

A lease (``leases``: name, owner, expiry) makes work exactly-once across processes: the
retention job's, a thread's heartbeat. Taking one is a single upsert whose ``WHERE`` decides,
so two processes racing for it cannot both win, whatever the backend's isolation.
"""

from __future__ import annotations

import sqlite3


def take_lease(
    tx: sqlite3.Connection, name: str, owner: str, now: float, ttl: float, *, renew: bool
) -> bool:
    """Take ``name`` for ``owner`` until ``now + ttl`` inside the caller's transaction.

    Free or expired leases are taken; one held by ``owner`` itself is extended (keeping its
    ``acquired_at``) only with ``renew``. Returns whether ``owner`` holds it now.
    """
    row = tx.execute(
        "INSERT INTO leases (name, owner, acquired_at, expires_at) "
        "VALUES (:name, :owner, :now, :expires) "
        "ON CONFLICT(name) DO UPDATE SET owner = excluded.owner, "
        "  acquired_at = CASE WHEN :renew AND leases.owner = excluded.owner "
        "                     THEN leases.acquired_at ELSE excluded.acquired_at END, "
        "  expires_at = excluded.expires_at "
        "WHERE leases.expires_at < :now OR (:renew AND leases.owner = excluded.owner) "
        "RETURNING owner",
        {"name": name, "owner": owner, "now": now, "expires": now + ttl, "renew": int(renew)},
    ).fetchone()
    return row is not None


def drop_lease(tx: sqlite3.Connection, name: str, owner: str) -> None:
    """Release ``name`` if ``owner`` holds it (someone else's lease is left alone)."""
    tx.execute("DELETE FROM leases WHERE name = ? AND owner = ?", (name, owner))


def kv_read(conn: sqlite3.Connection, key: str) -> str | None:
    row = conn.execute("SELECT value FROM kv WHERE key = ?", (key,)).fetchone()
    return str(row[0]) if row else None


def kv_write(tx: sqlite3.Connection, key: str, value: str, now: float) -> None:
    tx.execute(
        "INSERT INTO kv (key, value, updated_at) VALUES (?, ?, ?) "
        "ON CONFLICT(key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
        (key, value, now),
    )
