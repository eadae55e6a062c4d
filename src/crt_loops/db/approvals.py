"""Proposed heartbeat actions and the owner's decisions on them, in the session DB.

Every decision is one conditional update on ``state = 'proposed'`` inside a ``BEGIN IMMEDIATE``
transaction, so an approval, a rejection and the expiry can never both win for one action; the
owner's edits and rejections go to ``heartbeat_owner_feedback`` in the same transaction.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from crt_loops.core.clock import iso
from crt_loops.db.conn import Connection, Row
from crt_loops.db.heartbeats import ActionRecord, action_from_row
from crt_loops.db.session import SessionDB, dumps

OWNER_STATES = ("proposed", "rejected", "expired")


@dataclass(frozen=True)
class Proposal:
    """One proposed action with what the owner needs to judge it."""

    action: ActionRecord
    expires_at: float | None
    run_summary: str
    run_started_at: float

    def as_api(self) -> dict[str, Any]:
        return {
            **self.action.as_api(),
            "action_id": self.action.id,
            "thread_id": self.action.thread_id,
            "run_id": self.action.run_id,
            "proposed_at": iso(self.action.created_at),
            "expires_at": iso(self.expires_at),
            "run_summary": self.run_summary,
        }


@dataclass(frozen=True)
class Feedback:
    """The owner's edit or rejection of one action, for the thread's next prompts."""

    verdict: str  # approved, edited, rejected
    type: str
    original: dict[str, Any]
    final: dict[str, Any] | None
    reason: str | None


_PROPOSAL_SELECT = (
    "SELECT a.*, r.summary AS run_summary, r.started_at AS run_started_at "
    "FROM heartbeat_actions a JOIN heartbeat_runs r ON r.run_id = a.run_id "
)


def _proposal(row: Row) -> Proposal:
    return Proposal(
        action=action_from_row(row),
        expires_at=row["expires_at"],
        run_summary=row["run_summary"] or "",
        run_started_at=row["run_started_at"],
    )


def list_proposed(db: SessionDB, *, thread_id: str | None = None) -> list[Proposal]:
    """Actions waiting for the owner, the one expiring first first (``ix_hb_actions_owner``)."""
    where = "WHERE a.state = 'proposed'" + (" AND a.thread_id = ?" if thread_id else "")
    rows = (
        db.read()
        .execute(
            f"{_PROPOSAL_SELECT}{where} ORDER BY a.expires_at, a.id LIMIT 500",
            (thread_id,) if thread_id else (),
        )
        .fetchall()
    )
    return [_proposal(r) for r in rows]


def get_proposal(db: SessionDB, action_id: int) -> Proposal | None:
    row = db.read().execute(f"{_PROPOSAL_SELECT}WHERE a.id = ?", (action_id,)).fetchone()
    return _proposal(row) if row else None


def get_action(db: SessionDB, action_id: int) -> ActionRecord | None:
    row = db.read().execute("SELECT * FROM heartbeat_actions WHERE id = ?", (action_id,)).fetchone()
    return action_from_row(row) if row else None


def counts(db: SessionDB) -> dict[str, int]:
    """How many actions are proposed, rejected and expired (an index read)."""
    rows = db.read().execute(
        "SELECT state, COUNT(*) FROM heartbeat_actions "
        "WHERE state IN ('proposed', 'rejected', 'expired') GROUP BY state"
    )
    found = {str(r[0]): int(r[1]) for r in rows}
    return {s: found.get(s, 0) for s in OWNER_STATES}


def pending_count(db: SessionDB) -> int:
    return int(
        db.read()
        .execute("SELECT COUNT(*) FROM heartbeat_actions WHERE state = 'proposed'")
        .fetchone()[0]
    )


def expire_due(db: SessionDB, now: float) -> int:
    """Proposals past their deadline become ``expired``; returns how many."""
    with db.write() as tx:
        cur = tx.execute(
            "UPDATE heartbeat_actions SET state = 'expired', updated_at = ?, "
            "error = 'expired: not approved within approval_ttl' "
            "WHERE state = 'proposed' AND expires_at IS NOT NULL AND expires_at <= ?",
            (now, now),
        )
        return cur.rowcount


def approve(
    db: SessionDB,
    action: ActionRecord,
    *,
    state: str,
    payload: Mapping[str, Any],
    content_hash: str | None,
    error: str | None,
    verdict: str,
    now: float,
) -> bool:
    """Move a still-proposed, unexpired action to ``pending`` (or ``blocked``) with its final
    payload, recording the owner's verdict; False when it was no longer proposed."""
    with db.write() as tx:
        cur = tx.execute(
            "UPDATE heartbeat_actions SET state = ?, payload_json = ?, content_hash = ?, "
            "error = ?, updated_at = ? WHERE id = ? AND state = 'proposed' "
            "AND (expires_at IS NULL OR expires_at > ?)",
            (state, dumps(dict(payload)), content_hash, error, now, action.id, now),
        )
        if cur.rowcount != 1:
            return False
        _add_feedback(tx, action, verdict=verdict, final=payload, reason=None, now=now)
    return True


def reject(db: SessionDB, action: ActionRecord, *, reason: str | None, now: float) -> bool:
    """Move a still-proposed action to ``rejected``; False when it was no longer proposed."""
    with db.write() as tx:
        cur = tx.execute(
            "UPDATE heartbeat_actions SET state = 'rejected', error = ?, updated_at = ? "
            "WHERE id = ? AND state = 'proposed'",
            (f"rejected: {reason}" if reason else "rejected", now, action.id),
        )
        if cur.rowcount != 1:
            return False
        _add_feedback(tx, action, verdict="rejected", final=None, reason=reason, now=now)
    return True


def _add_feedback(
    tx: Connection,
    action: ActionRecord,
    *,
    verdict: str,
    final: Mapping[str, Any] | None,
    reason: str | None,
    now: float,
) -> None:
    tx.execute(
        "INSERT INTO heartbeat_owner_feedback (action_id, thread_id, type, verdict, "
        "original_json, final_json, reason, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (
            action.id,
            action.thread_id,
            action.type,
            verdict,
            dumps(action.payload),
            dumps(dict(final)) if final is not None else None,
            reason,
            now,
        ),
    )


def recent_feedback(db: SessionDB, thread_id: str, *, since: float, limit: int) -> list[Feedback]:
    """The owner's edits and rejections in this thread since ``since``, newest first."""
    rows = db.read().execute(
        "SELECT verdict, type, original_json, final_json, reason FROM heartbeat_owner_feedback "
        "WHERE thread_id = ? AND verdict IN ('edited', 'rejected') AND created_at >= ? "
        "ORDER BY created_at DESC, id DESC LIMIT ?",
        (thread_id, since, limit),
    )
    return [
        Feedback(
            verdict=str(r["verdict"]),
            type=str(r["type"]),
            original=json.loads(r["original_json"]),
            final=json.loads(r["final_json"]) if r["final_json"] else None,
            reason=r["reason"],
        )
        for r in rows
    ]


def recent_hashes_except(db: SessionDB, *, since: float, action_id: int) -> set[str]:
    """The duplicate-check hashes of everything sent, pending or proposed since ``since``,
    except this action's own (it is in the outbox already, proposed with it)."""
    rows = db.read().execute(
        "SELECT content_hash FROM heartbeat_actions WHERE updated_at >= ? AND id != ? "
        "AND state IN ('sent', 'pending', 'dry_run', 'proposed') AND content_hash IS NOT NULL",
        (since, action_id),
    )
    return {str(r[0]) for r in rows}
