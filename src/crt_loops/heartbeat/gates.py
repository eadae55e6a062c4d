"""The heartbeat's gates: small checks that each stop a run with a verdict, or let it pass on.

A gate returns a :class:`Verdict` (``skipped`` or ``failed`` with its reason and what to record)
to stop the run, or ``None`` to pass it on to the next step. Gates read what they are given and
write nothing; the pipeline (heartbeat/pipeline.py) calls them in order and recording
(heartbeat/recording.py) writes whichever verdict the run came to.

Cheap gates come first and cost no LLM call: disabled, quiet_hours, the instructions,
llm_unavailable; then the Ledger's presence and, once the context is gathered, no_new_context.
A step that produces something (the instructions, the decision) passes it on instead of None.
A run-now (``forced``) passes the disabled, quiet-hours and unchanged-context gates.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from crt_loops.core.clock import iso
from crt_loops.core.enums import RunOutcome, RunReason
from crt_loops.db.heartbeats import ThreadHeartbeat
from crt_loops.heartbeat.config import HeartbeatConfig
from crt_loops.heartbeat.decision import Decision, ParseResult
from crt_loops.heartbeat.instructions import Instructions, InstructionsError, load_instructions
from crt_loops.heartbeat.redaction import redact_text
from crt_loops.heartbeat.schedule import ActiveWindow
from crt_loops.llm.client import (
    LLM,
    LLMError,
    LLMTimeout,
    LLMTruncated,
    LLMUnavailable,
    LLMUnknownModel,
)
from crt_loops.llm.interruptible import LLMInterrupted


@dataclass(frozen=True)
class Verdict:
    """What a run came to: its outcome and reason, and the error and summary to record.

    ``None`` for ``error`` or ``summary`` leaves what the run already holds.
    """

    outcome: RunOutcome
    reason: RunReason | None
    error: str | None = None
    summary: str | None = None
    retry_at: float | None = None  # a Ledger 429's "not before": the next due time waits


def skip(reason: RunReason, summary: str, *, error: str | None = None) -> Verdict:
    return Verdict(RunOutcome.SKIPPED, reason, error=error, summary=summary)


def fail(reason: RunReason, error: str | None, *, summary: str | None = None) -> Verdict:
    return Verdict(RunOutcome.FAILED, reason, error=error, summary=summary)


# -- before the context ---------------------------------------------------------------------


def disabled(config: HeartbeatConfig, *, forced: bool) -> Verdict | None:
    if forced or config.enabled:
        return None
    return skip(RunReason.DISABLED, "heartbeat is disabled for this thread")


def quiet_hours(window: ActiveWindow | None, now: float, *, forced: bool) -> Verdict | None:
    if forced or window is None or window.contains(now):
        return None
    return skip(RunReason.QUIET_HOURS, f"outside active hours ({window.describe()})")


def read_instructions(path: Path | str) -> Instructions | Verdict:
    """HEARTBEAT.md, read fresh for every run, or the failure to read it."""
    try:
        return load_instructions(path)
    except InstructionsError as exc:
        return fail(
            RunReason.INSTRUCTIONS_ERROR, str(exc), summary="HEARTBEAT.md could not be read"
        )


def empty_instructions(instructions: Instructions) -> Verdict | None:
    if not instructions.effectively_empty:
        return None
    what = "missing" if instructions.missing else "effectively empty"
    return skip(
        RunReason.EMPTY_INSTRUCTIONS, f"HEARTBEAT.md is {what}: nothing to do (no LLM call)"
    )


def llm_unavailable(llm: LLM) -> Verdict | None:
    if llm.available():
        return None
    return skip(RunReason.LLM_UNAVAILABLE, f"the LLM at {llm.host} is not reachable; no call made")


def no_ledger(why: str | None) -> Verdict:
    """The Ledger did not start (``why`` says so): nothing to read or send."""
    return fail(RunReason.LEDGER_ERROR, why, summary="the Ledger is not available")


# -- after the context ----------------------------------------------------------------------


def unchanged_context(
    config: HeartbeatConfig, hb: ThreadHeartbeat, context_hash: str, *, forced: bool
) -> Verdict | None:
    """Skip when nothing changed since the last run, unless that run failed (try again)."""
    if (
        forced
        or not config.skip_when_unchanged
        or hb.context_hash is None
        or hb.context_hash != context_hash
        or hb.last_outcome in (None, RunOutcome.FAILED)
    ):
        return None
    return skip(RunReason.NO_NEW_CONTEXT, "nothing changed since the last heartbeat; no LLM call")


def rate_limited(error: str, *, retry_at: float, doing: str) -> Verdict:
    """A Ledger 429 is ``rate_limited`` with the time it may retry, never ``ledger_error``."""
    when = iso(retry_at)
    return Verdict(
        RunOutcome.FAILED,
        RunReason.RATE_LIMITED,
        error=f"{error}; may retry at {when}",
        summary=f"the Ledger rate-limited us while {doing}; the next try is at {when}",
        retry_at=retry_at,
    )


def no_llm_slot(wait: float | None, *, closing: bool, retry_after: int) -> Verdict:
    """No LLM slot freed within a manual run's wait, or the service is shutting down."""
    if closing:
        return skip(RunReason.BUSY, "the service is shutting down; no LLM call made")
    return skip(
        RunReason.BUSY,
        f"every LLM slot stayed busy for {wait or 0:.0f} s (other heartbeats are thinking); "
        f"no LLM call made, try again in {retry_after} s",
    )


def ledger_interrupted(error: str) -> Verdict:
    """The service began stopping while the Ledger was answering: the call was abandoned."""
    return fail(
        RunReason.INTERRUPTED,
        error,
        summary="the service stopped while the Ledger was answering; "
        "anything unsent goes out at the next start",
    )


def ledger_read_failed(error: str) -> Verdict:
    return fail(RunReason.LEDGER_ERROR, error, summary="could not read the Ledger")


# -- the model's answer ---------------------------------------------------------------------


def llm_failed(exc: LLMError, *, max_tokens: int | None = None) -> Verdict:
    """The verdict for an LLM call that raised: a timeout, a cut reply, a vanished server, a
    model the server does not have."""
    if isinstance(exc, LLMInterrupted):  # the service is stopping: the call was abandoned
        return fail(RunReason.INTERRUPTED, str(exc))
    if isinstance(exc, LLMTimeout):
        return fail(RunReason.LLM_TIMEOUT, str(exc))
    if isinstance(exc, LLMTruncated):
        return fail(
            RunReason.INVALID_DECISION,
            str(exc),
            summary=f"the reply was cut at {max_tokens} tokens; it ended: {exc.partial[-120:]!r}",
        )
    if isinstance(exc, LLMUnknownModel):
        return fail(
            RunReason.LLM_ERROR, str(exc), summary=f"the LLM server has no model {exc.model!r}"
        )
    if isinstance(exc, LLMUnavailable):
        return skip(RunReason.LLM_UNAVAILABLE, "the LLM stopped answering", error=str(exc))
    return fail(RunReason.LLM_ERROR, str(exc))


def usable_decision(
    parsed: ParseResult, content: str, secrets: Sequence[str]
) -> Decision | Verdict:
    """The parsed reply's decision, or the failure to get one (the reply quoted, redacted)."""
    if parsed.ok and parsed.decision is not None:
        return parsed.decision
    return fail(
        RunReason.INVALID_DECISION,
        parsed.error or "the reply is not a decision",
        summary=f"could not use the model's reply: {redact_text(str(content), secrets)[:200]!r}",
    )
