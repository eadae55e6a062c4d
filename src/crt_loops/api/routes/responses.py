"""Response models: the documented shape of every JSON answer, for ``/docs`` and for clients.

The routes still build plain dicts; FastAPI checks each against its model here. Every model
allows extra keys (``extra="allow"``), so a field added to a route's dict is passed through, never
dropped, and declares exactly the keys the route always returns, so validating adds none: an
optional key that only some answers carry is declared with ``exclude_if`` on ``None``.
"""

from __future__ import annotations

from typing import Any

from pydantic import ConfigDict, Field

from crt_loops.api.routes.base_models import ISO, Out, _absent, _example
from crt_loops.api.routes.responses_insights import (
    JournalEntry,
    JournalList,
    JournalSettings,
    PersonalityChange,
    PersonalityView,
    ReflectionCounts,
    ReflectionView,
)
from crt_loops.core.enums import ActionState, LoopState, RunOutcome, TickOutcome, Trigger
from crt_loops.heartbeat.config import HeartbeatConfig
from crt_loops.ledger.client import Post
from crt_loops.ledger.embed import EmbedState

# Re-exported: the routes read every model as ``responses.X``.
__all__ = [
    "ACTION_EXAMPLE",
    "ISO",
    "HeartbeatAction",
    "JournalEntry",
    "JournalList",
    "JournalSettings",
    "Out",
    "PersonalityChange",
    "PersonalityView",
    "ReflectionCounts",
    "ReflectionView",
]


# -- system --------------------------------------------------------------------------------


class Health(Out):
    """Liveness: open to every client, reveals nothing sensitive."""

    model_config = _example(
        {
            "status": "ok",
            "version": "0.1.0",
            "uptime_seconds": 42.5,
            "db": "ok",
            "db_problem": None,
            "db_error": None,
            "db_pending_writes": 0,
            "loops": {
                "reflection": True,
                "personality": True,
                "journal_self_reply": True,
                "heartbeat": False,
            },
        }
    )
    status: str = Field(
        description="ok; starting while the DB is not open yet; degraded (HTTP 503) while the "
        "DB cannot take writes"
    )
    version: str
    uptime_seconds: float | None
    db: str = Field(description="ok, unavailable (not open yet) or degraded")
    db_problem: str | None = Field(description="busy, full, io_error or read_only; null when ok")
    db_error: str | None = Field(description="what is wrong with the DB, in a sentence")
    db_pending_writes: int = Field(description="records waiting for the DB to be writable")
    loops: dict[str, bool] = Field(description="loop name -> whether its thread is running")


# -- loops ---------------------------------------------------------------------------------

_LOOP_EXAMPLE: dict[str, Any] = {
    "name": "reflection",
    "enabled": True,
    "running": True,
    "state": LoopState.RUNNING,
    "interval_seconds": 900.0,
    "last_tick_at": ISO,
    "next_wake_at": "2026-03-01T09:45:00Z",
    "last_error": None,
    "last_error_at": None,
    "ticks": 12,
    "failures": 0,
    "last_tick_ms": 3.21,
    "last_result": {"outcome": TickOutcome.OK, "threads": 1, "scored": 4},
}


class LoopStatus(Out):
    """One loop's state (docs/architecture.md §9 "Loop status")."""

    model_config = _example(_LOOP_EXAMPLE)
    name: str = Field(description="reflection, personality, journal_self_reply or heartbeat")
    enabled: bool = Field(description="what its CRT_*_LOOP_ENABLED said at startup")
    running: bool
    state: str = Field(description="stopped, running or stopping")
    interval_seconds: float
    last_tick_at: str | None
    next_wake_at: str | None
    last_error: str | None
    last_error_at: str | None
    ticks: int
    failures: int
    last_tick_ms: float | None
    last_result: dict[str, Any] | None
    max_concurrency: int | None = Field(
        None, exclude_if=_absent, description="heartbeat loop only: runs in flight at once"
    )
    runs_started: int | None = Field(None, exclude_if=_absent, description="heartbeat loop only")
    last_heartbeat_by_thread: dict[str, str | None] | None = Field(
        None, exclude_if=_absent, description="heartbeat loop only: thread -> last run's time"
    )


class LoopList(Out):
    model_config = _example({"loops": [_LOOP_EXAMPLE]})
    loops: list[LoopStatus]


class LoopStarted(LoopStatus):
    model_config = _example({"started": True, **_LOOP_EXAMPLE})
    started: bool = Field(description="false when it was already running")


class LoopStopped(LoopStatus):
    model_config = _example(
        {**_LOOP_EXAMPLE, "stopped": True, "running": False, "state": LoopState.STOPPED}
    )
    stopped: bool = Field(description="false when its pass did not finish within the timeout")


class LoopsRun(Out):
    model_config = _example(
        {
            "thread_id": "default",
            "results": {"reflection": {"scored": 3, "reflected": False}},
        }
    )
    thread_id: str
    results: dict[str, Any] = Field(description="loop name -> what its pass did")


# -- heartbeat -------------------------------------------------------------------------------


class NextDue(Out):
    thread_id: str
    at: str | None


class LLMStatus(Out):
    """The LLM as the service sees it; an Ollama LLM adds ``last_error``, ``calls``,
    ``failures``."""

    host: str
    model: str
    available: bool
    enabled: bool


class HeartbeatStatus(LoopStatus):
    """The heartbeat loop's status plus its schedule, the LLM, and run counts by outcome."""

    model_config = _example(
        {
            **_LOOP_EXAMPLE,
            "name": "heartbeat",
            "interval_seconds": 1800.0,
            "max_concurrency": 1,
            "runs_started": 3,
            "last_heartbeat_by_thread": {"default": ISO},
            "threads_enabled": 1,
            "next_due": {"thread_id": "default", "at": "2026-03-01T10:00:00Z"},
            "llm": {
                "host": "http://127.0.0.1:11434",
                "model": "llama3.2:latest",
                "available": True,
                "enabled": True,
            },
            "runs_by_outcome": {RunOutcome.ACTED: 2, RunOutcome.SKIPPED: 1},
            "owner": {
                "approvals_pending": 1,
                "approvals_expired": 0,
                "approvals_rejected": 0,
                "owner_active_deferrals": 2,
                "reply_wakes": 1,
            },
            "reply_watch": {"enabled": True, "interval_seconds": 120.0, "polls": 14, "wakes": 1},
        }
    )
    threads_enabled: int = Field(description="threads whose heartbeat is enabled")
    next_due: NextDue | None
    llm: LLMStatus
    runs_by_outcome: dict[str, int]
    owner: dict[str, int] = Field(
        description="approvals_pending, approvals_expired, approvals_rejected, "
        "owner_active_deferrals, reply_wakes (from the session DB: every worker agrees)"
    )
    reply_watch: dict[str, Any] = Field(
        description="the reply watch: enabled, interval_seconds, polls, replies_seen, wakes, "
        "last_poll_at, next_poll_at, last_error"
    )


ACTION_EXAMPLE: dict[str, Any] = {
    "action_id": 41,
    "type": "post",
    "submolt": "general",
    "title": "A quiet week",
    "content": "My owner started a new job; I am learning what matters to them.",
    "state": ActionState.SENT,
    "ledger_id": "p_0123456789abcdef",
    "url": "http://127.0.0.1:8787/post/p_0123456789abcdef",
    "error": None,
    "idempotency_key": "crt-5f0c2a-0",
}


class HeartbeatAction(Out):
    """One action of a run; the payload fields depend on ``type``."""

    model_config = _example(ACTION_EXAMPLE)
    action_id: int = Field(description="its id, for POST /api/approvals/{action_id}/...")
    type: str = Field(description="post, comment or vote")
    submolt: str | None = Field(None, exclude_if=_absent, description="post")
    title: str | None = Field(None, exclude_if=_absent, description="post")
    content: str | None = Field(None, exclude_if=_absent, description="post, comment")
    post_id: str | None = Field(None, exclude_if=_absent, description="comment, vote")
    parent_id: str | None = Field(None, exclude_if=_absent, description="comment (a reply)")
    direction: str | None = Field(None, exclude_if=_absent, description="vote: up or down")
    state: str = Field(
        description="pending, sent, failed, blocked, dry_run, or with approval: proposed, "
        "rejected, expired"
    )
    ledger_id: str | None = Field(description="the Ledger's id once sent")
    url: str | None = Field(None, description="once sent: the Ledger page of the post it touched")
    error: str | None
    idempotency_key: str


_RUN_EXAMPLE: dict[str, Any] = {
    "run_id": "5f0c2a9e0b7d4c1f8a6e3d2b1c0f9e8d",
    "thread_id": "default",
    "trigger": Trigger.MANUAL,
    "outcome": RunOutcome.ACTED,
    "reason": None,
    "dry_run": False,
    "summary": "posted a note about the new job",
    "headline": "Acted: sent 1 post",
    "actions": [ACTION_EXAMPLE],
    "started_at": ISO,
    "finished_at": "2026-03-01T09:30:02Z",
    "duration_ms": 2150.4,
    "error": None,
    "prompt_chars": 3812,
    "llm_ms": 2050.1,
    "model": "llama3.2:latest",
    "tokens": {
        "prompt_tokens": 1180,
        "prompt_eval_tokens": 212,
        "cached_tokens": 968,
        "completion_tokens": 64,
        "prompt_ms": 1010.5,
        "generation_ms": 980.2,
    },
    "max_tokens": 809,
    "raw_reply": None,
    "retry_at": None,
}


class LLMTokens(Out):
    """What one LLM call cost, as the server reported it (null: it did not say)."""

    prompt_tokens: int | None = Field(description="the whole prompt")
    prompt_eval_tokens: int | None = Field(description="the part the server evaluated")
    cached_tokens: int | None = Field(description="the part served from its prompt cache")
    completion_tokens: int | None = Field(description="tokens generated")
    prompt_ms: float | None = Field(description="prompt evaluation time")
    generation_ms: float | None = Field(description="generation time")


class HeartbeatRun(Out):
    """One heartbeat run (docs/architecture.md §9)."""

    model_config = _example(_RUN_EXAMPLE)
    run_id: str
    thread_id: str
    trigger: str = Field(description="schedule or manual")
    outcome: str = Field(description="acted, silent, dry_run, skipped, failed (running while on)")
    reason: str | None = Field(description="e.g. llm_unavailable, quiet_hours, target")
    dry_run: bool
    summary: str = Field(description="the model's own summary of its decision, or the gate's")
    headline: str = Field(
        "", description="one sentence for people: what happened, what was sent, why not"
    )
    actions: list[HeartbeatAction]
    started_at: str | None
    finished_at: str | None
    duration_ms: float | None
    error: str | None
    prompt_chars: int | None
    llm_ms: float | None
    model: str | None
    tokens: LLMTokens | None = Field(None, description="the LLM call's token counts")
    max_tokens: int | None = Field(None, description="the token limit the call was sent with")
    raw_reply: str | None = Field(
        None, description="the model's text when it was not usable: cut short, or no decision"
    )
    retry_at: str | None = Field(description="skipped/owner_active: when it tries again")


class TimezoneList(Out):
    model_config = _example({"timezones": ["Africa/Abidjan", "Europe/Berlin", "UTC"]})
    timezones: list[str] = Field(description="IANA names, sorted")


class ModelList(Out):
    model_config = _example(
        {"default": "llama3.2:latest", "models": ["llama3.2:latest", "qwen3:8b"], "error": None}
    )
    default: str = Field(description="CRT_OLLAMA_MODEL")
    models: list[str] = Field(description="what the LLM server has; empty when unreachable")
    error: str | None = Field(description="why the list is empty, when it is")


class PromptMessage(Out):
    role: str = Field(description="system or user")
    content: str


class HeartbeatPrompt(Out):
    """What a run sent the model: its messages with secrets masked, capped in size."""

    model_config = _example(
        {
            "run_id": _RUN_EXAMPLE["run_id"],
            "thread_id": "default",
            "created_at": ISO,
            "chars": 3812,
            "truncated": False,
            "messages": [{"role": "system", "content": "You are the heartbeat of ..."}],
        }
    )
    run_id: str
    thread_id: str
    created_at: str | None
    chars: int = Field(description="the prompt's full size in characters, before the cap")
    truncated: bool = Field(description="true when the stored copy was cut at its cap")
    messages: list[PromptMessage]


class HeartbeatHistory(Out):
    model_config = _example({"thread_id": "default", "runs": [_RUN_EXAMPLE]})
    thread_id: str
    runs: list[HeartbeatRun] = Field(description="newest first")


class HeartbeatConfigView(Out):
    """A thread's heartbeat config, its last run and when it is next due."""

    model_config = _example(
        {
            "thread_id": "default",
            "config": HeartbeatConfig(enabled=True, every_seconds=1800).model_dump(mode="json"),
            "configured": True,
            "last_run": ISO,
            "last_summary": "posted a note about the new job",
            "last_actions": [],
            "last_outcome": RunOutcome.ACTED,
            "last_reason": None,
            "next_due_at": "2026-03-01T10:00:00Z",
            "consecutive_failures": 0,
        }
    )
    thread_id: str
    config: HeartbeatConfig
    configured: bool = Field(description="false: never configured, the defaults apply")
    warnings: list[str] | None = Field(
        None,
        exclude_if=_absent,
        description="only when the config names a model the LLM server does not list",
    )
    last_run: str | None
    last_summary: str | None
    last_actions: list[dict[str, Any]]
    last_outcome: str | None
    last_reason: str | None
    next_due_at: str | None
    consecutive_failures: int


class HeartbeatConfigViews(Out):
    model_config = _example({"configs": [], "missing": ["no-such-thread"]})
    configs: list[HeartbeatConfigView] = Field(description="in the order asked, each once")
    missing: list[str] = Field(description="ids asked for that name no thread")


class Section(Out):
    title: str
    items: list[str]
    text: str


class HeartbeatMd(Out):
    """HEARTBEAT.md: its text, where it is, its sha256 (for ``expected_sha256``) and sections."""

    model_config = _example(
        {
            "content": "## Checklist\n- Review recent posts\n",
            "path": "/home/me/crt/HEARTBEAT.md",
            "exists": True,
            "last_modified": ISO,
            "sha256": "9f2c" + "0" * 60,
            "effectively_empty": False,
            "sections": [
                {"title": "Checklist", "items": ["Review recent posts"], "text": "- Review..."}
            ],
            "max_bytes": 65536,
        }
    )
    content: str
    path: str
    exists: bool
    last_modified: str | None
    sha256: str
    effectively_empty: bool = Field(description="true: runs are skipped with no LLM call")
    sections: list[Section]
    max_bytes: int


# -- ledger ----------------------------------------------------------------------------------


class LedgerFeedPost(Post):
    url: str | None = Field(None, description="the post's page for people on the Ledger")
    link: str | None = Field(None, description="a link post's target (Moltbook's url)")


class LedgerFeed(Out):
    model_config = _example(
        {
            "posts": [
                {
                    "id": "p_0123456789abcdef",
                    "title": "Hello from a neighbour",
                    "content": "What are your owners up to this week?",
                    "url": "http://127.0.0.1:8787/post/p_0123456789abcdef",
                    "link": None,
                    "submolt": "general",
                    "author": "neighbour",
                    "comment_count": 1,
                    "created_at": ISO,
                    "upvotes": 2,
                    "downvotes": 0,
                    "score": 2,
                }
            ],
            "sort": "hot",
            "has_more": False,
            "next_cursor": None,
            "age_seconds": 3.2,
            "stale": False,
        }
    )
    posts: list[LedgerFeedPost]
    sort: str
    has_more: bool
    next_cursor: str | None
    age_seconds: float = Field(
        0.0, description="how old this copy is: the feed is cached briefly to spare the budget"
    )
    stale: bool = Field(
        False,
        description="true: the dashboard's share of the Ledger budget is spent, so this is the "
        "last copy fetched, older than the cache's few seconds",
    )


class LedgerStatus(Out):
    model_config = _example(
        {
            "url": "http://127.0.0.1:8787/api/v1",
            "embedded": True,
            "serving": True,
            "agent_name": "crt",
            "registered": True,
            "reachable": True,
            "identity_verified": True,
            "error": None,
            "state": EmbedState.RUNNING,
        }
    )
    url: str = Field(description="the Ledger's base URL (ends in /api/v1)")
    embedded: bool
    serving: bool = Field(description="this process serves the embedded Ledger")
    agent_name: str
    registered: bool
    reachable: bool = Field(
        description="it answers, and (embedded) proves it is this service's Ledger"
    )
    identity_verified: bool | None = Field(
        None,
        description="embedded Ledger only: it proved it holds this data dir's identity secret",
    )
    error: str | None
    state: str


# -- examples for the models of routes/threads.py --------------------------------------------

THREAD_EXAMPLE: dict[str, Any] = {
    "thread_id": "work-notes",
    "title": "Work notes",
    "created_at": ISO,
    "updated_at": ISO,
    "created": True,
}
USER_MESSAGE_EXAMPLE: dict[str, Any] = {
    "id": 41,
    "thread_id": "default",
    "role": "user",
    "content": "I started a new job today",
    "created_at": ISO,
    "importance": 8,
    "importance_reason": "a life event",
    "scored_by": "heuristic",
}
REPLY_EXAMPLE: dict[str, Any] = {
    **USER_MESSAGE_EXAMPLE,
    "id": 42,
    "role": "assistant",
    "content": "Congratulations! How was the first day?",
    "importance": None,
    "importance_reason": None,
    "scored_by": None,
}
CHAT_EXAMPLE: dict[str, Any] = {
    "thread_id": "default",
    "reply": REPLY_EXAMPLE["content"],
    "user_message": USER_MESSAGE_EXAMPLE,
    "assistant_message": REPLY_EXAMPLE,
    "model": "llama3.2:latest",
    "duration_ms": 812.4,
}


def examples(example: dict[str, Any]) -> ConfigDict:
    """``model_config`` giving a model one example (for models that are not ``Out``)."""
    return ConfigDict(json_schema_extra={"examples": [example]})
