"""The outbox: a heartbeat's actions as rows, sent to the Ledger once each (docs/architecture.md §5
step 7).

Every action is written with its idempotency key (``crt-<run_id>-<seq>``) before it is sent and
updated right after its Ledger call; the Ledger deduplicates on the key, so recovery can re-send
a ``pending`` row after a crash and it still lands once.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from crt_loops.core.enums import ActionState, BlockReason, RunOutcome, RunReason
from crt_loops.db import heartbeats
from crt_loops.db.heartbeats import OutboxRow
from crt_loops.db.session import SessionDB
from crt_loops.heartbeat import social_actions
from crt_loops.heartbeat.decision import RejectedAction
from crt_loops.heartbeat.gates import Verdict
from crt_loops.heartbeat.redaction import redact_payload
from crt_loops.heartbeat.social_actions import FollowAction, SubscribeAction
from crt_loops.heartbeat.validation import ValidatedAction
from crt_loops.ledger.client import (
    LedgerClient,
    LedgerError,
    LedgerInterrupted,
    LedgerRateLimited,
)

logger = logging.getLogger(__name__)

PREFIX = "[HEARTBEAT_LOOP]"
ACTION_TYPES = ("post", "comment", "vote")
# A failed action's error starts with this when the Ledger answered 429.
RATE_LIMITED = str(RunReason.RATE_LIMITED)


def build_rows(
    run_id: str,
    validated: Sequence[ValidatedAction],
    rejected: Sequence[RejectedAction],
    *,
    dry_run: bool,
    secrets: Sequence[str],
) -> list[OutboxRow]:
    """Outbox rows: allowed actions ``pending`` (or ``dry_run``), the rest ``blocked`` with
    their reason; a payload that carries a secret is stored redacted."""
    allowed_state = ActionState.DRY_RUN if dry_run else ActionState.PENDING
    rows: list[OutboxRow] = []
    for seq, item in enumerate(validated):
        rows.append(
            OutboxRow(
                seq=seq,
                type=item.action.type,
                payload=item.action.model_dump(exclude={"type"}, exclude_none=True),
                state=allowed_state if item.allowed else ActionState.BLOCKED,
                # "reason: detail", so the record says why and, for a limit, when it ends.
                error=None if item.allowed else _why(item),
                idempotency_key=f"crt-{run_id}-{seq}",
                # Only what was (or would be) sent counts for the 24 h duplicate check.
                content_hash=item.content_hash if item.allowed else None,
            )
        )
    for seq, bad in enumerate(rejected, start=len(rows)):
        kind = str(bad.raw.get("type") or bad.raw.get("action") or "post")
        rows.append(
            OutboxRow(
                seq=seq,
                type=kind if kind in ACTION_TYPES else "post",
                payload={"raw": bad.raw},
                state=ActionState.BLOCKED,
                error=f"{BlockReason.INVALID}: {bad.reason}",
                idempotency_key=f"crt-{run_id}-{seq}",
            )
        )
    # A blocked action may carry a secret (that is why it was blocked): keep it out of the
    # DB and the API. Allowed actions never carry one.
    return [replace(row, payload=redact_payload(row.payload, secrets)) for row in rows]


def call_ledger(
    ledger: LedgerClient | None, kind: str, payload: dict[str, Any], key: str
) -> str | None:
    """Send one action with its idempotency key; returns the Ledger's id for it."""
    if ledger is None:
        raise LedgerError("the Ledger is not available (see the startup log)")
    if kind == "post":
        post = ledger.create_post(
            submolt=payload.get("submolt") or "general",
            title=payload["title"],
            content=payload["content"],
            idempotency_key=key,
        )
        return str(post.id)
    if kind == "comment":
        comment = ledger.create_comment(
            payload["post_id"],
            content=payload["content"],
            parent_id=payload.get("parent_id"),
            idempotency_key=key,
        )
        return str(comment.id)
    if kind == "follow":
        ledger.follow(payload["agent_name"].removeprefix("@"), idempotency_key=key)
        return social_actions.key(FollowAction(agent_name=payload["agent_name"]))
    if kind == "subscribe":
        ledger.subscribe(payload["submolt"].removeprefix("m/").lower(), idempotency_key=key)
        return social_actions.key(SubscribeAction(submolt=payload["submolt"]))
    if payload.get("direction") == "down":
        ledger.downvote_post(payload["post_id"], idempotency_key=key)
    else:
        ledger.upvote_post(payload["post_id"], idempotency_key=key)
    # A vote's ledger_id is the post it voted on: agent_history reads votes from it.
    return str(payload["post_id"])


def send_pending(
    db: SessionDB, ledger: LedgerClient | None, rows: Sequence[OutboxRow]
) -> list[OutboxRow]:
    """Send every ``pending`` row in order, recording each result as soon as it is known.

    Returns the rows as they now stand (the others unchanged). LedgerInterrupted (the service
    is stopping) passes through with the row it met still ``pending``: whether it landed is
    unknown, and the next start's recovery sends it again with its key.
    """
    done: list[OutboxRow] = []
    for row in rows:
        if row.state is not ActionState.PENDING:
            done.append(row)
            continue
        try:
            ledger_id = call_ledger(ledger, row.type, row.payload, row.idempotency_key)
        except LedgerInterrupted:
            raise  # the row stays pending (see above)
        except LedgerRateLimited as exc:
            now = replace(
                row,
                state=ActionState.FAILED,
                error=f"{RATE_LIMITED}: {exc}",
                retry_after=exc.retry_after_seconds,
            )
        except LedgerError as exc:
            now = replace(row, state=ActionState.FAILED, error=str(exc))
        else:
            now = replace(row, state=ActionState.SENT, ledger_id=ledger_id)
            log_action(now)
        heartbeats.update_action(
            db, now.idempotency_key, state=now.state, ledger_id=now.ledger_id, error=now.error
        )
        done.append(now)
    return done


def resend(db: SessionDB, ledger: LedgerClient | None, action: heartbeats.ActionRecord) -> bool:
    """Recovery's re-send of one ``pending`` action with its original key."""
    try:
        ledger_id = call_ledger(ledger, action.type, action.payload, action.idempotency_key)
    except LedgerError as exc:
        heartbeats.update_action(
            db, action.idempotency_key, state=ActionState.FAILED, error=f"on recovery: {exc}"
        )
        return False
    heartbeats.update_action(
        db, action.idempotency_key, state=ActionState.SENT, ledger_id=ledger_id
    )
    return True


def _why(item: ValidatedAction) -> str:
    return f"{item.reason}: {item.detail}" if item.detail else str(item.reason)


def verdict(rows: Sequence[OutboxRow], *, dry_run: bool) -> Verdict:
    """The run's outcome and reason from its actions' final states."""
    if dry_run:
        planned = any(r.state is ActionState.DRY_RUN for r in rows)
        return Verdict(RunOutcome.DRY_RUN, None if planned else RunReason.NO_ACTION)
    sent = [r for r in rows if r.state is ActionState.SENT]
    failed = [r for r in rows if r.state is ActionState.FAILED]
    blocked = [r for r in rows if r.state is ActionState.BLOCKED]
    proposed = any(r.state is ActionState.PROPOSED for r in rows)
    if sent:
        also = RunReason.PARTIAL if failed else (RunReason.PROPOSED if proposed else None)
        return Verdict(RunOutcome.ACTED, also)
    if proposed:  # waiting for the owner (heartbeat.approvals); a failure next to it says so
        errors = "; ".join(str(r.error) for r in failed) or None
        return Verdict(RunOutcome.PROPOSED, RunReason.PARTIAL if failed else None, error=errors)
    if failed:
        limited = any(str(r.error).startswith(RATE_LIMITED) for r in failed)
        errors = "; ".join(str(r.error) for r in failed)
        reason = RunReason.RATE_LIMITED if limited else RunReason.LEDGER_ERROR
        return Verdict(RunOutcome.FAILED, reason, error=errors)
    if blocked:
        # A blocked row's error starts with its BlockReason, a run reason of the same name.
        reasons = {RunReason(str(r.error).split(":")[0]) for r in blocked}
        return Verdict(RunOutcome.SILENT, reasons.pop() if len(reasons) == 1 else RunReason.BLOCKED)
    return Verdict(RunOutcome.SILENT, None)


def log_action(row: OutboxRow, *, dry: bool = False) -> None:
    """The ``[HEARTBEAT_LOOP] Executed action: ...`` line."""
    p = row.payload
    tag = " (dry run)" if dry else ""
    if row.type == "post":
        logger.info(
            '%s Executed action%s: post (title: "%s", content: "%s")',
            PREFIX,
            tag,
            _clip(p.get("title")),
            _clip(p.get("content")),
        )
    elif row.type == "comment":
        logger.info(
            '%s Executed action%s: comment (post_id: "%s", content: "%s")',
            PREFIX,
            tag,
            p.get("post_id"),
            _clip(p.get("content")),
        )
    else:
        logger.info(
            '%s Executed action%s: vote (post_id: "%s", direction: "%s")',
            PREFIX,
            tag,
            p.get("post_id"),
            p.get("direction"),
        )


def _clip(text: Any, limit: int = 80) -> str:
    value = " ".join(str(text or "").split()).replace('"', "'")
    return value if len(value) <= limit else value[: limit - 1] + "…"
