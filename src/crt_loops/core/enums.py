"""The whole vocabulary of outcomes, reasons, states and triggers, in one place.

Each is a small ``StrEnum``: a member *is* its string value, so it is stored in the DB, sent in
the API and used as a metrics label exactly as the bare string was, and a value read back from
the DB converts with ``RunOutcome(text)``. Nothing else in the product spells one of these
values as a bare string (SQL may embed them through the enum, never by hand).

To add a value: add the member here with its line in the class docstring, then the README's
tables (a test checks they list exactly these values) and, for a stored value, the CHECK
constraint in a new migration (db/session.py).
"""

from __future__ import annotations

from enum import StrEnum

__all__ = [
    "ActionState",
    "BlockReason",
    "LoopState",
    "RunOutcome",
    "RunReason",
    "TickOutcome",
    "Trigger",
]


class RunOutcome(StrEnum):
    """What one heartbeat run came to (``heartbeat_runs.outcome``).

    - ``running``: in flight; recovery closes it as failed/interrupted if its process died
    - ``acted``: at least one action was sent to the Ledger
    - ``silent``: the model chose no action, or every action it proposed was blocked
    - ``dry_run``: a dry run; the actions were recorded, none was sent
    - ``proposed``: the actions wait for the owner's approval (the thread's ``approval``)
    - ``skipped``: a gate stopped the run before (or instead of) the LLM call
    - ``failed``: something went wrong; the reason says what
    """

    RUNNING = "running"
    ACTED = "acted"
    SILENT = "silent"
    DRY_RUN = "dry_run"
    PROPOSED = "proposed"
    SKIPPED = "skipped"
    FAILED = "failed"


class BlockReason(StrEnum):
    """Why validation kept an action from being sent (the action's state is ``blocked``).

    - ``target``: the config's target does not allow this kind of action
    - ``max_actions``: more actions than the config's ``max_actions``
    - ``unknown_post``: a post id the prompt did not show
    - ``already_voted``: the agent already voted on this post
    - ``duplicate``: the same text was posted or commented within 24 h; a second comment in
      one thread (same post at the top level, or same comment); a follow or subscription
      already made
    - ``rate_limited``: the Ledger's cooldown or daily limit would answer 429
    - ``too_long``: a title or content over the Ledger's limits
    - ``empty``: no title or content
    - ``invalid``: not a well-formed action
    - ``self_vote``: a vote on the agent's own post
    - ``secret``: the text carries a secret (an API key or token)
    - ``private_data``: the text carries the owner's PIN, card, phone or e-mail from the chat
    - ``internal_leak``: the text quotes the prompt's internals
    """

    TARGET = "target"
    MAX_ACTIONS = "max_actions"
    UNKNOWN_POST = "unknown_post"
    ALREADY_VOTED = "already_voted"
    DUPLICATE = "duplicate"
    RATE_LIMITED = "rate_limited"
    TOO_LONG = "too_long"
    EMPTY = "empty"
    INVALID = "invalid"
    SELF_VOTE = "self_vote"
    SECRET = "secret"  # noqa: S105 (a reason code, not a password)
    PRIVATE_DATA = "private_data"
    INTERNAL_LEAK = "internal_leak"


class RunReason(StrEnum):
    """Why a run came to its outcome (``heartbeat_runs.reason``; none for a plain outcome).

    With ``acted``:
    - ``partial``: some actions were sent, others failed
    - ``proposed``: some actions were sent, others wait for the owner's approval

    With ``proposed``:
    - ``partial``: some actions wait for the owner, others failed

    With ``silent``: every :class:`BlockReason` (when all blocked actions share it), or
    - ``blocked``: the proposed actions were blocked for different reasons

    With ``dry_run``:
    - ``no_action``: the dry run planned nothing

    With ``skipped``:
    - ``disabled``: the thread's heartbeat is off
    - ``quiet_hours``: outside the thread's active hours
    - ``owner_active``: the owner wrote in the thread within the quiet window (retry_at)
    - ``empty_instructions``: HEARTBEAT.md is missing or effectively empty
    - ``no_new_context``: nothing changed since the last run
    - ``llm_unavailable``: the LLM is not reachable (or stopped answering)
    - ``busy``: another heartbeat for the thread was running, or no LLM slot freed in time
      for a run-now (or the service was shutting down); nothing was tried

    With ``failed``:
    - ``llm_error``: the LLM call failed
    - ``llm_timeout``: the LLM call took longer than its deadline
    - ``invalid_decision``: the reply is not a usable decision (or was cut at ``max_tokens``)
    - ``ledger_error``: the Ledger is unavailable or a call to it failed
    - ``rate_limited``: the Ledger answered 429; the error says when it may retry
    - ``instructions_error``: HEARTBEAT.md could not be read
    - ``db_error``: the session DB failed (e.g. locked past the busy timeout)
    - ``interrupted``: the service stopped while the run was in flight
    - ``internal_error``: a bug; the error says which exception
    """

    PARTIAL = "partial"
    BLOCKED = "blocked"
    TARGET = BlockReason.TARGET.value
    MAX_ACTIONS = BlockReason.MAX_ACTIONS.value
    UNKNOWN_POST = BlockReason.UNKNOWN_POST.value
    ALREADY_VOTED = BlockReason.ALREADY_VOTED.value
    DUPLICATE = BlockReason.DUPLICATE.value
    RATE_LIMITED = BlockReason.RATE_LIMITED.value
    TOO_LONG = BlockReason.TOO_LONG.value
    EMPTY = BlockReason.EMPTY.value
    INVALID = BlockReason.INVALID.value
    SELF_VOTE = BlockReason.SELF_VOTE.value
    SECRET = BlockReason.SECRET.value
    PRIVATE_DATA = BlockReason.PRIVATE_DATA.value
    INTERNAL_LEAK = BlockReason.INTERNAL_LEAK.value
    NO_ACTION = "no_action"
    DISABLED = "disabled"
    QUIET_HOURS = "quiet_hours"
    OWNER_ACTIVE = "owner_active"
    PROPOSED = "proposed"
    EMPTY_INSTRUCTIONS = "empty_instructions"
    NO_NEW_CONTEXT = "no_new_context"
    LLM_UNAVAILABLE = "llm_unavailable"
    BUSY = "busy"
    LLM_ERROR = "llm_error"
    LLM_TIMEOUT = "llm_timeout"
    INVALID_DECISION = "invalid_decision"
    LEDGER_ERROR = "ledger_error"
    INSTRUCTIONS_ERROR = "instructions_error"
    DB_ERROR = "db_error"
    INTERRUPTED = "interrupted"
    INTERNAL_ERROR = "internal_error"


class ActionState(StrEnum):
    """Where one outbox action stands (``heartbeat_actions.state``).

    - ``pending``: written, not yet sent (recovery re-sends it with its idempotency key)
    - ``sent``: the Ledger accepted it
    - ``blocked``: validation kept it back; the error names the :class:`BlockReason`
    - ``dry_run``: a dry run's action, recorded and never sent
    - ``failed``: the Ledger call failed
    - ``proposed``: waits for the owner's approval (``expires_at``)
    - ``rejected``: the owner declined it
    - ``expired``: nobody approved it within ``approval_ttl``
    """

    PENDING = "pending"
    SENT = "sent"
    BLOCKED = "blocked"
    DRY_RUN = "dry_run"
    FAILED = "failed"
    PROPOSED = "proposed"
    REJECTED = "rejected"
    EXPIRED = "expired"


class Trigger(StrEnum):
    """What started a heartbeat run (``heartbeat_runs.trigger``).

    - ``schedule``: the heartbeat loop found the thread due (gates apply)
    - ``manual``: run-now; bypasses the schedule, active hours and the unchanged-context gate
    - ``reply``: due early because someone answered the agent on the Ledger (gates apply)
    """

    SCHEDULE = "schedule"
    MANUAL = "manual"
    REPLY = "reply"


class LoopState(StrEnum):
    """A background loop's lifecycle.

    - ``stopped``: not running (never started, or stopped); can be started
    - ``running``: its thread is alive and ticking
    - ``stopping``: asked to stop, its thread has not ended yet; cannot be started
    """

    STOPPED = "stopped"
    RUNNING = "running"
    STOPPING = "stopping"


class TickOutcome(StrEnum):
    """What one loop pass came to (the ``outcome`` label of ``crt_loop_ticks_total``).

    - ``ok``: the pass ran (or found nothing to do)
    - ``failed``: the pass raised; the loop recorded the error and keeps going
    - ``lease_held``: another process holds this loop's lease and does the pass
    """

    OK = "ok"
    FAILED = "failed"
    LEASE_HELD = "lease_held"
