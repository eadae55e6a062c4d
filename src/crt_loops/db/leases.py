"""Leases and the key/value table: the small shared records several repositories write.

A lease (``leases``: name, owner, expiry) makes work exactly-once across processes: the
retention job's, a thread's heartbeat. Taking one is a single upsert whose ``WHERE`` decides,
so two processes racing for it cannot both win, whatever the backend's isolation.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from crt_loops.db.conn import Connection, Row
from crt_loops.db.store import Store


@dataclass(frozen=True)
class Lease:
    name: str
    owner: str
    acquired_at: float
    expires_at: float


_LEASE_COLUMNS = "name, owner, acquired_at, expires_at"


def _lease(row: Row) -> Lease:
    return Lease(str(row[0]), str(row[1]), float(row[2]), float(row[3]))


def get_lease(store: Store, name: str) -> Lease | None:
    """The lease row of ``name``, expired or not."""
    row = store.query_one(f"SELECT {_LEASE_COLUMNS} FROM leases WHERE name = ?", (name,))
    return _lease(row) if row else None


def take_leases(
    tx: Connection,
    names: Sequence[str],
    owner: str,
    now: float,
    ttl: float,
    *,
    renew: bool,
) -> set[str]:
    """Take each of ``names`` for ``owner`` until ``now + ttl``, in one statement inside the
    caller's transaction; returns the names ``owner`` holds now.

    Free or expired leases are taken; one held by ``owner`` itself is extended (keeping its
    ``acquired_at``) only with ``renew``. The statement's own ``WHERE`` decides, on the row as
    it is when the statement runs, so what the caller read before cannot make two owners win.
    """
    if not names:
        return set()
    params: dict[str, Any] = {f"name{i}": name for i, name in enumerate(names)}
    params.update(owner=owner, now=now, expires=now + ttl, renew=int(renew))
    rows = ", ".join(f"(:name{i}, :owner, :now, :expires)" for i in range(len(names)))
    taken = tx.execute(
        f"INSERT INTO leases (name, owner, acquired_at, expires_at) VALUES {rows} "
        "ON CONFLICT(name) DO UPDATE SET owner = excluded.owner, "
        "  acquired_at = CASE WHEN :renew = 1 AND leases.owner = excluded.owner "
        "                     THEN leases.acquired_at ELSE excluded.acquired_at END, "
        "  expires_at = excluded.expires_at "
        "WHERE leases.expires_at < :now OR (:renew = 1 AND leases.owner = excluded.owner) "
        "RETURNING name",
        params,
    ).fetchall()
    return {str(r[0]) for r in taken}


def take_lease(
    tx: Connection, name: str, owner: str, now: float, ttl: float, *, renew: bool
) -> bool:
    """:func:`take_leases` for one name: whether ``owner`` holds it now."""
    return name in take_leases(tx, [name], owner, now, ttl, renew=renew)


def drop_lease(tx: Connection, name: str, owner: str) -> None:
    """Release ``name`` if ``owner`` holds it (someone else's lease is left alone)."""
    tx.execute("DELETE FROM leases WHERE name = ? AND owner = ?", (name, owner))


def kv_read(conn: Connection, key: str) -> str | None:
    row = conn.execute("SELECT value FROM kv WHERE key = ?", (key,)).fetchone()
    return str(row[0]) if row else None


def kv_write(tx: Connection, key: str, value: str, now: float) -> None:
    tx.execute(
        "INSERT INTO kv (key, value, updated_at) VALUES (?, ?, ?) "
        "ON CONFLICT(key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
        (key, value, now),
    )
