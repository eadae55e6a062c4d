"""Heartbeat records in the session DB: configs, runs, the action outbox, claims.

Every function is one short transaction; none waits on the network. A run is written as
``running`` before anything else happens, its actions are written to the outbox (``pending``)
before they are sent, and each is updated right after its Ledger call, so a crash at any moment
leaves something recovery can finish (docs/architecture.md §5 steps 7-8).
"""

from __future__ import annotations

import json
import sqlite3
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from crt_loops.core.clock import iso
from crt_loops.core.enums import ActionState, RunOutcome, RunReason, Trigger
from crt_loops.core.identity import owner_is_dead
from crt_loops.db.leases import drop_lease, take_lease, take_leases
from crt_loops.db.session import SessionDB, dumps, insert_thread
from crt_loops.heartbeat.config import HeartbeatConfig, config_from_json, config_to_json

LEASE_PREFIX = "hb:"
# Due threads in due order, each with whether an unexpired lease holds it (bench/scheduler.py
# checks its plan walks ix_threads_hb_due).
CLAIM_CANDIDATES_SQL = (
    "SELECT t.thread_id, l.expires_at >= :now FROM thread_sessions t "
    "LEFT JOIN leases l ON l.name = :prefix || t.thread_id "
    "WHERE t.heartbeat_next_due IS NOT NULL AND t.heartbeat_next_due <= :now "
    "ORDER BY t.heartbeat_next_due LIMIT :window"
)


@dataclass(frozen=True)
class OutboxRow:
    """One action as the outbox writes it: before it is sent, and after each state change.

    Immutable: a state change is a new row (``dataclasses.replace``), so the run's list of rows
    always says what was written last.
    """

    seq: int
    type: str
    payload: dict[str, Any]
    state: ActionState
    idempotency_key: str
    error: str | None = None
    content_hash: str | None = None
    ledger_id: str | None = None


@dataclass
class ActionRecord:
    """One outbox action as read back from the DB."""

    id: int
    run_id: str
    thread_id: str
    seq: int
    type: str
    payload: dict[str, Any]
    state: ActionState
    ledger_id: str | None
    error: str | None
    idempotency_key: str
    content_hash: str | None
    created_at: float
    updated_at: float

    def as_api(self) -> dict[str, Any]:
        return {
            "type": self.type,
            **self.payload,
            "state": self.state,
            "ledger_id": self.ledger_id,
            "error": self.error,
            "idempotency_key": self.idempotency_key,
        }


@dataclass
class RunRecord:
    """One heartbeat run: ``running`` while in flight, then its outcome."""

    run_id: str
    thread_id: str
    trigger: Trigger
    outcome: RunOutcome
    reason: RunReason | None
    dry_run: bool
    summary: str
    started_at: float
    finished_at: float | None
    duration_ms: float | None
    error: str | None
    prompt_chars: int | None
    llm_ms: float | None
    model: str | None
    actions: list[ActionRecord] = field(default_factory=list)

    @classmethod
    def begin(cls, thread_id: str, *, trigger: Trigger, dry_run: bool, now: float) -> RunRecord:
        """A new run, ``running`` until its outcome is set."""
        return cls(
            run_id=uuid.uuid4().hex,
            thread_id=thread_id,
            trigger=Trigger(trigger),
            outcome=RunOutcome.RUNNING,
            reason=None,
            dry_run=dry_run,
            summary="",
            started_at=now,
            finished_at=None,
            duration_ms=None,
            error=None,
            prompt_chars=None,
            llm_ms=None,
            model=None,
        )

    def as_api(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "thread_id": self.thread_id,
            "trigger": self.trigger,
            "outcome": self.outcome,
            "reason": self.reason,
            "dry_run": self.dry_run,
            "summary": self.summary,
            "actions": [a.as_api() for a in self.actions],
            "started_at": iso(self.started_at),
            "finished_at": iso(self.finished_at),
            "duration_ms": None if self.duration_ms is None else round(self.duration_ms, 2),
            "error": self.error,
            "prompt_chars": self.prompt_chars,
            "llm_ms": None if self.llm_ms is None else round(self.llm_ms, 2),
            "model": self.model,
        }


@dataclass
class ThreadHeartbeat:
    """The heartbeat columns of one thread."""

    thread_id: str
    config: HeartbeatConfig
    configured: bool
    last_run: float | None
    last_summary: str | None
    last_actions: list[dict[str, Any]]
    last_outcome: RunOutcome | None
    last_reason: RunReason | None
    next_due: float | None
    failures: int
    context_hash: str | None


def action_from_row(row: sqlite3.Row) -> ActionRecord:
    return ActionRecord(
        id=row["id"],
        run_id=row["run_id"],
        thread_id=row["thread_id"],
        seq=row["seq"],
        type=row["type"],
        payload=json.loads(row["payload_json"]),
        state=ActionState(row["state"]),
        ledger_id=row["ledger_id"],
        error=row["error"],
        idempotency_key=row["idempotency_key"],
        content_hash=row["content_hash"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


def _run(row: sqlite3.Row) -> RunRecord:
    return RunRecord(
        run_id=row["run_id"],
        thread_id=row["thread_id"],
        trigger=Trigger(row["trigger"]),
        outcome=RunOutcome(row["outcome"]),
        reason=_reason(row["reason"]),
        dry_run=bool(row["dry_run"]),
        summary=row["summary"],
        started_at=row["started_at"],
        finished_at=row["finished_at"],
        duration_ms=row["duration_ms"],
        error=row["error"],
        prompt_chars=row["prompt_chars"],
        llm_ms=row["llm_ms"],
        model=row["model"],
    )


def _reason(value: str | None) -> RunReason | None:
    return None if value is None else RunReason(value)


def _outcome(value: str | None) -> RunOutcome | None:
    return None if value is None else RunOutcome(value)


# -- configs -----------------------------------------------------------------------------


def get_thread_heartbeat(db: SessionDB, thread_id: str) -> ThreadHeartbeat | None:
    row = db.query_one(
        "SELECT thread_id, heartbeat_config_json, heartbeat_last_run, heartbeat_last_summary, "
        "heartbeat_last_actions_json, heartbeat_last_outcome, heartbeat_last_reason, "
        "heartbeat_next_due, heartbeat_failures, heartbeat_context_hash "
        "FROM thread_sessions WHERE thread_id = ?",
        (thread_id,),
    )
    if row is None:
        return None
    raw = row["heartbeat_config_json"]
    return ThreadHeartbeat(
        thread_id=row["thread_id"],
        config=config_from_json(raw),
        configured=raw is not None,
        last_run=row["heartbeat_last_run"],
        last_summary=row["heartbeat_last_summary"],
        last_actions=json.loads(row["heartbeat_last_actions_json"] or "[]"),
        last_outcome=_outcome(row["heartbeat_last_outcome"]),
        last_reason=_reason(row["heartbeat_last_reason"]),
        next_due=row["heartbeat_next_due"],
        failures=row["heartbeat_failures"],
        context_hash=row["heartbeat_context_hash"],
    )


def update_config(
    db: SessionDB,
    thread_id: str,
    merge: Callable[[HeartbeatConfig | None], HeartbeatConfig],
    due: Callable[[HeartbeatConfig, float | None], float | None],
) -> HeartbeatConfig:
    """Read, merge and write a thread's config in one ``BEGIN IMMEDIATE`` transaction.

    Two partial updates at once cannot lose each other's fields. The thread is created if
    needed; if ``merge`` raises (a validation error), nothing is written at all.
    """
    with db.write() as tx:
        now = db.clock()
        insert_thread(tx, thread_id, "", now)
        row = tx.execute(
            "SELECT heartbeat_config_json, heartbeat_last_run FROM thread_sessions "
            "WHERE thread_id = ?",
            (thread_id,),
        ).fetchone()
        raw = row["heartbeat_config_json"]
        config = merge(config_from_json(raw, thread_id=thread_id) if raw is not None else None)
        next_due = due(config, row["heartbeat_last_run"]) if config.enabled else None
        tx.execute(
            "UPDATE thread_sessions SET heartbeat_config_json = ?, heartbeat_next_due = ?, "
            "heartbeat_failures = 0 WHERE thread_id = ?",
            (config_to_json(config), next_due, thread_id),
        )
    return config


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


def take_thread_lease(db: SessionDB, thread_id: str, owner: str, ttl: float) -> bool:
    with db.write() as tx:
        return take_lease(tx, lease_name(thread_id), owner, db.clock(), ttl, renew=False)


def release_thread_lease(db: SessionDB, thread_id: str, owner: str) -> None:
    db.release_lease(lease_name(thread_id), owner)


# -- runs ----------------------------------------------------------------------------------


def start_run(
    db: SessionDB, *, run_id: str, thread_id: str, trigger: Trigger, dry_run: bool, now: float
) -> None:
    with db.write() as tx:
        tx.execute(
            "INSERT INTO heartbeat_runs (run_id, thread_id, trigger, outcome, dry_run, started_at) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (run_id, thread_id, Trigger(trigger), RunOutcome.RUNNING, int(dry_run), now),
        )


def add_actions(db: SessionDB, run_id: str, thread_id: str, rows: Sequence[OutboxRow]) -> None:
    """Write the run's actions to the outbox in one transaction, before any is sent."""
    now = db.clock()
    with db.write() as tx:
        tx.executemany(
            "INSERT INTO heartbeat_actions (run_id, thread_id, seq, type, payload_json, state, "
            "error, idempotency_key, content_hash, created_at, updated_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    run_id,
                    thread_id,
                    r.seq,
                    r.type,
                    dumps(r.payload),
                    ActionState(r.state),
                    r.error,
                    r.idempotency_key,
                    r.content_hash,
                    now,
                    now,
                )
                for r in rows
            ],
        )


def update_action(
    db: SessionDB,
    idempotency_key: str,
    *,
    state: ActionState,
    ledger_id: str | None = None,
    error: str | None = None,
) -> None:
    with db.write() as tx:
        tx.execute(
            "UPDATE heartbeat_actions SET state = ?, ledger_id = COALESCE(?, ledger_id), "
            "error = ?, updated_at = ? WHERE idempotency_key = ?",
            (ActionState(state), ledger_id, error, db.clock(), idempotency_key),
        )


def finish_run(
    db: SessionDB,
    run: RunRecord,
    *,
    next_due: float | None,
    failures: int | None,
    context_hash: str | None,
    update_last: bool = True,
) -> None:
    """Close the run and update the thread's ``heartbeat_last_*`` columns and schedule."""
    actions = list_actions(db, run.run_id)
    summary_actions = [a.as_api() for a in actions]
    with db.write() as tx:
        tx.execute(
            "UPDATE heartbeat_runs SET outcome = ?, reason = ?, summary = ?, finished_at = ?, "
            "duration_ms = ?, error = ?, prompt_chars = ?, llm_ms = ?, model = ?, dry_run = ? "
            "WHERE run_id = ?",
            (
                run.outcome,
                run.reason,
                run.summary,
                run.finished_at,
                run.duration_ms,
                run.error,
                run.prompt_chars,
                run.llm_ms,
                run.model,
                int(run.dry_run),
                run.run_id,
            ),
        )
        sets = [
            "heartbeat_next_due = CASE WHEN heartbeat_config_json IS NULL THEN NULL "
            "WHEN json_extract(heartbeat_config_json, '$.enabled') THEN ? ELSE NULL END"
        ]
        args: list[Any] = [next_due]
        if update_last:
            sets += [
                "heartbeat_last_run = ?",
                "heartbeat_last_summary = ?",
                "heartbeat_last_actions_json = ?",
                "heartbeat_last_outcome = ?",
                "heartbeat_last_reason = ?",
            ]
            args += [run.finished_at, run.summary, dumps(summary_actions), run.outcome, run.reason]
        if failures is not None:
            sets.append("heartbeat_failures = ?")
            args.append(failures)
        if context_hash is not None:
            sets.append("heartbeat_context_hash = ?")
            args.append(context_hash)
        args.append(run.thread_id)
        tx.execute(f"UPDATE thread_sessions SET {', '.join(sets)} WHERE thread_id = ?", args)


def list_actions(db: SessionDB, run_id: str) -> list[ActionRecord]:
    rows = db.query("SELECT * FROM heartbeat_actions WHERE run_id = ? ORDER BY seq", (run_id,))
    return [action_from_row(r) for r in rows]


def get_run(db: SessionDB, run_id: str) -> RunRecord | None:
    row = db.query_one("SELECT * FROM heartbeat_runs WHERE run_id = ?", (run_id,))
    if row is None:
        return None
    run = _run(row)
    run.actions = list_actions(db, run_id)
    return run


def list_runs(db: SessionDB, thread_id: str, *, limit: int = 20) -> list[RunRecord]:
    rows = db.query(
        "SELECT * FROM heartbeat_runs WHERE thread_id = ? ORDER BY started_at DESC, rowid DESC "
        "LIMIT ?",
        (thread_id, limit),
    )
    runs = [_run(r) for r in rows]
    if runs:
        ids = [r.run_id for r in runs]
        marks = ",".join("?" * len(ids))
        by_run: dict[str, list[ActionRecord]] = {}
        for a in db.query(
            f"SELECT * FROM heartbeat_actions WHERE run_id IN ({marks}) ORDER BY seq", ids
        ):
            by_run.setdefault(a["run_id"], []).append(action_from_row(a))
        for run in runs:
            run.actions = by_run.get(run.run_id, [])
    return runs


def outcome_counts(db: SessionDB) -> dict[str, int]:
    # Kept by triggers (migration 4): GROUP BY over every run cost 35 ms at 200,000 runs.
    rows = db.query("SELECT outcome, n FROM heartbeat_run_counts WHERE n > 0")
    return {r[0]: int(r[1]) for r in rows}


# -- recovery ------------------------------------------------------------------------------


def running_runs(db: SessionDB) -> list[RunRecord]:
    # The value is spelled into the SQL, not bound: only then can SQLite use the partial index
    # ix_hb_runs_running (WHERE outcome = 'running').
    rows = db.query(f"SELECT * FROM heartbeat_runs WHERE outcome = '{RunOutcome.RUNNING}'")
    return [_run(r) for r in rows]


def pending_actions(db: SessionDB) -> list[ActionRecord]:
    # Spelled into the SQL for the partial index ix_hb_actions_pending (as in running_runs).
    rows = db.query(
        f"SELECT * FROM heartbeat_actions WHERE state = '{ActionState.PENDING}' ORDER BY id"
    )
    return [action_from_row(r) for r in rows]


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
