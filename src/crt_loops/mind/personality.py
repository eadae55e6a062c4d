"""Each thread's style profile: how the person likes replies, kept current and explained.

Dimensions (labels are what chat follows, through :func:`style_instructions`):

- ``verbosity`` brief | balanced | detailed, ``formality`` casual | neutral | formal,
  ``emoji`` none | some | lots: a score in [0, 1] smoothed by an exponential moving average,
  mapped to a label with hysteresis (a label changes only once the score is 0.05 past the cut,
  so a score hovering at a boundary does not flap);
- ``formatting`` auto | plain | bullets | markdown | code and ``tone`` neutral | warm | playful
  | direct: categorical, from votes that decay; a value switches only once one category's
  evidence reaches 0.6 and beats the current one (two explicit requests, or three consistent
  observations);
- ``interests``: keywords the person keeps coming back to (decaying weights, hysteresis on the set).

Evidence comes from the person's messages only (the agent's replies say nothing about the
person), read by :mod:`personality_signals`: what they ask for ("be brief", "tl;dr", "no emoji")
weighs most, how they write less, and long messages or why/how questions only hint. One message
therefore never flips a label; two explicit requests, or steady writing, do.

The heuristic path is complete on its own. When the LLM is available one ``PersonalityUpdate``
call per thread per pass adds its reading as one more weak observation (weight 0.1 / vote 0.2),
validated by pydantic (labels from the fixed sets only) and, for interests, only words that occur
in the messages shown: the model nudges, it never decides.

Every label or interest change bumps the profile's version, adds a ``personality_history`` row
(``changes``: field, old, new; ``reason``: the evidence) and one ``personality`` journal entry.
Nothing changed: the profile's scores are saved, no history, no entry.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from crt_loops.core.clock import Clock, iso
from crt_loops.db import personality as personality_db
from crt_loops.db.session import MessageRow, SessionDB
from crt_loops.llm.client import LLM, ChatMessage
from crt_loops.loops.passes import (
    Candidate,
    LLMGate,
    PassResult,
    WatermarkedService,
    detail_level,
)
from crt_loops.mind.signals import Signal, observe
from crt_loops.mind.topics import keywords, top_keys, word_set

logger = logging.getLogger(__name__)

LOOP = "personality"
LOG_PREFIX = "[PERSONALITY_LOOP]"
NUMERIC: dict[str, tuple[tuple[str, str, str], tuple[float, float], float]] = {
    "verbosity": (("brief", "balanced", "detailed"), (0.35, 0.65), 0.5),
    "formality": (("casual", "neutral", "formal"), (0.35, 0.65), 0.5),
    "emoji": (("none", "some", "lots"), (0.15, 0.55), 0.0),
}
CATEGORICAL: dict[str, tuple[str, ...]] = {
    "formatting": ("auto", "plain", "bullets", "markdown", "code"),
    "tone": ("neutral", "warm", "playful", "direct"),
}
LLM_NUDGE, VOTE_LLM = 0.10, 0.2
SWITCH_AT, HYSTERESIS = 0.6, 0.05
INTEREST_DECAY, INTEREST_MIN, MAX_INTERESTS, MAX_TRACKED = 0.95, 1.5, 5, 30
_NOT_INTERESTS = word_set(
    "explain question answer detail brief short concise longer shorter reply response message "
    "example bullet point format markdown emoji formal casual please step code list table"
)


def default_profile() -> dict[str, Any]:
    profile: dict[str, Any] = {name: spec[0][1] for name, spec in NUMERIC.items()}
    profile["emoji"] = "none"
    profile.update({name: options[0] for name, options in CATEGORICAL.items()})
    profile.update(
        interests=[],
        scores={name: spec[2] for name, spec in NUMERIC.items()},
        votes={name: {} for name in CATEGORICAL},
        interest_weights={},
        messages_seen=0,
        last_message_id=0,
    )
    return profile


def _band(
    value: float, spec: tuple[tuple[str, str, str], tuple[float, float], float], current: str
) -> str:
    labels, (low, high), _ = spec

    def label(v: float) -> str:
        return labels[0] if v < low else labels[2] if v > high else labels[1]

    candidate = label(value)
    if candidate == current or current not in labels:
        return candidate
    # Hysteresis: the value must be HYSTERESIS past the cut, toward the new label.
    moving_up = labels.index(candidate) > labels.index(current)
    return (
        candidate
        if label(value - HYSTERESIS if moving_up else value + HYSTERESIS) == candidate
        else current
    )


def apply_signals(
    profile: dict[str, Any], signals: list[Signal], notes: dict[str, list[str]]
) -> None:
    """Fold signals into ``profile`` in place; ``notes`` collects the evidence per field."""
    for s in signals:
        if s.field in NUMERIC and isinstance(s.value, float):
            old = float(profile["scores"][s.field])
            profile["scores"][s.field] = round(old + s.weight * (s.value - old), 4)
        elif s.field in CATEGORICAL and isinstance(s.value, str):
            votes = {k: v * (1 - s.weight) for k, v in profile["votes"][s.field].items()}
            votes[s.value] = votes.get(s.value, 0.0) + s.weight
            profile["votes"][s.field] = {k: round(v, 4) for k, v in votes.items() if v >= 0.01}
        else:
            continue
        notes.setdefault(s.field, []).append(s.why)
    for name, spec in NUMERIC.items():
        profile[name] = _band(float(profile["scores"][name]), spec, str(profile[name]))
    for name in CATEGORICAL:
        votes = profile["votes"][name]
        if votes:
            best = max(sorted(votes), key=votes.__getitem__)
            current = votes.get(profile[name], 0.0)
            if best != profile[name] and votes[best] >= SWITCH_AT and votes[best] > current + 0.1:
                profile[name] = best


def _update_interests(profile: dict[str, Any], texts: list[str]) -> None:
    weights: dict[str, float] = dict(profile["interest_weights"])
    for text in texts:
        weights = {k: v * INTEREST_DECAY for k, v in weights.items()}
        for word in keywords(text):
            if word not in _NOT_INTERESTS:
                weights[word] = weights.get(word, 0.0) + 1.0
    ranked = top_keys(weights, MAX_TRACKED)  # sorted by (-weight, word), the first MAX_TRACKED
    profile["interest_weights"] = {k: round(weights[k], 3) for k in ranked}
    keep = [
        k
        for k in profile["interests"]
        if weights.get(k, 0.0) >= INTEREST_MIN / 2 and k in ranked[: 2 * MAX_INTERESTS]
    ]
    for k in ranked:
        if len(keep) >= MAX_INTERESTS:
            break
        if k not in keep and weights[k] >= INTEREST_MIN:
            keep.append(k)
    profile["interests"] = sorted(keep, key=lambda k: (-weights.get(k, 0.0), k))


class PersonalityUpdate(BaseModel):
    """The LLM's reading of the person's style (a nudge; every field may be null).

    Bounds are in the JSON schema only, to steer a grammar-constrained model to finish.
    """

    model_config = ConfigDict(json_schema_extra={"additionalProperties": False})

    verbosity: Literal["brief", "balanced", "detailed"] | None = None
    formality: Literal["casual", "neutral", "formal"] | None = None
    emoji: Literal["none", "some", "lots"] | None = None
    formatting: Literal["plain", "bullets", "markdown", "code"] | None = None
    tone: Literal["neutral", "warm", "playful", "direct"] | None = None
    interests: list[str] = Field(
        default_factory=list,
        max_length=10,
        json_schema_extra={"maxItems": 10, "items": {"type": "string", "maxLength": 30}},
    )
    reason: str = Field("", json_schema_extra={"maxLength": 120})


_CENTRES = {0: 0.15, 1: 0.5, 2: 0.85}


def llm_signals(update: PersonalityUpdate) -> list[Signal]:
    why = "model's reading" + (f": {update.reason.strip()[:80]}" if update.reason.strip() else "")
    out = []
    for name, spec in NUMERIC.items():
        value = getattr(update, name)
        if value is not None:
            out.append(Signal(name, _CENTRES[spec[0].index(value)], LLM_NUDGE, why))
    for name in CATEGORICAL:
        value = getattr(update, name)
        if value is not None:
            out.append(Signal(name, value, VOTE_LLM, why))
    return out


class PersonalityService(WatermarkedService):
    """Keeps each thread's profile current from its new messages."""

    loop = LOOP
    log_prefix = LOG_PREFIX
    table = "messages"
    fallback = "heuristics alone"

    def __init__(self, db: SessionDB, llm: LLM, *, window: int, clock: Clock) -> None:
        if window < 1:
            raise ValueError(f"window must be >= 1, got {window}")
        self.db = db
        self.llm = llm
        self.window = window
        self.clock = clock

    def process(self, cand: Candidate, gate: LLMGate, result: PassResult) -> bool:
        mine = self.db.messages_in_range(cand.thread_id, cand.watermark, cand.max_id, role="user")
        if not mine:  # only the agent spoke: nothing to learn about the person
            self.db.set_thread_watermark(LOOP, cand.thread_id, cand.max_id)
            return True
        stored = personality_db.stored_profile(self.db, cand.thread_id)
        before = stored.profile if stored else default_profile()
        version = stored.version if stored else 0
        profile = json.loads(json.dumps(before))
        notes: dict[str, list[str]] = {}
        for message in mine:
            apply_signals(profile, observe(message), notes)
        texts = [m.content for m in mine]
        _update_interests(profile, texts)
        source = "heuristic"
        if gate.usable():
            shown = mine[-self.window :]
            answered = gate.chat(
                self._prompt(profile, shown), PersonalityUpdate, temperature=0.1, max_tokens=300
            )
            if answered is not None:
                shown_text = "\n".join(m.content for m in shown)
                apply_signals(profile, llm_signals(answered[0]), notes)
                self._nudge_interests(profile, answered[0], shown_text)
                source = "heuristic+llm"
        profile["messages_seen"] = int(profile["messages_seen"]) + len(mine)
        profile["last_message_id"] = cand.max_id
        changes = _changes(before, profile)
        result.messages_processed += len(mine)
        return self._save(
            cand=cand,
            profile=profile,
            version=version,
            changes=changes,
            notes=notes,
            source=source,
            result=result,
        )

    def _nudge_interests(
        self, profile: dict[str, Any], update: PersonalityUpdate, shown: str
    ) -> None:
        present = set(keywords(shown))
        weights = profile["interest_weights"]
        for raw in update.interests:
            word = raw.strip().lower()
            if word in present and word not in _NOT_INTERESTS:  # only what the person said
                weights[word] = round(weights.get(word, 0.0) + 0.5, 3)
        _update_interests(profile, [])

    def _save(
        self,
        *,
        cand: Candidate,
        profile: dict[str, Any],
        version: int,
        changes: list[dict[str, Any]],
        notes: dict[str, list[str]],
        source: str,
        result: PassResult,
    ) -> bool:
        now = self.clock()
        new_version = version + 1 if (changes or version == 0) else version
        reason = "; ".join(
            f"{c['field']}: " + (", ".join(notes.get(c["field"], [])[-3:]) or "recurring mentions")
            for c in changes
        )
        change = None
        if changes:
            change = personality_db.ProfileChange(
                changes=changes,
                reason=reason,
                public_profile=public_profile(profile),
                title="How I talk in this thread",
                body=_entry_body(changes, notes),
                meta={"changes": changes, "version": new_version, "source": source},
            )
        saved = personality_db.save_profile(
            self.db,
            loop=LOOP,
            thread_id=cand.thread_id,
            up_to_id=cand.max_id,
            expected_version=version,
            profile=profile,
            version=new_version,
            now=now,
            change=change,
        )
        if not saved:
            return False  # updated meanwhile (a manual run): redo from the new state next pass
        if changes:
            result.entries_written += 1
        level = detail_level(result)
        if changes and logger.isEnabledFor(level):
            logger.log(
                level,
                "%s thread %s: profile v%d: %s",
                LOG_PREFIX,
                cand.thread_id,
                new_version,
                ", ".join(f"{c['field']} {c['old']} -> {c['new']}" for c in changes),
            )
        return True

    def _prompt(self, profile: Mapping[str, Any], shown: list[MessageRow]) -> list[ChatMessage]:
        labels = {k: profile[k] for k in (*NUMERIC, *CATEGORICAL)}
        system = (
            "You study how a person likes an AI assistant to reply. From their messages, give "
            "your reading of each style field, or null when the messages do not show it: "
            "verbosity (brief|balanced|detailed), formality (casual|neutral|formal), emoji "
            "(none|some|lots), formatting (plain|bullets|markdown|code), tone "
            "(neutral|warm|playful|direct), interests (up to 5 single words the person cares "
            "about, taken from their messages), and a one-sentence reason. Answer only with JSON."
        )
        user = (
            f"Current profile: {json.dumps(labels)}\n\nThe person's recent messages:\n"
            + "\n".join(f"[id {m.id}] user: {' '.join(m.content.split())[:500]}" for m in shown)
        )
        return [ChatMessage("system", system), ChatMessage("user", user)]


def _changes(before: Mapping[str, Any], after: Mapping[str, Any]) -> list[dict[str, Any]]:
    changes = [
        {"field": name, "old": before.get(name), "new": after[name]}
        for name in (*NUMERIC, *CATEGORICAL)
        if before.get(name) != after[name]
    ]
    if set(before.get("interests", [])) != set(after["interests"]):
        changes.append(
            {
                "field": "interests",
                "old": list(before.get("interests", [])),
                "new": list(after["interests"]),
            }
        )
    return changes


def _entry_body(changes: list[dict[str, Any]], notes: dict[str, list[str]]) -> str:
    lines = ["I adjusted how I talk in this thread:"]
    for c in changes:
        if c["field"] == "interests":
            lines.append("- interests now: " + (", ".join(c["new"]) or "none in particular"))
        else:
            why = "; ".join(notes.get(c["field"], [])[-3:])
            lines.append(f"- {c['field']}: {c['old']} → {c['new']}" + (f" ({why})" if why else ""))
    return "\n".join(lines)


def public_profile(profile: Mapping[str, Any]) -> dict[str, Any]:
    """The profile as the API shows it: labels, scores, evidence, interests."""
    return {
        **{k: profile.get(k) for k in (*NUMERIC, *CATEGORICAL)},
        "interests": list(profile.get("interests", [])),
        "scores": {k: round(float(v), 3) for k, v in dict(profile.get("scores", {})).items()},
        "votes": {
            k: {c: round(float(s), 3) for c, s in dict(v).items()}
            for k, v in dict(profile.get("votes", {})).items()
        },
        "messages_seen": int(profile.get("messages_seen", 0)),
    }


def get_profile(db: SessionDB, thread_id: str) -> dict[str, Any] | None:
    """The thread's stored profile, or None before the first pass saw a message of the person."""
    stored = personality_db.stored_profile(db, thread_id)
    return stored.profile if stored else None


_STYLE = {
    ("verbosity", "brief"): "Keep replies short and to the point: a few sentences, no preamble.",
    ("verbosity", "detailed"): "Give thorough, detailed answers that explain the reasoning, "
    "with examples where useful.",
    ("formality", "casual"): "Write casually, like a friend; contractions and plain words.",
    ("formality", "formal"): "Use a formal, professional register; no slang.",
    ("emoji", "none"): "Do not use emoji.",
    ("emoji", "some"): "An occasional emoji is fine.",
    ("emoji", "lots"): "Use emoji freely, as the person does.",
    ("formatting", "plain"): "Write plain text: no Markdown, headings or bullet lists.",
    ("formatting", "bullets"): "Structure answers with several points as bullet lists.",
    ("formatting", "markdown"): "Use Markdown (headings, bold, tables) where it helps.",
    ("formatting", "code"): "Lead with code in fenced code blocks and keep the prose short.",
    ("tone", "warm"): "Be warm and encouraging.",
    ("tone", "playful"): "A light, playful tone with a little humour is welcome.",
    ("tone", "direct"): "Be direct: skip pleasantries and get to the point.",
}


def style_instructions(profile: Mapping[str, Any] | None) -> str:
    """The system-prompt sentences that make chat replies follow the profile ("" if none)."""
    if not profile:
        return ""
    parts = [
        _STYLE[(name, str(profile.get(name)))]
        for name in (*NUMERIC, *CATEGORICAL)
        if (name, str(profile.get(name))) in _STYLE
    ]
    interests = [str(i) for i in profile.get("interests", [])][:MAX_INTERESTS]
    if interests:
        parts.append(
            "The person is interested in " + ", ".join(interests) + "; refer to these "
            "when relevant."
        )
    return " ".join(parts)


def personality_view(db: SessionDB, thread_id: str, *, history: int = 10) -> dict[str, Any]:
    """Everything ``GET /api/threads/{id}/personality`` shows; raises ThreadNotFound."""
    db.require_thread(thread_id)
    stored = personality_db.stored_profile(db, thread_id)
    profile = stored.profile if stored else None
    changes = personality_db.history(db, thread_id, limit=history)
    return {
        "thread_id": thread_id,
        "profile": public_profile(profile) if profile else None,
        "version": stored.version if stored else 0,
        "updated_at": iso(stored.updated_at) if stored else None,
        "style_instructions": style_instructions(profile),
        "history": [
            {"id": h.id, "created_at": iso(h.created_at), "changes": h.changes, "reason": h.reason}
            for h in changes
        ],
        "personality_loop_watermark": db.thread_watermark(LOOP, thread_id),
    }
