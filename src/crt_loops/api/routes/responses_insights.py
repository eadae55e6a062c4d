"""Response models of the journal and insight routes (see ``responses`` for the rules)."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from crt_loops.api.routes.base_models import ISO, Out, _example

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
