"""Retention's deletes: what is old enough to go, in batches of short transactions.

Each batch is its own ``BEGIN IMMEDIATE`` transaction of at most :data:`BATCH` rows, so a large
prune never blocks the loops' writes for long. Which rows may go is decided here, in SQL, so a
row that must stay (a thread's latest heartbeat run, a run with an action still ``pending``)
can never be selected by a caller's mistake.
"""

from __future__ import annotations

from crt_loops.core.enums import ActionState, RunOutcome
from crt_loops.db.store import Store

BATCH = 5_000


def _batched_delete(store: Store, sql: str, cutoff: float) -> int:
    total = 0
    while True:
        with store.write() as tx:
            deleted = tx.execute(sql, (cutoff, BATCH)).rowcount
        total += deleted
        if deleted < BATCH:
            return total


def prune_heartbeat_runs(store: Store, started_before: float) -> int:
    """Finished runs started before the cutoff, except each thread's latest run and any run with
    an action still ``pending`` (recovery must be able to finish it) or ``proposed`` (waiting
    for the owner's approval). Their actions go with them
    (ON DELETE CASCADE)."""
    return _batched_delete(
        store,
        "DELETE FROM heartbeat_runs WHERE rowid IN ("
        " SELECT r.rowid FROM heartbeat_runs r WHERE r.started_at < ?"
        f" AND r.outcome != '{RunOutcome.RUNNING}'"
        " AND r.run_id NOT IN (SELECT a.run_id FROM heartbeat_actions a"
        f"                      WHERE a.state IN ('{ActionState.PENDING}',"
        f" '{ActionState.PROPOSED}'))"
        " AND r.started_at < (SELECT MAX(l.started_at) FROM heartbeat_runs l"
        "                     WHERE l.thread_id = r.thread_id)"
        " LIMIT ?)",
        started_before,
    )


def prune_journal_entries(store: Store, created_before: float) -> int:
    return _batched_delete(
        store,
        "DELETE FROM journal_entries WHERE id IN ("
        " SELECT id FROM journal_entries WHERE created_at < ? ORDER BY id LIMIT ?)",
        created_before,
    )


def prune_messages(store: Store, created_before: float) -> int:
    # Ids are AUTOINCREMENT, never reused, so the loops' watermarks stay valid.
    return _batched_delete(
        store,
        "DELETE FROM messages WHERE id IN ("
        " SELECT id FROM messages WHERE created_at < ? ORDER BY id LIMIT ?)",
        created_before,
    )
