"""Heartbeat records in the session DB: configs, runs, the action outbox (claims and leases:
db/heartbeat_claims.py).

Every function is one short transaction; none waits on the network. A run is written as
``running`` before anything else happens, its actions are written to the outbox (``pending``)
before they are sent, and each is updated right after its Ledger call, so a crash at any moment
leaves something recovery can finish (docs/architecture.md §5 steps 7-8).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from crt_loops.core import wording
from crt_loops.core.clock import iso
from crt_loops.core.enums import ActionState, RunOutcome, RunReason, Trigger
from crt_loops.db.conn import SQLITE, Row
from crt_loops.db.session import SessionDB, dumps, insert_thread, lock_thread
from crt_loops.heartbeat.config import HeartbeatConfig, config_from_json, config_to_json
from crt_loops.llm.types import LLMUsage


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
    #: Not stored: how long a Ledger 429 on this action said to wait, for the run's retry time.
    retry_after: float | None = None
    expires_at: float | None = None  # proposed: when it expires unanswered


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
    expires_at: float | None = None  # a proposed action's approval deadline

    def as_api(self) -> dict[str, Any]:
        return {
            "action_id": self.id,
            "type": self.type,
            **self.payload,
            "state": self.state,
            "ledger_id": self.ledger_id,
            "error": self.error,
            "idempotency_key": self.idempotency_key,
            **({"expires_at": iso(self.expires_at)} if self.expires_at is not None else {}),
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
    # The LLM call's cost as the server reported it; raw_reply is the model's text when the
    # run could not use it (cut at max_tokens, or not a decision), to show what was cut.
    usage: LLMUsage | None = None
    max_tokens: int | None = None
    raw_reply: str | None = None
    retry_at: float | None = None  # a deferred run (owner_active): when it will try again

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
        data = {
            "run_id": self.run_id,
            "thread_id": self.thread_id,
            "trigger": self.trigger,
            "outcome": self.outcome,
            "reason": self.reason,
            "dry_run": self.dry_run,
            "summary": self.summary,
            "headline": "",
            "actions": [a.as_api() for a in self.actions],
            "started_at": iso(self.started_at),
            "finished_at": iso(self.finished_at),
            "duration_ms": None if self.duration_ms is None else round(self.duration_ms, 2),
            "error": self.error,
            "prompt_chars": self.prompt_chars,
            "llm_ms": None if self.llm_ms is None else round(self.llm_ms, 2),
            "model": self.model,
            "tokens": None if self.usage is None else self.usage.as_dict(),
            "max_tokens": self.max_tokens,
            "raw_reply": self.raw_reply,
            "retry_at": iso(self.retry_at),
        }
        # The one sentence the API, the CLI and the dashboard all show for this run.
        data["headline"] = wording.run_headline(data)
        return data


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


def action_from_row(row: Row) -> ActionRecord:
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
        expires_at=row["expires_at"],
    )


def _run(row: Row) -> RunRecord:
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
        usage=_usage(row),
        max_tokens=row["max_tokens"],
        raw_reply=row["raw_decision"],
        retry_at=row["retry_at"],
    )


def _usage(row: Row) -> LLMUsage | None:
    fields = ("prompt_tokens", "prompt_eval_tokens", "cached_tokens", "completion_tokens")
    if all(row[f] is None for f in fields) and row["prompt_ms"] is None:
        return None
    return LLMUsage(
        prompt_tokens=row["prompt_tokens"],
        prompt_eval_tokens=row["prompt_eval_tokens"],
        cached_tokens=row["cached_tokens"],
        completion_tokens=row["completion_tokens"],
        prompt_ms=row["prompt_ms"],
        generation_ms=row["generation_ms"],
    )


def _reason(value: str | None) -> RunReason | None:
    return None if value is None else RunReason(value)


def _outcome(value: str | None) -> RunOutcome | None:
    return None if value is None else RunOutcome(value)


# -- configs -----------------------------------------------------------------------------


_HEARTBEAT_COLUMNS = (
    "SELECT thread_id, heartbeat_config_json, heartbeat_last_run, heartbeat_last_summary, "
    "heartbeat_last_actions_json, heartbeat_last_outcome, heartbeat_last_reason, "
    "heartbeat_next_due, heartbeat_failures, heartbeat_context_hash FROM thread_sessions "
)


def get_thread_heartbeat(db: SessionDB, thread_id: str) -> ThreadHeartbeat | None:
    row = db.query_one(_HEARTBEAT_COLUMNS + "WHERE thread_id = ?", (thread_id,))
    return None if row is None else _thread_heartbeat(row)


def get_thread_heartbeats(db: SessionDB, thread_ids: Sequence[str]) -> list[ThreadHeartbeat]:
    """The heartbeats of the threads that exist among ``thread_ids``, in one query (the
    dashboard's thread list asks for dozens at a time)."""
    if not thread_ids:
        return []
    marks = ", ".join("?" for _ in thread_ids)
    rows = db.query(_HEARTBEAT_COLUMNS + f"WHERE thread_id IN ({marks})", tuple(thread_ids))
    return [_thread_heartbeat(row) for row in rows]


def _thread_heartbeat(row: Row) -> ThreadHeartbeat:
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
        lock_thread(tx, thread_id)
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
            "error, idempotency_key, content_hash, created_at, updated_at, expires_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
                    r.expires_at,
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
    usage = run.usage or LLMUsage()
    with db.write() as tx:
        tx.execute(
            "UPDATE heartbeat_runs SET outcome = ?, reason = ?, summary = ?, finished_at = ?, "
            "duration_ms = ?, error = ?, prompt_chars = ?, llm_ms = ?, model = ?, dry_run = ?, "
            "prompt_tokens = ?, prompt_eval_tokens = ?, cached_tokens = ?, completion_tokens = ?, "
            "prompt_ms = ?, generation_ms = ?, max_tokens = ?, raw_decision = ?, retry_at = ? "
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
                usage.prompt_tokens,
                usage.prompt_eval_tokens,
                usage.cached_tokens,
                usage.completion_tokens,
                usage.prompt_ms,
                usage.generation_ms,
                run.max_tokens,
                run.raw_reply,
                run.retry_at,
                run.run_id,
            ),
        )
        enabled = (
            "json_extract(heartbeat_config_json, '$.enabled')"
            if tx.dialect == SQLITE
            else "(heartbeat_config_json::jsonb -> 'enabled') = 'true'::jsonb"
        )
        sets = [
            "heartbeat_next_due = CASE WHEN heartbeat_config_json IS NULL THEN NULL "
            f"WHEN {enabled} THEN CAST(? AS DOUBLE PRECISION) ELSE NULL END"
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


_COUNTED = {"owner_active": "reason = 'owner_active'", "reply": "trigger = 'reply'"}


def count_runs_with(db: SessionDB, what: str) -> int:
    """Runs deferred while the owner talked (``owner_active``) or woken by a reply
    (``reply``). The literal in the SQL is what lets SQLite use their partial indexes."""
    sql = f"SELECT COUNT(*) FROM heartbeat_runs WHERE {_COUNTED[what]}"
    return int(db.read().execute(sql).fetchone()[0])


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
