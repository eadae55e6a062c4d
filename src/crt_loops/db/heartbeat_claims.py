"""Who runs which thread's heartbeat, and when: the schedule's reads and the per-thread leases.

A claim is decided by one conditional upsert on ``leases`` (``hb:<thread_id>``), never by the
read before it, so two workers never both run a thread; a claimed thread is hidden from other
claims until its run records the real next due time, or its holder's lease expires or is
released at startup because the holder died. On PostgreSQL, where several hosts claim at once,
the whole claim is one statement with ``FOR UPDATE SKIP LOCKED`` (``PG_CLAIM_SQL``,
docs/storage.md).
"""

from __future__ import annotations

from crt_loops.core.identity import owner_is_dead
from crt_loops.db.conn import POSTGRES, Connection
from crt_loops.db.leases import drop_lease, take_lease, take_leases
from crt_loops.db.session import SessionDB

LEASE_PREFIX = "hb:"
# A run still recorded ``running`` whose holder's lease expired (the holder died, on this host
# or another) is settled by recovery before its thread is claimed again: without this, a new
# run could start while the dead one still looked in flight, and its pending actions were
# re-sent beside the new run's.
UNSETTLED_RUN = (
    "SELECT 1 FROM heartbeat_runs r WHERE r.thread_id = t.thread_id AND r.outcome = 'running'"
)
# Due threads in due order, each with whether an unexpired lease holds it (bench/scheduler.py
# checks its plan walks ix_threads_hb_due).
CLAIM_CANDIDATES_SQL = (
    "SELECT t.thread_id, l.expires_at >= :now FROM thread_sessions t "
    "LEFT JOIN leases l ON l.name = :prefix || t.thread_id "
    "WHERE t.heartbeat_next_due IS NOT NULL AND t.heartbeat_next_due <= :now "
    f"  AND NOT EXISTS ({UNSETTLED_RUN}) "
    "ORDER BY t.heartbeat_next_due LIMIT :window"
)
# PostgreSQL, where hosts claim concurrently: one statement picks free due threads, skipping
# rows another host's claim has locked this instant (it is taking them), takes their leases
# with the conditional upsert (a lease taken meanwhile by a run-now loses us the thread) and
# hides them from later claims until the run records its real next due time.
PG_CLAIM_SQL = (
    "WITH due AS ("
    "  SELECT t.thread_id FROM thread_sessions t "
    "  WHERE t.heartbeat_next_due IS NOT NULL AND t.heartbeat_next_due <= :now "
    "    AND NOT (t.thread_id = ANY(:exclude)) "
    "    AND NOT EXISTS (SELECT 1 FROM leases l WHERE l.name = :prefix || t.thread_id "
    "                    AND l.expires_at >= :now) "
    f"    AND NOT EXISTS ({UNSETTLED_RUN}) "
    "  ORDER BY t.heartbeat_next_due LIMIT :limit "
    "  FOR UPDATE OF t SKIP LOCKED"
    "), taken AS ("
    "  INSERT INTO leases (name, owner, acquired_at, expires_at) "
    "  SELECT :prefix || thread_id, :owner, :now, :expires FROM due "
    "  ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, "
    "    acquired_at = excluded.acquired_at, expires_at = excluded.expires_at "
    "  WHERE leases.expires_at < :now "
    "  RETURNING name"
    ") "
    "UPDATE thread_sessions s SET heartbeat_next_due = :expires FROM taken "
    "WHERE s.thread_id = substr(taken.name, :cut) "
    "RETURNING s.thread_id, s.heartbeat_next_due"
)
PG_BUSY_SQL = (
    "SELECT t.thread_id FROM thread_sessions t JOIN leases l "
    "  ON l.name = :prefix || t.thread_id AND l.expires_at >= :now "
    "WHERE t.heartbeat_next_due IS NOT NULL AND t.heartbeat_next_due <= :now "
    "  AND NOT (t.thread_id = ANY(:exclude)) "
    "ORDER BY t.heartbeat_next_due LIMIT :window"
)


def earliest_due(db: SessionDB) -> tuple[str, float] | None:
    """The enabled thread due first (an index lookup, not a scan)."""
    row = db.query_one(
        "SELECT thread_id, heartbeat_next_due FROM thread_sessions "
        "WHERE heartbeat_next_due IS NOT NULL ORDER BY heartbeat_next_due LIMIT 1"
    )
    return (row[0], float(row[1])) if row else None


def count_scheduled(db: SessionDB) -> int:
    row = db.query_one("SELECT COUNT(*) FROM thread_sessions WHERE heartbeat_next_due IS NOT NULL")
    return int(row[0]) if row else 0


def lease_name(thread_id: str) -> str:
    return LEASE_PREFIX + thread_id


def claim_due(
    db: SessionDB,
    *,
    now: float,
    owner: str,
    ttl: float,
    limit: int,
    exclude: frozenset[str] = frozenset(),
) -> tuple[list[str], list[str]]:
    """Atomically lease up to ``limit`` due threads; returns (claimed, busy).

    ``busy`` are due threads whose lease someone else holds (a run-now, or another worker);
    ``exclude`` are threads the caller is already running.
    """
    if db.dialect == POSTGRES:
        with db.write() as tx:
            return _claim_due_pg(tx, now=now, owner=owner, ttl=ttl, limit=limit, exclude=exclude)
    wanted: list[str] = []
    busy: list[str] = []
    with db.write() as tx:
        due = tx.execute(
            CLAIM_CANDIDATES_SQL,
            {"now": now, "prefix": LEASE_PREFIX, "window": limit * 4 + len(exclude)},
        ).fetchall()
        for thread_id, held in due:
            if thread_id in exclude:
                continue
            if len(wanted) >= limit:
                break
            (busy if held else wanted).append(thread_id)
        # The claim itself is the one conditional upsert: the read above only picks candidates,
        # so on a backend whose writers run concurrently a lease taken meanwhile loses us the
        # thread (it is busy) instead of giving it to two workers. Not re-entrant, even for the
        # same owner: a thread whose heartbeat is in flight in this very process must not be
        # claimed again by the next refill of the pool.
        taken = take_leases(tx, [lease_name(t) for t in wanted], owner, now, ttl, renew=False)
        claimed = [t for t in wanted if lease_name(t) in taken]
        busy += [t for t in wanted if lease_name(t) not in taken]
        # The slot is taken: hide it from other workers' claims until the run records its real
        # next due time (or, if the holder dies, until its lease expires). Without this every
        # other worker found it due and leased and recorded a skipped/busy run for it
        # (tests/test_workers.py).
        if claimed:
            tx.executemany(
                "UPDATE thread_sessions SET heartbeat_next_due = ? WHERE thread_id = ?",
                [(now + ttl, t) for t in claimed],
            )
    return claimed, busy


def _claim_due_pg(
    tx: Connection, *, now: float, owner: str, ttl: float, limit: int, exclude: frozenset[str]
) -> tuple[list[str], list[str]]:
    """:func:`claim_due` on PostgreSQL: the claim is :data:`PG_CLAIM_SQL`, one statement."""
    args = {
        "now": now,
        "owner": owner,
        "expires": now + ttl,
        "prefix": LEASE_PREFIX,
        "cut": len(LEASE_PREFIX) + 1,
        "limit": limit,
        "window": limit * 4,
        "exclude": sorted(exclude),
    }
    claimed = [str(r[0]) for r in tx.execute(PG_CLAIM_SQL, args).fetchall()]
    # Threads another holder's live lease keeps (a run-now, or a run on another host that has
    # not recorded yet): reported busy, as on SQLite, and retried shortly by the loop.
    busy = [str(r[0]) for r in tx.execute(PG_BUSY_SQL, args).fetchall() if r[0] not in claimed]
    return claimed, busy


def take_thread_lease(db: SessionDB, thread_id: str, owner: str, ttl: float) -> bool:
    with db.write() as tx:
        return take_lease(tx, lease_name(thread_id), owner, db.clock(), ttl, renew=False)


def take_over_thread_lease(
    db: SessionDB, thread_id: str, owner: str, *, ttl: float, from_owner: str | None
) -> bool:
    """Take the thread's lease if it is free, expired, or still held by ``from_owner`` (a
    holder known dead); one conditional upsert, so of two processes recovering at once one wins.
    """
    now = db.clock()
    with db.write() as tx:
        row = tx.execute(
            "INSERT INTO leases (name, owner, acquired_at, expires_at) VALUES (?, ?, ?, ?) "
            "ON CONFLICT(name) DO UPDATE SET owner = excluded.owner, "
            "  acquired_at = excluded.acquired_at, expires_at = excluded.expires_at "
            "WHERE leases.expires_at < excluded.acquired_at OR leases.owner = ? "
            "RETURNING name",
            (lease_name(thread_id), owner, now, now + ttl, from_owner or ""),
        ).fetchone()
    return row is not None


def release_thread_lease(db: SessionDB, thread_id: str, owner: str) -> None:
    db.release_lease(lease_name(thread_id), owner)


def release_dead_leases(db: SessionDB, *, due_by: float) -> int:
    """Delete every lease whose holder is a process on this host that no longer runs; a thread
    it had claimed is due again by ``due_by`` at the latest (a claim hid it until ``now + ttl``).

    A SIGKILLed holder's lease otherwise blocked its thread (run-now answered 409, scheduled
    runs were recorded busy) until the lease expired, minutes after the restart
    (tests/test_crash_safety.py).
    """
    rows = db.query("SELECT name, owner FROM leases")
    dead = [(str(name), str(owner)) for name, owner in rows if owner_is_dead(str(owner))]
    if dead:
        with db.write() as tx:
            for name, owner in dead:
                drop_lease(tx, name, owner)
            tx.executemany(
                "UPDATE thread_sessions SET heartbeat_next_due = MIN(heartbeat_next_due, ?) "
                "WHERE thread_id = ? AND heartbeat_next_due IS NOT NULL",
                [
                    (due_by, name[len(LEASE_PREFIX) :])
                    for name, _ in dead
                    if name.startswith(LEASE_PREFIX)
                ],
            )
    return len(dead)


def lease_owner(db: SessionDB, thread_id: str) -> str | None:
    holder = db.lease_holder(lease_name(thread_id))
    return holder[0] if holder else None
