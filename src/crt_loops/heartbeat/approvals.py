"""The owner approves before the agent speaks: proposed actions, approval, rejection, expiry.

With a thread's ``approval`` set to ``posts`` (posts only) or ``all`` (every action), a validated
action is written to the outbox as ``proposed`` instead of ``pending``, with ``expires_at`` =
now + ``approval_ttl``. From there exactly one of these happens, each a conditional update on
``state = 'proposed'`` so two of them can never both win (an approval racing the expiry):

    proposed ─► approve ─► validated again ─► pending ─► Ledger ─► sent | failed
                                         └──► blocked (with the reason it is no longer allowed)
             ─► reject  ─► rejected (optional reason)
             ─► expiry  ─► expired (nobody answered within approval_ttl)

An approved action keeps the idempotency key it was proposed with and goes through ``pending``
like every other outbox row, so a crash between the approval and the Ledger's answer is finished
by startup recovery and the action still lands once. Edits and rejections are kept in
``heartbeat_owner_feedback`` and shown to the model in that thread's next prompts.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from crt_loops.core import metrics
from crt_loops.core.enums import ActionState
from crt_loops.db import agent_history
from crt_loops.db import approvals as records
from crt_loops.db.heartbeats import ActionRecord, OutboxRow, get_thread_heartbeat
from crt_loops.db.session import SessionDB
from crt_loops.heartbeat import outbox
from crt_loops.heartbeat.config import HeartbeatConfig
from crt_loops.heartbeat.decision import (
    COMMENT_CONTENT_MAX,
    POST_CONTENT_MAX,
    TITLE_MAX,
    AnyAction,
    CommentAction,
    Decision,
    PostAction,
    VoteAction,
)
from crt_loops.heartbeat.redaction import contains_secret
from crt_loops.heartbeat.validation import ValidationContext, validate_actions
from crt_loops.ledger.client import LedgerClient, LedgerError, LedgerInterrupted, LedgerNotFound

if TYPE_CHECKING:
    from crt_loops.heartbeat.executor import HeartbeatRunner

logger = logging.getLogger(__name__)

PREFIX = "[HEARTBEAT_LOOP]"
DAY = 86_400.0
FEEDBACK_LIMIT = 5
FEEDBACK_HORIZON = 14 * DAY
REASON_MAX = 500


class ApprovalError(Exception):
    """Base of the errors below; never raised itself."""


class ApprovalNotFound(ApprovalError, LookupError):
    """Raised when no outbox action has the given id."""


class ApprovalConflict(ApprovalError):
    """Raised when the action is not ``proposed`` (already approved, rejected, expired, sent);
    ``state`` is the state it is in."""

    def __init__(self, action_id: int, state: str) -> None:
        super().__init__(f"action {action_id} is {state}, not proposed: nothing to decide")
        self.state = state


class ApprovalInvalid(ApprovalError, ValueError):
    """Raised when an edited field breaks a rule; ``field`` names it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class ApprovalUnavailable(ApprovalError):
    """Raised when the Ledger cannot be asked whether the action is still allowed; the action
    stays ``proposed``, so the owner can try again."""


def needs_approval(config: HeartbeatConfig, action_type: str) -> bool:
    """Whether an allowed action of this type waits for the owner under ``config``."""
    if config.approval == "all":
        return True
    return config.approval == "posts" and action_type == "post"


def mark_proposals(
    db: SessionDB, rows: Sequence[OutboxRow], config: HeartbeatConfig, now: float
) -> list[OutboxRow]:
    """The rows with every ``pending`` one that needs the owner turned ``proposed`` (with its
    expiry); a dry run's rows are ``dry_run``, never pending, so they stay as they are."""
    marked = [
        replace(row, state=ActionState.PROPOSED, expires_at=now + config.approval_ttl)
        if row.state is ActionState.PENDING and needs_approval(config, row.type)
        else row
        for row in rows
    ]
    proposed = sum(1 for new, old in zip(marked, rows, strict=True) if new is not old)
    if proposed:
        metrics.observe_approval("proposed", proposed)
        # Counted before the rows are written: the ones already waiting plus these.
        metrics.set_approvals_pending(records.pending_count(db) + proposed)
    return marked


def expire_due(db: SessionDB, now: float) -> int:
    """Proposals nobody answered within their ``approval_ttl`` become ``expired``."""
    expired = records.expire_due(db, now)
    if expired:
        metrics.observe_approval("expired", expired)
        metrics.set_approvals_pending(records.pending_count(db))
        logger.info("%s %d proposed action(s) expired unanswered", PREFIX, expired)
    return expired


# -- what the owner changed or declined, for the next prompts ------------------------------


def owner_feedback(db: SessionDB, thread_id: str, *, now: float) -> list[str]:
    """Short lines on the owner's recent edits and rejections in this thread, newest first."""
    lines = []
    for item in records.recent_feedback(
        db, thread_id, since=now - FEEDBACK_HORIZON, limit=FEEDBACK_LIMIT
    ):
        original = _describe(item.type, item.original)
        if item.verdict == "rejected":
            why = f" (reason: {_clip(item.reason, 200)})" if item.reason else ""
            lines.append(f"declined your {original}{why}")
        else:
            final = _describe(item.type, item.final or {})
            lines.append(f"edited your {original} into {final} before sending it")
    return lines


def _describe(kind: str, payload: Mapping[str, Any]) -> str:
    if kind == "post":
        return f'post "{_clip(payload.get("title"), 120)}": "{_clip(payload.get("content"), 200)}"'
    if kind == "comment":
        return f'comment on {payload.get("post_id")}: "{_clip(payload.get("content"), 200)}"'
    return f"{payload.get('direction')}vote on {payload.get('post_id')}"


def _clip(text: Any, limit: int) -> str:
    value = " ".join(str(text or "").split())
    return value if len(value) <= limit else value[: limit - 1] + "…"


# -- the owner's decisions ---------------------------------------------------------------


def check_edits(kind: str, edits: Mapping[str, Any], secrets: Sequence[str]) -> dict[str, str]:
    """The edited fields, validated like the model's: raises ApprovalInvalid naming the field."""
    allowed = {"post": ("title", "content"), "comment": ("content",)}.get(kind, ())
    caps = {"title": TITLE_MAX, "content": POST_CONTENT_MAX if kind == "post" else 0}
    if kind == "comment":
        caps["content"] = COMMENT_CONTENT_MAX
    clean: dict[str, str] = {}
    for name, value in edits.items():
        if value is None:
            continue
        if name not in allowed:
            raise ApprovalInvalid(name, f"a {kind} has no editable field {name!r}")
        if not isinstance(value, str):
            raise ApprovalInvalid(name, "must be a string")
        text = value.strip()
        if not text:
            raise ApprovalInvalid(name, "must not be empty")
        if len(text) > caps[name]:
            raise ApprovalInvalid(name, f"is {len(text)} characters; the limit is {caps[name]}")
        if contains_secret(text, secrets):
            raise ApprovalInvalid(name, "contains a secret (an API key or token)")
        clean[name] = text
    return clean


def _action_model(kind: str, payload: Mapping[str, Any]) -> AnyAction:
    if kind == "post":
        return PostAction.model_validate(payload)
    if kind == "comment":
        return CommentAction.model_validate(payload)
    return VoteAction.model_validate(payload)


class ApprovalDesk:
    """Approve and reject proposed actions with the runner's Ledger, limits and secrets."""

    def __init__(self, runner: HeartbeatRunner) -> None:
        self.runner = runner

    @property
    def db(self) -> SessionDB:
        return self.runner.db

    def _now(self) -> float:
        return self.runner.clock()

    def approve(self, action_id: int, *, edits: Mapping[str, Any] | None = None) -> ActionRecord:
        """Validate the (possibly edited) action again and send it once with its original key.

        Returns the action in its new state: ``sent``, ``failed`` (the Ledger refused it) or
        ``blocked`` (no longer allowed: cooldown, duplicate, target gone, target changed).
        Raises ApprovalNotFound, ApprovalConflict (not proposed, e.g. expired), ApprovalInvalid
        (a bad edit) or ApprovalUnavailable (the Ledger cannot be asked).
        """
        db = self.db
        expire_due(db, self._now())
        proposal = records.get_proposal(db, action_id)
        if proposal is None:
            raise ApprovalNotFound(f"no heartbeat action has id {action_id}")
        action = proposal.action
        if action.state != ActionState.PROPOSED:
            raise ApprovalConflict(action_id, action.state)
        clean = check_edits(action.type, edits or {}, self.runner.options.secrets)
        payload = {**action.payload, **clean}
        edited = any(action.payload.get(k) != v for k, v in clean.items())
        hb = get_thread_heartbeat(db, action.thread_id)
        config = hb.config if hb is not None else HeartbeatConfig()
        model = _action_model(action.type, payload)
        checked = validate_actions(Decision(actions=[model]), self._context(action, config))[0]
        now = self._now()
        state = "pending" if checked.allowed else "blocked"
        error = None if checked.allowed else f"{checked.reason}: {checked.detail}"
        verdict = "edited" if edited else "approved"
        won = records.approve(
            db,
            action,
            state=state,
            payload=payload,
            content_hash=checked.content_hash if checked.allowed else None,
            error=error,
            verdict=verdict,
            now=now,
        )
        if not won:
            # Someone else decided first (the expiry, another click): say what happened.
            expire_due(db, now)
            current = records.get_action(db, action_id)
            raise ApprovalConflict(action_id, current.state if current else "gone")
        metrics.observe_approval(verdict if checked.allowed else "blocked", 1)
        metrics.set_approvals_pending(records.pending_count(db))
        logger.info(
            "%s owner %s action %d of thread %s: %s",
            PREFIX,
            verdict,
            action_id,
            action.thread_id,
            state if checked.allowed else error,
        )
        if checked.allowed:
            row = OutboxRow(
                seq=action.seq,
                type=action.type,
                payload=payload,
                state=ActionState.PENDING,
                idempotency_key=action.idempotency_key,
            )
            try:
                outbox.send_pending(db, self.runner.ledger, [row])
            except LedgerInterrupted:
                logger.info(
                    "%s approved action %d stays pending: the service is stopping; the next "
                    "start sends it",
                    PREFIX,
                    action_id,
                )
        final = records.get_action(db, action_id)
        assert final is not None  # actions are never deleted while their run is kept
        self.runner.on_change()
        return final

    def reject(self, action_id: int, *, reason: str | None = None) -> ActionRecord:
        """The owner declines: ``rejected`` with the reason, shown to the model next time."""
        if reason is not None:
            if not isinstance(reason, str):
                raise ApprovalInvalid("reason", "must be a string")
            reason = reason.strip()[:REASON_MAX] or None
            if reason and contains_secret(reason, self.runner.options.secrets):
                raise ApprovalInvalid("reason", "contains a secret (an API key or token)")
        db = self.db
        now = self._now()
        expire_due(db, now)
        action = records.get_action(db, action_id)
        if action is None:
            raise ApprovalNotFound(f"no heartbeat action has id {action_id}")
        if not records.reject(db, action, reason=reason, now=now):
            current = records.get_action(db, action_id)
            raise ApprovalConflict(action_id, current.state if current else "gone")
        metrics.observe_approval("rejected", 1)
        metrics.set_approvals_pending(records.pending_count(db))
        logger.info("%s owner rejected action %d of thread %s", PREFIX, action_id, action.thread_id)
        final = records.get_action(db, action_id)
        assert final is not None
        self.runner.on_change()
        return final

    def _context(self, action: ActionRecord, config: HeartbeatConfig) -> ValidationContext:
        """What validation knows at send time: the agent's history now, the Ledger now."""
        runner = self.runner
        now = self._now()
        past = agent_history.agent_history(self.db, since=now - DAY)
        shown: set[str] = set()
        post_id = action.payload.get("post_id")
        if action.type in ("comment", "vote") and post_id and self._post_exists(str(post_id)):
            shown.add(str(post_id))
        limits = runner.options.limits
        return ValidationContext(
            config=config,
            now=now,
            shown_post_ids=shown,
            own_post_ids=past.own_post_ids,
            voted_post_ids=past.voted_post_ids,
            recent_hashes=records.recent_hashes_except(
                self.db, since=now - DAY, action_id=action.id
            ),
            next_post_allowed_at=_after(past.last_post_at, limits.post_cooldown),
            next_comment_allowed_at=_after(past.last_comment_at, limits.comment_cooldown),
            comments_left_today=max(0, limits.comments_per_day - past.comments_last_24h),
            secrets=runner.options.secrets,
            default_submolt=config.submolt,
        )

    def _post_exists(self, post_id: str) -> bool:
        ledger: LedgerClient | None = self.runner.ledger
        if ledger is None:
            why = self.runner.options.ledger_error or "the Ledger is not available"
            raise ApprovalUnavailable(why)
        try:
            ledger.get_post(post_id)
        except LedgerNotFound:
            return False
        except LedgerError as exc:
            raise ApprovalUnavailable(
                f"cannot reach the Ledger to check post {post_id}: {exc}"
            ) from exc
        return True


def _after(ts: float | None, gap: float) -> float | None:
    return None if ts is None else ts + gap
