"""One heartbeat for one thread, end to end (DESIGN §5 steps 3 to 8).

    lease ─► run row (running) ─► gates ─► context ─► prompt ─► LLM ─► parse ─► validate
          ─► outbox (pending | blocked | dry_run) ─► Ledger calls ─► records ─► next due ─► release

Gates are cheap and recorded as ``skipped`` with a reason and no LLM call: disabled,
quiet_hours, empty_instructions, llm_unavailable, no_new_context. Run-now (``trigger=manual``)
bypasses the schedule, the active hours and the unchanged-context gate, never validation, the
target or rate limits. Every action is written to the outbox with its idempotency key before
it is sent; the Ledger deduplicates on that key, so re-sending after a crash lands once.
No DB transaction is open across an LLM or Ledger call.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from crt_loops.core import metrics
from crt_loops.core.identity import PROCESS_OWNER, owner_is_dead
from crt_loops.db import agent_history, heartbeats
from crt_loops.db.session import SessionDB
from crt_loops.heartbeat import outbox, social_actions
from crt_loops.heartbeat.config import HeartbeatConfig, merge_config
from crt_loops.heartbeat.context import add_ledger, gather_local
from crt_loops.heartbeat.decision import (
    ValidationContext,
    decision_json_schema,
    parse_decision,
    validate_actions,
)
from crt_loops.heartbeat.instructions import InstructionsError, load_instructions
from crt_loops.heartbeat.prompt import build_prompt
from crt_loops.heartbeat.redaction import redact_text
from crt_loops.heartbeat.schedule import next_due
from crt_loops.ledger.client import LedgerClient, LedgerError
from crt_loops.llm.client import LLM, LLMError, LLMTimeout, LLMTruncated, LLMUnavailable

if TYPE_CHECKING:
    from crt_loops.ledger.embed import EmbeddedLedger
    from crt_loops.settings import Settings

logger = logging.getLogger(__name__)

PREFIX = "[HEARTBEAT_LOOP]"
DAY = 86_400.0
# Consecutive failures back off (REFERENCE §5: a failing heartbeat must not hammer), never past
# the thread's own interval, and reset on the first success.
BACKOFF_STEPS = (30.0, 60.0, 300.0, 900.0)
# Moltbook's published limits, used ahead of a 429 when the Ledger is not our embedded one.
DEFAULT_POST_COOLDOWN = 1800.0
DEFAULT_COMMENT_COOLDOWN = 20.0
DEFAULT_COMMENTS_PER_DAY = 50

RECORD_RETRY_DELAYS = (0.1, 0.25, 0.5, 1.0, 2.0)

Trigger = Literal["schedule", "manual"]


class HeartbeatBusy(RuntimeError):
    """Raised when a heartbeat for the thread is already running (here or in another process)."""


class HeartbeatThreadNotFound(LookupError):
    """Raised when a heartbeat is asked for a thread that does not exist."""


@dataclass
class RunState:
    """A run being built; becomes a heartbeats.RunRecord when finished."""

    run: heartbeats.RunRecord
    config: HeartbeatConfig
    context_hash: str | None = None
    seen_activity: set[str] = field(default_factory=set)


@dataclass
class LedgerLimits:
    post_cooldown: float = DEFAULT_POST_COOLDOWN
    comment_cooldown: float = DEFAULT_COMMENT_COOLDOWN
    comments_per_day: int = DEFAULT_COMMENTS_PER_DAY


class HeartbeatRunner:
    """Runs heartbeats. Thread-safe: one run per thread at a time (DB lease), any number of
    threads in parallel, at most ``max_concurrency`` LLM calls in flight."""

    def __init__(
        self,
        *,
        db: SessionDB,
        llm: LLM,
        ledger: LedgerClient | None,
        heartbeat_md: Any,
        agent_name: str,
        default_model: str,
        default_timezone: str | None,
        window: int,
        llm_timeout: float,
        max_concurrency: int = 1,
        limits: LedgerLimits | None = None,
        secrets: list[str] | None = None,
        ledger_error: str | None = None,
        clock: Callable[[], float] = time.time,
        owner: str = PROCESS_OWNER,
    ) -> None:
        self.db = db
        self.llm = llm
        self.ledger = ledger
        self.ledger_error = ledger_error
        self.heartbeat_md = heartbeat_md
        self.agent_name = agent_name
        self.default_model = default_model
        self.default_timezone = default_timezone
        self.window = window
        self.clock = clock
        self.owner = owner
        self.limits = limits or LedgerLimits()
        self.secrets = [s for s in (secrets or []) if s]
        # A claim must outlive the LLM call plus the Ledger calls; a dead holder's expires.
        self.lease_ttl = llm_timeout + 120.0
        self._llm_slots = threading.BoundedSemaphore(max(1, max_concurrency))
        self.on_change: Callable[[], None] = lambda: None

    @classmethod
    def from_app_state(
        cls,
        *,
        settings: Settings,
        db: SessionDB,
        llm: LLM,
        ledger: EmbeddedLedger | None,
        ledger_error: str | None = None,
    ) -> HeartbeatRunner:
        client = ledger.client() if ledger is not None else None
        secrets = [ledger.api_key] if ledger is not None and ledger.api_key else []
        if settings.api_token:
            secrets.append(settings.api_token.get_secret_value())
        if settings.ledger_api_key:
            secrets.append(settings.ledger_api_key.get_secret_value())
        limits = (
            LedgerLimits(
                settings.ledger_post_cooldown_seconds,
                settings.ledger_comment_cooldown_seconds,
                settings.ledger_comments_per_day,
            )
            if settings.ledger_embedded
            else LedgerLimits()
        )
        return cls(
            db=db,
            llm=llm,
            ledger=client,
            heartbeat_md=settings.heartbeat_md_path,
            agent_name=settings.agent_name,
            default_model=settings.ollama_model,
            default_timezone=settings.timezone,
            window=settings.loop_window,
            llm_timeout=settings.llm_timeout_seconds,
            max_concurrency=settings.heartbeat_max_concurrency,
            limits=limits,
            secrets=secrets,
            ledger_error=None
            if client
            else f"the Ledger did not start: {ledger_error or 'see the startup log'}",
        )

    # -- public --------------------------------------------------------------------------------

    def run(
        self,
        thread_id: str,
        *,
        trigger: Trigger,
        force_dry_run: bool = False,
        lease_held: bool = False,
    ) -> heartbeats.RunRecord:
        """One heartbeat; always returns the finished run record (failures are outcomes).

        Raises HeartbeatBusy when another run holds the thread, HeartbeatThreadNotFound for an
        unknown thread.
        """
        hb = heartbeats.get_thread_heartbeat(self.db, thread_id)
        if hb is None:
            if lease_held:
                heartbeats.release_thread_lease(self.db, thread_id, self.owner)
            raise HeartbeatThreadNotFound(f"thread {thread_id!r} does not exist")
        if not lease_held and not heartbeats.take_thread_lease(
            self.db, thread_id, self.owner, self.lease_ttl
        ):
            raise HeartbeatBusy(f"a heartbeat for thread {thread_id!r} is already running")
        started = time.perf_counter()
        now = self.clock()
        config = hb.config
        dry_run = force_dry_run or config.dry_run
        run = heartbeats.RunRecord.begin(thread_id, trigger=trigger, dry_run=dry_run, now=now)
        state = RunState(run=run, config=config)
        try:
            heartbeats.start_run(
                self.db,
                run_id=run.run_id,
                thread_id=thread_id,
                trigger=trigger,
                dry_run=dry_run,
                now=now,
            )
            try:
                self._pipeline(state, hb, trigger=trigger, now=now)
            except sqlite3.OperationalError as exc:  # e.g. locked past the busy timeout
                logger.error("%s Failed to run heartbeat: %s: database: %s", PREFIX, thread_id, exc)
                self._set(state, "failed", "db_error", error=f"database: {exc}")
            except Exception as exc:  # the run's error boundary: a failure is an outcome
                logger.exception("%s Failed to run heartbeat: %s: %s", PREFIX, thread_id, exc)
                self._set(state, "failed", "internal_error", error=f"{type(exc).__name__}: {exc}")
            self._record(state, hb, started)
        finally:
            try:
                heartbeats.release_thread_lease(self.db, thread_id, self.owner)
            except sqlite3.OperationalError as exc:  # the lease expires on its own
                logger.warning("%s could not release the lease of %s: %s", PREFIX, thread_id, exc)
        self.on_change()
        finished = heartbeats.get_run(self.db, run.run_id)
        return finished or run

    def record_busy(self, thread_id: str, *, retry_in: float) -> None:
        """A due thread whose lease someone else holds: record it and retry shortly."""
        now = self.clock()
        run = heartbeats.RunRecord.begin(thread_id, trigger="schedule", dry_run=False, now=now)
        heartbeats.start_run(
            self.db,
            run_id=run.run_id,
            thread_id=thread_id,
            trigger="schedule",
            dry_run=False,
            now=now,
        )
        run.outcome, run.reason = "skipped", "busy"
        run.summary = "another heartbeat for this thread was still running; retrying shortly"
        run.finished_at, run.duration_ms = now, 0.0
        heartbeats.finish_run(
            self.db,
            run,
            next_due=now + retry_in,
            failures=None,
            context_hash=None,
            update_last=False,
        )
        metrics.observe_heartbeat_run(run.outcome, run.reason, run.trigger, 0.0)
        logger.info("%s thread %s is busy; retrying in %.0fs", PREFIX, thread_id, retry_in)

    def recover(self) -> dict[str, Any]:
        """At startup: runs left ``running`` by a crash become failed/interrupted, and outbox
        actions left ``pending`` are sent again with their original idempotency key."""
        interrupted = 0
        for run in heartbeats.running_runs(self.db):
            holder = heartbeats.lease_owner(self.db, run.thread_id)
            if holder is not None and holder != self.owner and not owner_is_dead(holder):
                continue  # a live process (another worker) is still running it
            now = self.clock()
            run.outcome, run.reason = "failed", "interrupted"
            run.error = "the service stopped while this heartbeat was running"
            run.finished_at = now
            run.duration_ms = (now - run.started_at) * 1000
            # finish_run schedules only enabled threads: due again shortly, not an interval later.
            heartbeats.finish_run(
                self.db,
                run,
                next_due=now + BACKOFF_STEPS[0],
                failures=None,
                context_hash=None,
                update_last=True,
            )
            interrupted += 1
        resent = failed = 0
        for action in heartbeats.pending_actions(self.db):
            holder = heartbeats.lease_owner(self.db, action.thread_id)
            if holder is not None and holder != self.owner and not owner_is_dead(holder):
                continue
            if outbox.resend(self.db, self.ledger, action):
                resent += 1
            else:
                failed += 1
        # Last, so no claim can start before the dead holder's run and actions are settled.
        heartbeats.release_dead_leases(self.db, due_by=self.clock() + BACKOFF_STEPS[0])
        if interrupted or resent or failed:
            logger.info(
                "%s recovery: %d interrupted run(s) closed, %d pending action(s) re-sent, "
                "%d failed again",
                PREFIX,
                interrupted,
                resent,
                failed,
            )
        return {"interrupted": interrupted, "resent": resent, "failed": failed}

    def schedule_after_config(self, thread_id: str, config: HeartbeatConfig) -> float | None:
        """When a thread with this (new) config is next due; None when disabled."""
        hb = heartbeats.get_thread_heartbeat(self.db, thread_id)
        return self.due_for(thread_id, config, hb.last_run if hb else None)

    def due_for(
        self, thread_id: str, config: HeartbeatConfig, last_run: float | None
    ) -> float | None:
        """Pure scheduling for a config: None when disabled, else inside the active window."""
        if not config.enabled:
            return None
        window = config.active_window(self.default_timezone)
        return next_due(last_run, config.every_seconds, self.clock(), thread_id, window=window)

    def update_config(self, thread_id: str, patch: dict[str, Any]) -> HeartbeatConfig:
        """Merge ``patch`` into the stored config atomically and reschedule the thread.

        Raises pydantic.ValidationError (nothing written) for an invalid patch.
        """
        config = heartbeats.update_config(
            self.db,
            thread_id,
            lambda stored: merge_config(stored, patch),
            lambda cfg, last_run: self.due_for(thread_id, cfg, last_run),
        )
        self.on_change()  # a config change wakes the loop: it reschedules at once
        return config

    # -- the pipeline ------------------------------------------------------------------------

    def _pipeline(
        self, state: RunState, hb: heartbeats.ThreadHeartbeat, *, trigger: Trigger, now: float
    ) -> None:
        config = state.config
        forced = trigger == "manual"
        if not forced and not config.enabled:
            self._set(state, "skipped", "disabled", summary="heartbeat is disabled for this thread")
            return
        window = config.active_window(self.default_timezone)
        if not forced and window is not None and not window.contains(now):
            self._set(
                state,
                "skipped",
                "quiet_hours",
                summary=f"outside active hours ({window.describe()})",
            )
            return
        try:
            instructions = load_instructions(self.heartbeat_md)
        except InstructionsError as exc:
            self._set(
                state,
                "failed",
                "instructions_error",
                error=str(exc),
                summary="HEARTBEAT.md could not be read",
            )
            return
        if instructions.effectively_empty:
            what = "missing" if instructions.missing else "effectively empty"
            self._set(
                state,
                "skipped",
                "empty_instructions",
                summary=f"HEARTBEAT.md is {what}: nothing to do (no LLM call)",
            )
            return
        if not self.llm.available():
            self._set(
                state,
                "skipped",
                "llm_unavailable",
                summary=f"the LLM at {self.llm.host} is not reachable; no call made",
            )
            return
        past_at = self.clock()
        past = agent_history.agent_history(self.db, since=now - DAY)
        ctx = gather_local(self.db, state.run.thread_id, window=self.window)
        if self.ledger is None:
            self._set(
                state,
                "failed",
                "ledger_error",
                error=self.ledger_error,
                summary="the Ledger is not available",
            )
            return
        try:
            add_ledger(
                ctx, self.ledger, past["own_post_ids"], self.db, past["answered_comment_ids"]
            )
        except LedgerError as exc:
            self._set(
                state, "failed", "ledger_error", error=str(exc), summary="could not read the Ledger"
            )
            return
        state.context_hash = ctx.fingerprint(instructions.sha256, config.model_dump_json())
        if (
            not forced
            and config.skip_when_unchanged
            and hb.context_hash is not None
            and hb.context_hash == state.context_hash
            and hb.last_outcome not in (None, "failed")
        ):
            self._set(
                state,
                "skipped",
                "no_new_context",
                summary="nothing changed since the last heartbeat; no LLM call",
            )
            return
        prompt = build_prompt(
            instructions=instructions.content,
            ctx=ctx,
            config=config,
            agent_name=self.agent_name,
            now=now,
        )
        state.run.prompt_chars = prompt.chars
        model = config.model_or(self.default_model)
        state.run.model = model
        llm_started = time.perf_counter()
        try:
            with self._llm_slots:
                reply = self.llm.chat(
                    prompt.messages,
                    model=model,
                    schema=decision_json_schema(),
                    temperature=config.temperature,
                    max_tokens=config.max_tokens,
                    # Longer than the interval, or every run pays a cold model load.
                    keep_alive=f"{int(config.every_seconds + 600)}s",
                )
        except LLMTimeout as exc:
            self._set(state, "failed", "llm_timeout", error=str(exc))
            return
        except LLMTruncated as exc:
            self._set(state, "failed", "invalid_decision", error=str(exc))
            return
        except LLMUnavailable as exc:
            self._set(
                state,
                "skipped",
                "llm_unavailable",
                error=str(exc),
                summary="the LLM stopped answering",
            )
            return
        except LLMError as exc:
            self._set(state, "failed", "llm_error", error=str(exc))
            return
        finally:
            state.run.llm_ms = (time.perf_counter() - llm_started) * 1000
        parsed = parse_decision(reply.content)
        if not parsed.ok or parsed.decision is None:
            self._set(
                state,
                "failed",
                "invalid_decision",
                error=parsed.error or "the reply is not a decision",
                summary="could not use the model's reply: "
                f"{redact_text(str(reply.content), self.secrets)[:200]!r}",
            )
            return
        decision = parsed.decision
        # Read again after the LLM call: another thread's run may have posted meanwhile, and
        # cooldowns count from now, not from when this run started.
        decided_at = self.clock()
        past = agent_history.merge_history(
            past,
            agent_history.agent_history(self.db, since=decided_at - DAY, changed_after=past_at),
        )
        vctx = ValidationContext(
            config=config,
            shown_post_ids=ctx.shown_post_ids(),
            shown_comment_ids=ctx.shown_comment_ids(),
            own_post_ids=past["own_post_ids"],
            voted_post_ids=past["voted_post_ids"],
            recent_hashes=past["recent_hashes"],
            now=decided_at,
            next_post_allowed_at=_after(past["last_post_at"], self.limits.post_cooldown),
            next_comment_allowed_at=_after(past["last_comment_at"], self.limits.comment_cooldown),
            comments_left_today=max(0, self.limits.comments_per_day - past["comments_last_24h"]),
            secrets=self.secrets,
            default_submolt=config.submolt,
            social=social_actions.context(ctx, past, self.agent_name, config.submolt),
        )
        validated = validate_actions(decision, vctx)
        state.seen_activity = ctx.shown_comment_ids()
        rows = outbox.build_rows(
            state.run.run_id,
            validated,
            parsed.rejected,
            dry_run=state.run.dry_run,
            secrets=self.secrets,
        )
        # The outbox: written before anything is sent.
        heartbeats.add_actions(self.db, state.run.run_id, state.run.thread_id, rows)
        state.run.summary = redact_text(decision.summary.strip(), self.secrets)[:1000]
        if state.run.dry_run:
            for row in rows:
                if row["state"] == "dry_run":
                    outbox.log_action(row, dry=True)
        else:
            outbox.send_pending(self.db, self.ledger, rows)
        result = outbox.verdict(rows, dry_run=state.run.dry_run)
        self._set(state, result.outcome, result.reason, error=result.error)

    # -- recording ---------------------------------------------------------------------------

    def _set(
        self,
        state: RunState,
        outcome: str,
        reason: str | None,
        *,
        error: str | None = None,
        summary: str | None = None,
    ) -> None:
        state.run.outcome, state.run.reason = outcome, reason
        if error is not None:
            state.run.error = error[:2000]
        if summary is not None:
            state.run.summary = summary
        if outcome == "failed":
            logger.warning(
                "%s Failed to run heartbeat: thread %s: %s (%s)",
                PREFIX,
                state.run.thread_id,
                reason,
                (error or summary or "")[:300],
            )

    def _record(self, state: RunState, hb: heartbeats.ThreadHeartbeat, started: float) -> None:
        """Write the run's record, retrying a locked DB a few times: a record is never dropped
        for a transient lock. If it still cannot be written, the run stays ``running`` and the
        next start's recovery closes it as ``interrupted``."""
        delays = RECORD_RETRY_DELAYS
        for attempt in range(len(delays) + 1):
            try:
                self._finish(state, hb, started)
                return
            except sqlite3.OperationalError as exc:
                if attempt == len(delays):
                    logger.error(
                        "%s Failed to run heartbeat: could not record run %s of %s: %s",
                        PREFIX,
                        state.run.run_id,
                        state.run.thread_id,
                        exc,
                    )
                    raise
                threading.Event().wait(delays[attempt])

    def _finish(self, state: RunState, hb: heartbeats.ThreadHeartbeat, started: float) -> None:
        run, config = state.run, state.config
        now = self.clock()
        run.finished_at = now
        run.duration_ms = (time.perf_counter() - started) * 1000
        failures = hb.failures + 1 if run.outcome == "failed" else 0
        window = config.active_window(self.default_timezone)
        if not config.enabled:
            due: float | None = None
        elif run.outcome == "failed":
            delay = min(BACKOFF_STEPS[min(failures, len(BACKOFF_STEPS)) - 1], config.every_seconds)
            due = now + delay
            if window is not None and not window.contains(due):
                due = window.next_opening(due)
        else:  # next_due also moves an out-of-hours time to the window's next opening
            due = next_due(now, config.every_seconds, now, run.thread_id, window=window)
        if run.outcome in ("acted", "silent"):
            # Decided on: a failed or dry run leaves them for the next heartbeat.
            agent_history.settle_activity(self.db, state.seen_activity)
        # A skip that never looked at the context keeps the old fingerprint.
        heartbeats.finish_run(
            self.db, run, next_due=due, failures=failures, context_hash=state.context_hash
        )
        metrics.observe_heartbeat_run(run.outcome, run.reason, run.trigger, run.duration_ms / 1000)
        logger.info(
            "%s heartbeat for thread %s: %s%s in %.0f ms",
            PREFIX,
            run.thread_id,
            run.outcome,
            f"/{run.reason}" if run.reason else "",
            run.duration_ms,
        )


def _after(ts: float | None, gap: float) -> float | None:
    return None if ts is None else ts + gap
