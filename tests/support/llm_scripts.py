"""Scripted fake-Ollama responders for the thinking loops' schemas.

Each responder reads the request the way a model would (the prompt's ``[id N] role: text`` lines,
``Write your reply to entry N``) and answers valid JSON for its schema, so tests exercise the real
prompt -> structured output -> validation path. ``install_thinking_routes`` installs all four on a
:class:`FakeOllama` by schema title.
"""

from __future__ import annotations

import json
import re
from typing import Any

from support.fake_ollama import FakeOllama

MESSAGE_LINE = re.compile(r"^\[id (\d+)\](?: \(importance \d+\))? (user|assistant): (.*)$", re.M)
REPLY_TO = re.compile(r"Write your reply to entry (\d+)\.")

#: What the scripted scorer gives: the person's messages matter more than the agent's.
USER_IMPORTANCE = 6
ASSISTANT_IMPORTANCE = 3


def prompt_text(request: dict[str, Any]) -> str:
    return "\n".join(str(m.get("content", "")) for m in request.get("messages", []))


def prompt_messages(request: dict[str, Any]) -> list[tuple[int, str, str]]:
    """(id, role, text) of every message line in the prompt, in order."""
    return [(int(i), role, text) for i, role, text in MESSAGE_LINE.findall(prompt_text(request))]


def score_every_message(request: dict[str, Any]) -> str:
    """ImportanceScores: one score per message id shown."""
    scores = [
        {
            "id": mid,
            "importance": USER_IMPORTANCE if role == "user" else ASSISTANT_IMPORTANCE,
            "reason": f"scripted score for a {role} message",
        }
        for mid, role, _ in prompt_messages(request)
    ]
    return json.dumps({"scores": scores})


def insights_citing_messages(request: dict[str, Any]) -> str:
    """ReflectionInsights: two insights citing ids that were shown."""
    ids = [mid for mid, _, _ in prompt_messages(request)]
    return json.dumps(
        {
            "title": "What keeps coming back",
            "insights": [
                {
                    "text": "I notice the person keeps returning to the same worry.",
                    "evidence": ids[:2],
                },
                {"text": "I should follow up on the most recent point.", "evidence": ids[-1:]},
            ],
        }
    )


def neutral_personality(request: dict[str, Any]) -> str:
    """PersonalityUpdate: no opinion on anything (the heuristics decide)."""
    return json.dumps({"reason": "nothing conclusive", "interests": []})


def journal_reply(request: dict[str, Any]) -> str:
    """JournalReply: a short first-person follow-up naming the entry it answers."""
    match = REPLY_TO.search(prompt_text(request))
    target = match.group(1) if match else "?"
    return json.dumps({"reply": f"Thinking again about entry {target}, I see it differently now."})


def install_thinking_routes(fake: FakeOllama) -> None:
    """Route ImportanceScores, ReflectionInsights, PersonalityUpdate and JournalReply."""
    fake.route("ImportanceScores", score_every_message)
    fake.route("ReflectionInsights", insights_citing_messages)
    fake.route("PersonalityUpdate", neutral_personality)
    fake.route("JournalReply", journal_reply)
