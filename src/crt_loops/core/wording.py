"""The words for every heartbeat outcome and reason: one table for the API, the CLI and the
dashboard, so the three never contradict each other.

Each reason has a ``label`` (a few words, shown beside the outcome) and a ``hint`` (what the
person can do about it, or when it ends), and :func:`run_headline` turns a run record into the
one sentence all three show: the API puts it in every run record as ``headline``, which the
CLI prints and the dashboard shows.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, tzinfo
from typing import Any

from crt_loops.core.enums import ActionState, RunOutcome, RunReason


@dataclass(frozen=True)
class Words:
    label: str
    hint: str = ""


OUTCOMES: Mapping[str, Words] = {
    "acted": Words("acted", "the actions were sent to the Ledger"),
    "silent": Words("silent", "nothing was sent to the Ledger"),
    "dry_run": Words("dry run", "decided but sent nothing (dry run)"),
    "skipped": Words("skipped", "no LLM call was made"),
    "failed": Words("failed", "the run stopped on an error"),
    "running": Words("running", "the run is in progress"),
}

REASONS: Mapping[str, Words] = {
    # acted / dry_run
    "partial": Words("some actions failed", "the failed ones are listed with their error"),
    "no_action": Words("nothing to send", "the model proposed nothing that could be sent"),
    # blocked actions (silent runs, and each blocked action)
    "target": Words("not allowed by target", "widen the thread's target to allow it"),
    "max_actions": Words("over max_actions", "raise max_actions (1 to 5) to allow more per run"),
    "unknown_post": Words(
        "unknown post", "the model named a post it was not shown; it is not sent"
    ),
    "already_voted": Words("already voted", "one vote per post"),
    "duplicate": Words("repeated text", "the same text cannot be posted twice within 24 h"),
    "rate_limited": Words("Ledger rate limit", "allowed again once the cooldown ends"),
    "too_long": Words("too long", "over the Ledger's length limit"),
    "empty": Words("empty text", "the model wrote nothing"),
    "invalid": Words("invalid action", "the model's action had a malformed field"),
    "self_vote": Words("vote on own post", "the agent cannot vote on its own posts"),
    "secret": Words("contains a secret", "an API key or token was removed from what is sent"),
    "internal_leak": Words("internal text", "the model repeated the prompt's own markers"),
    "blocked": Words("all actions blocked", "each blocked action says why"),
    # skipped
    "disabled": Words(
        "heartbeat off", "turn it on: POST /api/threads/{id}/heartbeat/config enabled=true"
    ),
    "quiet_hours": Words("outside active hours", "runs resume when the active hours start"),
    "empty_instructions": Words(
        "HEARTBEAT.md is empty", "write instructions into HEARTBEAT.md (crt heartbeat-md edit)"
    ),
    "no_new_context": Words("nothing new", "no new messages or Ledger activity since the last run"),
    "llm_unavailable": Words(
        "no LLM answered",
        "start Ollama (`ollama serve`) and pull the model (`ollama pull llama3.2`)",
    ),
    "busy": Words("another run in progress", "try again when it finishes"),
    # failed
    "llm_error": Words("LLM error", "see the run's error"),
    "llm_timeout": Words("LLM timed out", "raise CRT_LLM_TIMEOUT_SECONDS or use a smaller model"),
    "invalid_decision": Words(
        "unreadable decision", "the reply was not valid JSON or was cut at max_tokens"
    ),
    "ledger_error": Words("Ledger error", "the Ledger could not be reached or refused"),
    "instructions_error": Words("HEARTBEAT.md unreadable", "check the file's permissions"),
    "db_error": Words("database error", "see the service log"),
    "interrupted": Words(
        "interrupted", "the service stopped during the run; nothing was sent twice"
    ),
    "internal_error": Words("internal error", "see the service log"),
}

ACTION_WORDS = {
    "post": ("post", "posts"),
    "comment": ("comment", "comments"),
    "vote": ("vote", "votes"),
}


def outcome_label(outcome: str | None) -> str:
    words = OUTCOMES.get(outcome or "")
    return words.label if words else (outcome or "?")


def reason_label(reason: str | None) -> str:
    if not reason:
        return ""
    words = REASONS.get(reason)
    return words.label if words else reason


def reason_hint(reason: str | None) -> str:
    words = REASONS.get(reason or "")
    return words.hint if words else ""


def _count(actions: Sequence[Mapping[str, Any]], state: str) -> str:
    chosen = [a for a in actions if a.get("state") == state]
    kinds: dict[str, int] = {}
    for action in chosen:
        kinds[str(action.get("type"))] = kinds.get(str(action.get("type")), 0) + 1
    parts = []
    for kind, n in kinds.items():
        one, many = ACTION_WORDS.get(kind, (kind, kind + "s"))
        parts.append(f"{n} {one if n == 1 else many}")
    return ", ".join(parts)


def _blocked_why(actions: Sequence[Mapping[str, Any]]) -> str:
    blocked = [a for a in actions if a.get("state") == ActionState.BLOCKED]
    if not blocked:
        return ""
    first = blocked[0]
    why = str(first.get("error") or reason_label(str(first.get("reason") or "")) or "blocked")
    more = f" (+{len(blocked) - 1} more)" if len(blocked) > 1 else ""
    return f"{_count(blocked, 'blocked')} blocked: {why}{more}"


def run_headline(run: Mapping[str, Any]) -> str:
    """One sentence for a run record (``outcome``, ``reason``, ``actions``) that does not
    contradict itself: what happened, what was sent, and why not when nothing was."""
    outcome = str(run.get("outcome") or "")
    reason = run.get("reason")
    actions: Sequence[Mapping[str, Any]] = run.get("actions") or []
    blocked = _blocked_why(actions)
    if outcome == RunOutcome.RUNNING:
        return "Running now"
    if outcome == RunOutcome.ACTED:
        sent = _count(actions, "sent") or "actions"
        tail = f"; {blocked}" if blocked else ""
        if reason == RunReason.PARTIAL:
            return f"Acted, partly: sent {sent}; some actions failed{tail}"
        return f"Acted: sent {sent}{tail}"
    if outcome == RunOutcome.DRY_RUN:
        would = _count(actions, "dry_run") or _count(actions, "planned")
        if would:
            tail = f"; {blocked}" if blocked else ""
            return f"Dry run: would have sent {would}{tail}"
        if blocked:
            return f"Dry run: nothing would be sent; {blocked}"
        return "Dry run: the model proposed nothing"
    if outcome == RunOutcome.SILENT:
        if blocked:
            return f"Silent: nothing sent; {blocked}"
        return "Silent: the model chose to do nothing"
    if outcome == RunOutcome.SKIPPED:
        hint = reason_hint(reason)
        return f"Skipped: {reason_label(reason)}" + (f" ({hint})" if hint else "")
    if outcome == RunOutcome.FAILED:
        hint = reason_hint(reason)
        return f"Failed: {reason_label(reason)}" + (f" ({hint})" if hint else "")
    return outcome_label(outcome)


def allowed_again(at: float, now: float, tz: tzinfo | None = None) -> str:
    """When something blocked becomes possible: "at 21:40 UTC, in 12 min"."""
    moment = datetime.fromtimestamp(at, tz or UTC)
    wait = max(0.0, at - now)
    if wait < 60:
        rel = f"{max(1, round(wait))} s"
    elif wait < 3600:
        rel = f"{round(wait / 60)} min"
    else:
        rel = f"{wait / 3600:.1f} h"
    return f"at {moment:%H:%M} {moment.tzname() or ''}".rstrip() + f", in {rel}"


def table() -> dict[str, Any]:
    """The whole vocabulary as plain data (labels and hints by outcome and reason)."""
    return {
        "outcomes": {k: asdict(v) for k, v in OUTCOMES.items()},
        "reasons": {k: asdict(v) for k, v in REASONS.items()},
    }
