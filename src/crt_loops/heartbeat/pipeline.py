"""One heartbeat's pipeline, from the gates to the outbox; it returns the verdict to record.

    gates ─► context ─► (unchanged?) ─► prompt ─► LLM ─► parse ─► validate
          ─► outbox (pending | blocked | dry_run) ─► Ledger calls ─► verdict

Four phases, each a method that returns what the next needs or a :class:`Verdict` that ends the
run: :meth:`Pipeline.gate` (cheap checks, no LLM call), :meth:`Pipeline.look` (the context: the
only write here keeps the Ledger's newly shown activity), :meth:`Pipeline.think` (the LLM call
and parsing) and :meth:`Pipeline.act` (validation, the outbox, the Ledger). No DB transaction is
open across an LLM or Ledger call.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import wait
from dataclasses import dataclass
from pathlib import Path

from crt_loops.core.enums import ActionState, RunOutcome, RunReason
from crt_loops.db import agent_history, heartbeats
from crt_loops.db.session import SessionDB
from crt_loops.heartbeat import approvals, gates, outbox, owner, social_actions
from crt_loops.heartbeat.context import (
    HeartbeatContext,
    gather_local,
    mark_own,
    read_home,
    start_feed_read,
    unanswered_activity,
)
from crt_loops.heartbeat.decision import (
    CommentAction,
    Decision,
    RejectedAction,
    decision_json_schema,
    parse_decision,
)
from crt_loops.heartbeat.deps import RunnerOptions
from crt_loops.heartbeat.gates import Verdict
from crt_loops.heartbeat.instructions import Instructions
from crt_loops.heartbeat.private_data import allowed_kinds, find_private
from crt_loops.heartbeat.prompt import PromptBudget, build_prompt, keep_prompt
from crt_loops.heartbeat.recording import RunState
from crt_loops.heartbeat.redaction import redact_text
from crt_loops.heartbeat.slots import SlotPool
from crt_loops.heartbeat.validation import ValidationContext, validate_actions
from crt_loops.ledger.client import (
    LedgerClient,
    LedgerError,
    LedgerInterrupted,
    LedgerRateLimited,
)
from crt_loops.llm.client import LLM, LLMError, LLMTruncated
from crt_loops.llm.schema import schema_max_tokens

DAY = 86_400.0
RAW_REPLY_CHARS = 4000  # of the model's text, kept when the run could not use it
# A 429 that does not say when to come back: Moltbook's limits reset each minute.
DEFAULT_RATE_LIMIT_RETRY_SECONDS = 60.0
# What a run-now refused for want of an LLM slot tells the client to wait before trying again.
MANUAL_RETRY_AFTER_SECONDS = 10


@dataclass(frozen=True)
class Looked:
    """What the run looked at: the context, the agent's history, when that was read."""

    ctx: HeartbeatContext
    past: agent_history.AgentHistory
    past_at: float
    #: The posts and comments the history was read about (what the prompt shows).
    about: agent_history.About
    instructions: str = ""  # HEARTBEAT.md's text, for its private-data opt-in


@dataclass(frozen=True)
class Thought:
    """The model's usable decision, and the actions it proposed that did not parse."""

    decision: Decision
    rejected: list[RejectedAction]


@dataclass
class Pipeline:
    """The steps of one run, over the runner's collaborators as they are at its start."""

    db: SessionDB
    llm: LLM
    ledger: LedgerClient | None
    heartbeat_md: Path | str
    options: RunnerOptions
    llm_slots: SlotPool
    clock: Callable[[], float]
    budget: PromptBudget

    def run(self, state: RunState, hb: heartbeats.ThreadHeartbeat, *, forced: bool) -> Verdict:
        now = state.run.started_at
        instructions = self.gate(state, forced=forced, now=now)
        if isinstance(instructions, Verdict):
            return instructions
        looked = self.look(state, hb, instructions, forced=forced, now=now)
        if isinstance(looked, Verdict):
            return looked
        thought = self.think(state, instructions, looked.ctx, now=now)
        if isinstance(thought, Verdict):
            return thought
        return self.act(state, looked, thought)

    # -- the phases --------------------------------------------------------------------------

    def gate(self, state: RunState, *, forced: bool, now: float) -> Instructions | Verdict:
        """The cheap gates; passes on HEARTBEAT.md's instructions."""
        config = state.config
        if stop := gates.disabled(config, forced=forced):
            return stop
        window = config.active_window(self.options.default_timezone)
        if stop := gates.quiet_hours(window, now, forced=forced):
            return stop
        quiet = self.options.owner_quiet_seconds
        if not forced and (stop := owner.defer(self.db, state.run, quiet, now)):
            return stop
        instructions = gates.read_instructions(self.heartbeat_md)
        if isinstance(instructions, Verdict):
            return instructions
        if stop := gates.empty_instructions(instructions) or gates.llm_unavailable(self.llm):
            return stop
        return instructions

    def look(
        self,
        state: RunState,
        hb: heartbeats.ThreadHeartbeat,
        instructions: Instructions,
        *,
        forced: bool,
        now: float,
    ) -> Looked | Verdict:
        """Gather the context, local and from the Ledger; skip when nothing changed."""
        ctx = gather_local(self.db, state.run.thread_id, window=self.options.window)
        ledger = self.ledger
        if ledger is None:
            return gates.no_ledger(self.options.ledger_error)
        # The feed is read while /home is: one round trip to a remote Ledger for both.
        feed_read = start_feed_read(ledger)
        try:
            home = read_home(ledger)
            # Kept before anything else can fail: /home shows each new comment only once.
            pending = agent_history.merge_pending_activity(self.db, home.activity)
            ctx.karma = home.karma
            feed = feed_read.result()
        except LedgerRateLimited as exc:
            return gates.rate_limited(
                str(exc), retry_at=self._retry_at(exc.retry_after_seconds), doing="reading it"
            )
        except LedgerInterrupted as exc:
            return gates.ledger_interrupted(str(exc))
        except LedgerError as exc:
            return gates.ledger_read_failed(str(exc))
        finally:
            # When /home failed, the feed's read is still let finish (its outcome is moot):
            # the run's verdict comes after both of its requests, never before one of them.
            wait([feed_read])
        # What the agent did, about what the Ledger shows it now (see agent_history.About).
        about = agent_history.About(
            posts=frozenset(p.id for p in feed) | {str(p.get("post_id")) for p in pending},
            comments=frozenset(str(p.get("comment_id")) for p in pending),
        )
        past_at = self.clock()
        past = agent_history.agent_history(self.db, since=now - DAY, about=about)
        ctx.activity = unanswered_activity(pending, past.answered_comment_ids)
        ctx.feed = mark_own(feed, past.own_post_ids)
        state.context_hash = ctx.fingerprint(instructions.sha256, state.config.model_dump_json())
        if stop := gates.unchanged_context(state.config, hb, state.context_hash, forced=forced):
            return stop
        return Looked(
            ctx=ctx, past=past, past_at=past_at, about=about, instructions=instructions.content
        )

    def think(
        self, state: RunState, instructions: Instructions, ctx: HeartbeatContext, *, now: float
    ) -> Thought | Verdict:
        """Build the prompt, call the model (one of ``max_concurrency`` slots), parse."""
        config = state.config
        model = config.model_or(self.options.default_model)
        state.run.model = model
        prompt = build_prompt(
            instructions=instructions.content,
            ctx=ctx,
            config=config,
            agent_name=self.options.agent_name,
            now=now,
            max_chars=self.budget.max_chars(model),
        )
        state.run.prompt_chars = prompt.chars
        keep_prompt(self.db, state.run, prompt.messages, self.options.secrets, now=now)
        if not self.llm_slots.acquire(state.slot_wait):
            return gates.no_llm_slot(
                state.slot_wait,
                closing=self.llm_slots.closed,
                retry_after=MANUAL_RETRY_AFTER_SECONDS,
            )
        schema = decision_json_schema(config)
        # Room for the longest reply the schema allows: a grammar-bound reply is never cut.
        max_tokens = max(config.max_tokens, schema_max_tokens(schema))
        state.run.max_tokens = max_tokens
        llm_started = time.perf_counter()
        try:
            with self.llm_slots.holding():
                reply = self.llm.chat(
                    prompt.messages,
                    model=model,
                    schema=schema,
                    temperature=config.temperature,
                    max_tokens=max_tokens,
                    # Longer than the interval, or every run pays a cold model load.
                    keep_alive=f"{int(config.every_seconds + 600)}s",
                )
        except LLMError as exc:
            if isinstance(exc, LLMTruncated):
                state.run.usage = exc.usage
                state.run.raw_reply = redact_text(exc.partial, self.options.secrets)[
                    -RAW_REPLY_CHARS:
                ]
            return gates.llm_failed(exc, max_tokens=max_tokens)
        finally:
            state.run.llm_ms = (time.perf_counter() - llm_started) * 1000
        state.run.usage = reply.usage
        self.budget.learn(model, prompt.chars, reply.usage)
        parsed = parse_decision(reply.content)
        decision = gates.usable_decision(parsed, reply.content, self.options.secrets)
        if isinstance(decision, Verdict):
            state.run.raw_reply = redact_text(reply.content, self.options.secrets)[:RAW_REPLY_CHARS]
            return decision
        return Thought(decision=decision, rejected=list(parsed.rejected))

    def act(self, state: RunState, looked: Looked, thought: Thought) -> Verdict:
        """Validate against what the agent did meanwhile, write the outbox, send, judge."""
        config, run, limits = state.config, state.run, self.options.limits
        # Read again after the LLM call: another thread's run may have posted meanwhile, and
        # cooldowns count from now, not from when this run started.
        decided_at = self.clock()
        since = decided_at - DAY
        past = agent_history.merge_history(
            looked.past,
            agent_history.agent_history(
                self.db, since=since, changed_after=looked.past_at, about=looked.about
            ),
        )
        # A decision may name a post or comment the prompt did not show: validation refuses
        # it, and says why from the history of that id, read whole (this is rare).
        named = _named(thought.decision)
        unseen = agent_history.About(
            posts=named.posts - looked.about.posts, comments=named.comments - looked.about.comments
        )
        if unseen.posts or unseen.comments:
            past = agent_history.merge_history(
                past, agent_history.agent_history(self.db, since=since, about=unseen)
            )
        ctx = looked.ctx
        vctx = ValidationContext(
            config=config,
            shown_post_ids=ctx.shown_post_ids(),
            shown_comment_ids=ctx.shown_comment_ids(),
            own_post_ids=past.own_post_ids,
            voted_post_ids=past.voted_post_ids,
            recent_hashes=past.recent_hashes,
            now=decided_at,
            next_post_allowed_at=_after(past.last_post_at, limits.post_cooldown),
            next_comment_allowed_at=_after(past.last_comment_at, limits.comment_cooldown),
            comments_left_today=max(0, limits.comments_per_day - past.comments_last_24h),
            secrets=self.options.secrets,
            default_submolt=config.submolt,
            # The owner's side of the conversation (and what the agent noted about it), never
            # the Ledger's words: a number a stranger posted is not the owner's secret.
            private=find_private(
                [m.content for m in ctx.messages] + [ctx.reflection or "", ctx.personality or ""]
            ),
            private_allowed=allowed_kinds(looked.instructions),
            social=social_actions.context(ctx, past, self.options.agent_name, config.submolt),
        )
        validated = validate_actions(thought.decision, vctx)
        state.seen_activity = ctx.shown_comment_ids()
        rows = outbox.build_rows(
            run.run_id,
            validated,
            thought.rejected,
            dry_run=run.dry_run,
            secrets=self.options.secrets,
        )
        # The outbox: written before anything is sent.
        rows = approvals.mark_proposals(self.db, rows, config, decided_at)  # dry-run rows stay
        heartbeats.add_actions(self.db, run.run_id, run.thread_id, rows)
        run.summary = redact_text(thought.decision.summary.strip(), self.options.secrets)[:1000]
        if run.dry_run:
            for row in rows:
                if row.state is ActionState.DRY_RUN:
                    outbox.log_action(row, dry=True)
        else:
            try:
                rows = outbox.send_pending(self.db, self.ledger, rows)
            except LedgerInterrupted as exc:
                return gates.ledger_interrupted(str(exc))
        verdict = outbox.verdict(rows, dry_run=run.dry_run)
        if verdict.outcome is RunOutcome.FAILED and verdict.reason is RunReason.RATE_LIMITED:
            waits = [r.retry_after for r in rows if r.retry_after is not None]
            return gates.rate_limited(
                verdict.error or "HTTP 429",
                retry_at=self._retry_at(max(waits) if waits else None),
                doing="sending its actions",
            )
        return verdict

    def _retry_at(self, retry_after: float | None) -> float:
        wait = retry_after if retry_after is not None and retry_after > 0 else None
        return self.clock() + (wait or DEFAULT_RATE_LIMIT_RETRY_SECONDS)


def _named(decision: Decision) -> agent_history.About:
    """The posts and comments a decision's actions name."""
    posts = {p for a in decision.actions if isinstance(p := getattr(a, "post_id", None), str)}
    comments = {
        c
        for a in decision.actions
        if isinstance(a, CommentAction) and isinstance(c := a.parent_id, str) and c
    }
    return agent_history.About(frozenset(posts), frozenset(comments))


def _after(ts: float | None, gap: float) -> float | None:
    return None if ts is None else ts + gap
