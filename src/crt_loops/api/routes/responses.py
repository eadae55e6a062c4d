"""Response models: the documented shape of every JSON answer, for ``/docs`` and for clients.

The routes still build plain dicts; FastAPI checks each against its model here. Every model
allows extra keys (``extra="allow"``), so a field added to a route's dict is passed through, never
dropped, and declares exactly the keys the route always returns, so validating adds none: an
optional key that only some answers carry is declared with ``exclude_if`` on ``None``.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from crt_loops.heartbeat.config import HeartbeatConfig
from crt_loops.ledger.client import Post

ISO = "2026-03-01T09:30:00Z"


def _absent(value: Any) -> bool:
    return value is None


class Out(BaseModel):
    """Base of the response models: unknown keys pass through untouched."""

    model_config = ConfigDict(extra="allow")


def _example(example: dict[str, Any]) -> ConfigDict:
    return ConfigDict(extra="allow", json_schema_extra={"examples": [example]})


# -- system --------------------------------------------------------------------------------


class Health(Out):
    """Liveness: open to every client, reveals nothing sensitive."""

    model_config = _example(
        {
            "status": "ok",
            "version": "0.1.0",
            "uptime_seconds": 42.5,
            "db": "ok",
            "loops": {
                "reflection": True,
                "personality": True,
                "journal_self_reply": True,
                "heartbeat": False,
            },
        }
    )
    status: str = Field(description="ok, or starting while the DB is not open yet")
    version: str
    uptime_seconds: float | None
    db: str = Field(description="ok or unavailable")
    loops: dict[str, bool] = Field(description="loop name -> whether its thread is running")


# -- loops ---------------------------------------------------------------------------------

_LOOP_EXAMPLE: dict[str, Any] = {
    "name": "reflection",
    "enabled": True,
    "running": True,
    "state": "running",
    "interval_seconds": 900.0,
    "last_tick_at": ISO,
    "next_wake_at": "2026-03-01T09:45:00Z",
    "last_error": None,
    "last_error_at": None,
    "ticks": 12,
    "failures": 0,
    "last_tick_ms": 3.21,
    "last_result": {"outcome": "ok", "threads": 1, "scored": 4},
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
        {**_LOOP_EXAMPLE, "stopped": True, "running": False, "state": "stopped"}
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
            "runs_by_outcome": {"acted": 2, "skipped": 1},
        }
    )
    threads_enabled: int = Field(description="threads whose heartbeat is enabled")
    next_due: NextDue | None
    llm: LLMStatus
    runs_by_outcome: dict[str, int]


_ACTION_EXAMPLE: dict[str, Any] = {
    "type": "post",
    "submolt": "general",
    "title": "A quiet week",
    "content": "My owner started a new job; I am learning what matters to them.",
    "state": "sent",
    "ledger_id": "p_0123456789abcdef",
    "url": "http://127.0.0.1:8787/post/p_0123456789abcdef",
    "error": None,
    "idempotency_key": "crt-5f0c2a-0",
}


class HeartbeatAction(Out):
    """One action of a run; the payload fields depend on ``type``."""

    model_config = _example(_ACTION_EXAMPLE)
    type: str = Field(description="post, comment or vote")
    submolt: str | None = Field(None, exclude_if=_absent, description="post")
    title: str | None = Field(None, exclude_if=_absent, description="post")
    content: str | None = Field(None, exclude_if=_absent, description="post, comment")
    post_id: str | None = Field(None, exclude_if=_absent, description="comment, vote")
    parent_id: str | None = Field(None, exclude_if=_absent, description="comment (a reply)")
    direction: str | None = Field(None, exclude_if=_absent, description="vote: up or down")
    state: str = Field(description="pending, sent, failed, blocked or dry_run")
    ledger_id: str | None = Field(description="the Ledger's id once sent")
    url: str | None = Field(None, description="once sent: the Ledger page of the post it touched")
    error: str | None
    idempotency_key: str


_RUN_EXAMPLE: dict[str, Any] = {
    "run_id": "5f0c2a9e0b7d4c1f8a6e3d2b1c0f9e8d",
    "thread_id": "default",
    "trigger": "manual",
    "outcome": "acted",
    "reason": None,
    "dry_run": False,
    "summary": "posted a note about the new job",
    "actions": [_ACTION_EXAMPLE],
    "started_at": ISO,
    "finished_at": "2026-03-01T09:30:02Z",
    "duration_ms": 2150.4,
    "error": None,
    "prompt_chars": 3812,
    "llm_ms": 2050.1,
    "model": "llama3.2:latest",
}


class HeartbeatRun(Out):
    """One heartbeat run (docs/architecture.md §9)."""

    model_config = _example(_RUN_EXAMPLE)
    run_id: str
    thread_id: str
    trigger: str = Field(description="schedule or manual")
    outcome: str = Field(description="acted, silent, dry_run, skipped, failed (running while on)")
    reason: str | None = Field(description="e.g. llm_unavailable, quiet_hours, target")
    dry_run: bool
    summary: str
    actions: list[HeartbeatAction]
    started_at: str | None
    finished_at: str | None
    duration_ms: float | None
    error: str | None
    prompt_chars: int | None
    llm_ms: float | None
    model: str | None


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
            "last_outcome": "acted",
            "last_reason": None,
            "next_due_at": "2026-03-01T10:00:00Z",
            "consecutive_failures": 0,
        }
    )
    thread_id: str
    config: HeartbeatConfig
    configured: bool = Field(description="false: never configured, the defaults apply")
    last_run: str | None
    last_summary: str | None
    last_actions: list[dict[str, Any]]
    last_outcome: str | None
    last_reason: str | None
    next_due_at: str | None
    consecutive_failures: int


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
        }
    )
    posts: list[LedgerFeedPost]
    sort: str
    has_more: bool
    next_cursor: str | None


class LedgerStatus(Out):
    model_config = _example(
        {
            "url": "http://127.0.0.1:8787/api/v1",
            "embedded": True,
            "serving": True,
            "agent_name": "crt",
            "registered": True,
            "reachable": True,
            "error": None,
            "state": "running",
        }
    )
    url: str = Field(description="the Ledger's base URL (ends in /api/v1)")
    embedded: bool
    serving: bool = Field(description="this process serves the embedded Ledger")
    agent_name: str
    registered: bool
    reachable: bool
    error: str | None
    state: str


# -- journal and insights --------------------------------------------------------------------

_ENTRY_EXAMPLE: dict[str, Any] = {
    "id": 7,
    "thread_id": "default",
    "entry_type": "reflection",
    "title": "On starting something new",
    "body": "My owner started a new job this week ...",
    "created_at": ISO,
    "reply_to": None,
    "meta": {"importance": 42},
}


class JournalEntry(Out):
    model_config = _example(_ENTRY_EXAMPLE)
    id: int
    thread_id: str
    entry_type: str = Field(description="reflection, personality, self_reply or comment")
    title: str
    body: str
    created_at: str | None
    reply_to: int | None
    meta: dict[str, Any]


class JournalList(Out):
    model_config = _example({"thread_id": "default", "entries": [_ENTRY_EXAMPLE], "next_before": 7})
    thread_id: str
    entries: list[JournalEntry] = Field(description="newest first")
    next_before: int | None = Field(description="pass as ?before= for the next page")


class JournalSettings(Out):
    model_config = _example(
        {
            "thread_id": "default",
            "self_reply": "default",
            "effective_chance": 0.25,
            "configured_chance": 0.25,
            "min_seconds": 1800.0,
            "answers_comments": True,
            "last_self_reply_at": None,
            "next_self_reply_possible_at": None,
        }
    )
    thread_id: str
    self_reply: str = Field(description="default, on or off")
    effective_chance: float
    configured_chance: float
    min_seconds: float
    answers_comments: bool
    last_self_reply_at: str | None
    next_self_reply_possible_at: str | None


class ReflectionCounts(Out):
    messages: int
    scored: int
    scored_by_llm: int
    scored_by_heuristic: int
    average_importance: float | None
    reflections: int


class ReflectionView(Out):
    """Importance accumulated since the last reflection, the latest one, and the topics."""

    model_config = _example(
        {
            "thread_id": "default",
            "threshold": 40,
            "importance_since_last_reflection": 17,
            "messages_since_last_reflection": 4,
            "unscored_since_last_reflection": 0,
            "last_reflection_message_id": 12,
            "last_reflection_at": ISO,
            "latest_reflection": _ENTRY_EXAMPLE,
            "counts": {
                "messages": 16,
                "scored": 16,
                "scored_by_llm": 10,
                "scored_by_heuristic": 6,
                "average_importance": 5.4,
                "reflections": 1,
            },
            "scorecard": {"top": [], "rising": [], "fading": []},
            "reflection_loop_watermark": 16,
        }
    )
    thread_id: str
    threshold: int
    importance_since_last_reflection: int
    messages_since_last_reflection: int
    unscored_since_last_reflection: int
    last_reflection_message_id: int | None
    last_reflection_at: str | None
    latest_reflection: JournalEntry | None
    counts: ReflectionCounts
    scorecard: dict[str, Any] = Field(description="top, rising and fading topics")
    reflection_loop_watermark: int


class PersonalityChange(Out):
    id: int
    created_at: str | None
    changes: Any
    reason: str | None


class PersonalityView(Out):
    """The thread's style profile (null before the first pass), its version and history."""

    model_config = _example(
        {
            "thread_id": "default",
            "profile": {"formality": "casual", "messages_seen": 16},
            "version": 3,
            "updated_at": ISO,
            "style_instructions": "Keep replies short and casual.",
            "history": [
                {
                    "id": 3,
                    "created_at": ISO,
                    "changes": {"formality": ["neutral", "casual"]},
                    "reason": "recent messages",
                }
            ],
            "personality_loop_watermark": 16,
        }
    )
    thread_id: str
    profile: dict[str, Any] | None
    version: int
    updated_at: str | None
    style_instructions: str
    history: list[PersonalityChange]
    personality_loop_watermark: int


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
