"""Importance scoring of new messages, the topic scorecard, and reflection entries.

Scoring (each pass, per thread with new messages): every new message gets an importance 1-10
and a short reason. With the LLM, ONE structured call per thread per pass (``ImportanceScores``)
scores the newest ``window`` unscored messages on an anchored scale (1 mundane small talk ...
10 life-changing news, as in Generative Agents). Messages beyond that batch (a thread that
received more than ``window`` messages since the last pass, e.g. an import) are scored by the
heuristic in the same pass: every message is scored each pass, and LLM cost per thread per pass
stays bounded. Scores the model gives out of range, for ids not in the batch, or not at all, are
replaced by the heuristic's; ``scored_by`` always says which produced the stored value.

The heuristic (used when the LLM is off, unreachable, failing, or for the overflow) combines:

- a base of 1.5;
- life events by category (career, relationships, health, loss, moving, milestones, money):
  +3 for the first category, +1 for each further one;
- emotions: +2.5 for an intense one (devastated, terrified, thrilled, ...), +1.5 for others,
  +0.5 for a second distinct emotion;
- personal stakes: +1 when the message is in the first person AND has a life event or emotion,
  and +0.5 more when it has both (a compound of features, not a keyword count);
- decisions and plans +1.5, urgency +1.5, asking for advice +1, a question +0.5;
- length: +0.5 * log2(1 + words / 8), at most +2;
- intensity: +0.3 per "!" and per shouted word (at most 2 each), +0.3 for intensifiers;
- small talk (only greetings, thanks, acknowledgements) is 1 whatever else;
- the agent's own messages are compressed toward 1 (1 + 0.6 * (score - 1)): the person's life
  is what the journal remembers.

The total is rounded and clamped to 1-10; the reason names the strongest features.

Reflection: when the importance summed since the thread's last reflection
(``reflection_state.last_reflection_message_id``) reaches ``threshold``, ONE ``reflection``
journal entry is written. With the LLM (``ReflectionInsights``): 2-4 first-person insights over
the ``window`` most important messages since the last reflection, each citing the message ids it
rests on; cited ids that are not among those messages are dropped, and an insight left without
evidence is dropped. Without the LLM (or when nothing valid survives): a heuristic summary of the
most important messages and recurring topics. Either way ``meta`` holds
``{"insights": [{"text", "evidence": [ids]}], "source": "llm" | "heuristic", ...}``.

Topic scorecard (``reflection_view``): noun-ish keywords of the last 200 messages (words of 3+
letters minus a stop list, plurals folded), each weighted by its message's importance (the
agent's messages count half); top = highest total weight, rising/fading = the largest gain/loss of
share between the older and the newer half.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Sequence
from operator import attrgetter, itemgetter
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from crt_loops.core.clock import Clock, iso
from crt_loops.db import reflection as reflection_db
from crt_loops.db.journal import JournalEntry, latest_entry
from crt_loops.db.session import MessageRow, SessionDB
from crt_loops.llm.client import LLM, ChatMessage
from crt_loops.loops.passes import (
    Candidate,
    LLMGate,
    PassResult,
    WatermarkedService,
    detail_level,
)
from crt_loops.mind.patterns import Folded, FoldedPattern, PatternSet
from crt_loops.mind.topics import lowered_words, top_topics, topic_scorecard, word_set

logger = logging.getLogger(__name__)

LOOP = "reflection"
LOG_PREFIX = "[REFLECTION_LOOP]"
DEFAULT_THRESHOLD = 40
SCORECARD_SPAN = 200
MAX_REASON_CHARS = 200
MAX_INSIGHTS = 4


# -- heuristic importance ------------------------------------------------------------------


def _words(alternatives: str) -> FoldedPattern:
    """A case-insensitive whole-word regex over ``|``-separated alternatives."""
    return FoldedPattern(r"\b(?:" + alternatives + r")\b")


_LIFE_EVENTS = {
    "career": _words(
        r"(?:new|my|a|the) job|hired|fired|laid off|promot(?:ed|ion)|resign\w*|quit(?:ting)? my|"
        r"interview|career|retir(?:e|ed|ing|ement)|boss"
    ),
    "relationships": _words(
        r"married|wedding|engaged|divorc\w*|pregnan\w*|baby|broke up|breakup|girlfriend|"
        r"boyfriend|wife|husband|proposed"
    ),
    "health": _words(
        r"diagnos\w*|cancer|hospital\w*|surgery|illness|therapy|therapist|doctor|injur\w*|"
        r"accident|depression|pain"
    ),
    "loss": _words(r"died|death|passed away|funeral|lost my|miscarriage"),
    "moving": _words(r"moving|moved|relocat\w*|new (?:house|apartment|city|country)"),
    "milestone": _words(
        r"graduat\w*|degree|accepted|admitted|award|launched|bought a house|first time|"
        r"birthday|anniversary"
    ),
    "money": _words(r"debt|bankrupt\w*|mortgage|loan|salary|raise|savings"),
}
_INTENSE_EMOTION = _words(
    r"devastated|heartbroken|terrified|hopeless|panic\w*|grief|grieving|furious|ecstatic|"
    r"thrilled|suicidal|traumati\w*"
)
_EMOTION = _words(
    r"love|hate|afraid|scared|anxious|anxiety|worried|depressed|angry|ashamed|lonely|"
    r"overwhelmed|excited|happy|sad|upset|stressed|proud|cried|crying|frustrated|nervous|"
    r"relieved|guilty|jealous"
)
_DECISION = _words(
    r"decided|decision|i will|i'll|i'm going to|plan(?:ning)? to|promise|commit(?:ted)?|"
    r"deadline|goal|from now on|i chose|i've chosen"
)
_URGENCY = _words(r"urgent|asap|emergency|immediately|right now|tonight")
_ADVICE = _words(r"should i|what do you think|advice|help me|can you help|recommend\w*")
_FIRST_PERSON = _words(r"i|i'm|i've|i'd|me|my|mine|myself")
_INTENSIFIER = _words(r"very|really|so much|extremely|incredibly|totally")
_SMALL_TALK = word_set(
    "hi hello hey yo thanks thank you thx ok okay k cool nice lol haha yes no yep nope sure good "
    "morning evening night bye great np welcome alright fine"
)


_PLANS = (
    (_DECISION, 1.5, "a decision or plan"),
    (_URGENCY, 1.5, "urgency"),
    (_ADVICE, 1.0, "asks for advice"),
)
#: Every pattern _importance asks about, asked together: one scan says which match.
_SCAN = PatternSet(
    [
        *_LIFE_EVENTS.values(),
        _INTENSE_EMOTION,
        _EMOTION,
        _INTENSIFIER,
        _FIRST_PERSON,
        *(rx for rx, _, _ in _PLANS),
    ]
)
# A shouted word (3+ letters, all upper case) in ASCII text has three capitals in a row.
_THREE_CAPITALS = re.compile("[A-Z]{3}")


def heuristic_importance(content: str, role: str = "user") -> tuple[int, str]:
    """Deterministic importance 1-10 and a reason (rules in the module docstring)."""
    text = content.strip()
    lowered = text.lower()
    return _importance(text, lowered, lowered_words(lowered), role)


def _importance(text: str, lowered: str, tokens: list[str], role: str) -> tuple[int, str]:
    """heuristic_importance of the stripped ``text``, given its lower case and its words (the
    pass keeps the words for the reflection's topics)."""
    if not tokens or (len(tokens) <= 6 and all(t in _SMALL_TALK for t in tokens)):
        return 1, "small talk"
    parts: list[tuple[float, str]] = []
    ascii_text = text.isascii()
    folded = Folded(text, lowered if ascii_text else None)  # Folded.of(text)
    hits = _SCAN.matching(folded)  # which patterns match; sre finds only the words wanted
    categories = [name for name, rx in _LIFE_EVENTS.items() if rx in hits]
    if categories:
        parts.append(
            (3.0 + min(2, len(categories) - 1), "life event (" + ", ".join(categories) + ")")
        )
    intense = set(_INTENSE_EMOTION.findall(folded)) if _INTENSE_EMOTION in hits else set()
    mild = set(_EMOTION.findall(folded)) if _EMOTION in hits else set()
    if intense or mild:
        emotion = 2.5 if intense else 1.5
        if len(intense | mild) > 1:
            emotion += 0.5
        if _INTENSIFIER in hits:
            emotion += 0.3
        parts.append((emotion, "emotion (" + ", ".join(sorted(intense | mild)[:3]) + ")"))
    if (categories or intense or mild) and _FIRST_PERSON in hits:
        parts.append((1.5 if categories and (intense or mild) else 1.0, "personal stakes"))
    for rx, weight, label in _PLANS:
        if rx in hits:
            parts.append((weight, label))
    if "?" in text:
        parts.append((0.5, "a question"))
    split = text.split()
    words = len(split)
    length = min(2.0, 0.5 * math.log2(1 + words / 8))
    if length >= 1.0:
        parts.append((length, f"long message ({words} words)"))
    else:
        parts.append((length, ""))
    shouted = 0
    if not ascii_text or _THREE_CAPITALS.search(text):
        shouted = sum(1 for w in split if len(w) >= 3 and w.isalpha() and w.isupper())
    intensity = 0.3 * min(2, text.count("!")) + 0.3 * min(2, shouted)
    if intensity:
        parts.append((intensity, "emphatic"))
    raw = 1.5 + sum([weight for weight, _ in parts])
    if role == "assistant":
        raw = 1 + 0.6 * (raw - 1)
    score = max(1, min(10, round(raw)))
    # Heaviest first, ties in the order added (reverse=True keeps a sort stable).
    named = [label for _, label in sorted(parts, key=itemgetter(0), reverse=True) if label][:3]
    reason = ", ".join(named) or "routine message"
    if role == "assistant":
        reason = "agent's reply: " + reason
    return score, reason[:MAX_REASON_CHARS]


# -- LLM schemas ---------------------------------------------------------------------------


# Bounds live in the JSON schema (json_schema_extra) rather than in validation: they steer a
# grammar-constrained model to finish, while a longer reason from a free-running model is still
# read (and trimmed) instead of costing the whole batch its scores.
_CLOSED = ConfigDict(json_schema_extra={"additionalProperties": False})
SCORE_REASON_MAX = 60


class MessageScore(BaseModel):
    model_config = _CLOSED
    id: int = Field(description="the message id, as given")
    importance: int = Field(
        description="1 (mundane) to 10 (life-changing)",
        json_schema_extra={"minimum": 1, "maximum": 10},
    )
    reason: str = Field(
        description="why, in at most 12 words", json_schema_extra={"maxLength": SCORE_REASON_MAX}
    )


class ImportanceScores(BaseModel):
    """The LLM's importance scores for one batch of messages."""

    model_config = _CLOSED
    scores: list[MessageScore]


def scores_schema(ids: list[int]) -> dict[str, Any]:
    """The scoring schema for one batch: exactly one entry per message, in order.

    ``prefixItems`` would say it too, but not every server's grammar has it; a fixed-length
    array whose ``id`` is an enum of the batch's ids lets a small model neither skip a message
    nor invent one (SmolLM2-135M scored 0% of messages with the open schema: its unbounded
    ``reason`` ran into the token limit).
    """
    schema = ImportanceScores.model_json_schema()
    item = schema["$defs"]["MessageScore"]
    item["properties"]["id"] = {"type": "integer", "enum": ids}
    schema["properties"]["scores"].update(minItems=len(ids), maxItems=len(ids))
    return schema


class Insight(BaseModel):
    model_config = _CLOSED
    text: str = Field(description="one first-person insight", json_schema_extra={"maxLength": 240})
    evidence: list[int] = Field(
        description="ids of the messages it rests on", json_schema_extra={"maxItems": 5}
    )


class ReflectionInsights(BaseModel):
    """The LLM's reflection: a title and 2-4 insights citing message ids."""

    model_config = _CLOSED
    title: str = Field("", json_schema_extra={"maxLength": 80})
    insights: list[Insight] = Field(json_schema_extra={"maxItems": 4})


_SCALE = (
    "Rate how important each message is for you to remember about this person, from 1 to 10: "
    "1 = purely mundane (greetings, small talk, thanks); 3 = an ordinary everyday detail or "
    "routine question; 5 = notable (a plan, a strong opinion, a problem being worked on); "
    "7 = significant (a decision, strong emotion, trouble at work or with health); "
    "10 = life-changing news (a birth, a death, a diagnosis, a marriage, losing a job)."
)


def _render(messages: Sequence[MessageRow], *, with_importance: bool = False) -> str:
    lines = []
    for m in messages:
        score = f" (importance {m.importance})" if with_importance and m.importance else ""
        lines.append(f"[id {m.id}]{score} {m.role}: {' '.join(m.content.split())[:600]}")
    return "\n".join(lines)


# -- the service ---------------------------------------------------------------------------


class ReflectionService(WatermarkedService):
    """Scores new messages and writes a reflection entry once enough importance accumulated."""

    loop = LOOP
    log_prefix = LOG_PREFIX
    table = "messages"
    fallback = "heuristic"

    def __init__(
        self, db: SessionDB, llm: LLM, *, window: int, threshold: int, clock: Clock
    ) -> None:
        if window < 1 or threshold < 1:
            raise ValueError(f"window and threshold must be >= 1, got {window}, {threshold}")
        self.db = db
        self.llm = llm
        self.window = window
        self.threshold = threshold
        self.clock = clock

    def process(self, cand: Candidate, gate: LLMGate, result: PassResult) -> bool:
        new = self.db.messages_in_range(cand.thread_id, cand.watermark, cand.max_id)
        if not new:
            return True
        words: dict[int, list[str]] = {}  # the heuristic's words of each message, for topics
        scores = self._score([m for m in new if m.importance is None], gate, result, words)
        last_id, earlier = reflection_db.since_last_reflection(
            self.db, cand.thread_id, up_to_id=cand.max_id, read_from=cand.watermark
        )
        # None: every message since the last reflection is in `new`, to be summed (and shown,
        # should a reflection be due) from the rows read above.
        all_read = earlier is None
        if earlier is None:
            earlier = sum(m.importance for m in new if m.id > last_id and m.importance is not None)
        total = earlier + sum(s[0] for mid, s in scores.items() if mid > last_id)
        due = total >= self.threshold
        # Not due: the thread is done up to max_id. Due: _reflect moves the watermark with the
        # reflection it writes.
        reflection_db.save_scores(
            self.db,
            scores,
            loop=LOOP,
            thread_id=cand.thread_id,
            done_up_to=None if due else cand.max_id,
        )
        result.messages_processed += len(new)
        if due:
            shown = None
            if all_read:
                # Each message since the last reflection now has the score it had or the one
                # just saved: the rows most_important would return.
                shown = _most_important(new, scores, after_id=last_id, limit=self.window)
            self._reflect(cand, last_id, total, gate, result, words=words, shown=shown)
        return True

    def _score(
        self,
        messages: list[MessageRow],
        gate: LLMGate,
        result: PassResult,
        words: dict[int, list[str]],
    ) -> dict[int, tuple[int, str, str]]:
        scores: dict[int, tuple[int, str, str]] = {}
        batch = messages[-self.window :]
        if batch and gate.usable():
            prompt = [
                ChatMessage(
                    "system",
                    _SCALE + " Answer only with JSON: "
                    '{"scores": [{"id": <id>, "importance": <1-10>, "reason": "<short>"}]}, '
                    "one entry for every message id given.",
                ),
                ChatMessage("user", "Messages, oldest first:\n" + _render(batch)),
            ]
            answered = gate.chat(
                prompt,
                ImportanceScores,
                temperature=0.1,
                max_tokens=200 + 60 * len(batch),
                schema=scores_schema([m.id for m in batch]),
            )
            if answered is not None:
                valid = {m.id for m in batch}
                for s in answered[0].scores:
                    # Never trust the model: unknown ids, repeats and off-scale values are dropped.
                    if s.id in valid and s.id not in scores and 1 <= s.importance <= 10:
                        reason = " ".join(s.reason.split())[:MAX_REASON_CHARS] or "model's score"
                        scores[s.id] = (s.importance, reason, "llm")
                if len(scores) < len(batch):
                    logger.info(
                        "%s the model scored %d of %d messages; the heuristic scores the rest",
                        LOG_PREFIX,
                        len(scores),
                        len(batch),
                    )
        for m in messages:
            if m.id not in scores:
                text = m.content.strip()
                lowered = text.lower()
                words[m.id] = lowered_words(lowered)
                scores[m.id] = (*_importance(text, lowered, words[m.id], m.role), "heuristic")
                result.fallbacks += 1
        return scores

    def _reflect(
        self,
        cand: Candidate,
        last_id: int,
        total: int,
        gate: LLMGate,
        result: PassResult,
        *,
        words: dict[int, list[str]],
        shown: list[MessageRow] | None,
    ) -> None:
        """Write the reflection over ``shown``, the most important messages since the last
        reflection (read from the database when None)."""
        if shown is None:
            shown = reflection_db.most_important(
                self.db, cand.thread_id, after_id=last_id, up_to_id=cand.max_id, limit=self.window
            )
        topics = top_topics(shown, limit=5, words=words)
        meta: dict[str, Any] = {
            "importance_sum": total,
            "threshold": self.threshold,
            "message_range": [last_id + 1, cand.max_id],
            "topics": topics,
        }
        title, insights = "", []
        if shown and gate.usable():
            answered = gate.chat(
                self._insight_prompt(shown), ReflectionInsights, temperature=0.3, max_tokens=900
            )
            if answered is not None:
                insights = _valid_insights(answered[0], {m.id for m in shown})
                title = " ".join(answered[0].title.split())[:120]
                meta["model"] = answered[1].model
                if not insights:
                    gate.note_fallback("no insight of the model cited a message it was shown")
        if insights:
            meta["source"] = "llm"
            body = "\n".join(
                f"- {i['text']} (messages {', '.join('#' + str(e) for e in i['evidence'])})"
                for i in insights
            )
        else:
            meta["source"] = "heuristic"
            meta.pop("model", None)
            result.fallbacks += 1
            title = ""
            insights, body = _heuristic_reflection(shown, total, topics)
        meta["insights"] = insights
        title = title or ("Reflection on " + ", ".join(topics[:3]) if topics else "Reflection")
        written = reflection_db.add_reflection(
            self.db,
            loop=LOOP,
            thread_id=cand.thread_id,
            up_to_id=cand.max_id,
            title=title,
            body=body,
            meta=meta,
            now=self.clock(),
        )
        if written:
            result.entries_written += 1
            logger.log(
                detail_level(result),
                "%s thread %s: reflection written (importance %d >= %d, %s)",
                LOG_PREFIX,
                cand.thread_id,
                total,
                self.threshold,
                meta["source"],
            )

    def _insight_prompt(self, shown: Sequence[MessageRow]) -> list[ChatMessage]:
        system = (
            "You are a personal AI agent reflecting privately on a conversation with a person. "
            "From the messages below, write 2 to 4 high-level insights in the first person "
            "(for example 'I notice that ...', 'I should remember that ...'). Each insight must "
            "cite, in evidence, the ids of the messages it rests on; cite only ids shown. "
            'Answer only with JSON: {"title": "<short title>", "insights": '
            '[{"text": "...", "evidence": [<id>, ...]}]}.'
        )
        return [
            ChatMessage("system", system),
            ChatMessage("user", "Messages, oldest first:\n" + _render(shown, with_importance=True)),
        ]


def _most_important(
    messages: Sequence[MessageRow],
    scores: dict[int, tuple[int, str, str]],
    *,
    after_id: int,
    limit: int,
) -> list[MessageRow]:
    """:func:`crt_loops.db.reflection.most_important` over ``messages`` (all of the range),
    each unscored one with its score from ``scores``: the ``limit`` most important after
    ``after_id`` (newest first among equals), by id."""
    rows = []
    for m in messages:
        if m.id > after_id:
            score = scores.get(m.id) if m.importance is None else None
            if score is None:
                rows.append(m)
            else:
                rows.append(
                    m._replace(importance=score[0], importance_reason=score[1], scored_by=score[2])
                )
    rows.sort(key=lambda m: (m.importance or 0, m.id), reverse=True)
    return sorted(rows[:limit], key=attrgetter("id"))


def _valid_insights(reply: ReflectionInsights, valid_ids: set[int]) -> list[dict[str, Any]]:
    insights = []
    for insight in reply.insights:
        text = " ".join(insight.text.split())[:500]
        evidence = sorted({e for e in insight.evidence if e in valid_ids})
        if text and evidence:
            insights.append({"text": text, "evidence": evidence})
    return insights[:MAX_INSIGHTS]


def _heuristic_reflection(
    shown: Sequence[MessageRow], total: int, topics: list[str]
) -> tuple[list[dict[str, Any]], str]:
    ranked = sorted(shown, key=lambda m: (-(m.importance or 0), -m.id))
    # Only what mattered (4+), but never an empty summary.
    top = [m for m in ranked if (m.importance or 0) >= 4][:3] or ranked[:1]
    insights = [
        {
            "text": f"I should remember this ({m.importance_reason or 'important'}): "
            f'"{_excerpt(m.content)}"',
            "evidence": [m.id],
        }
        for m in top
    ]
    lines = [f"Since my last reflection the conversation carried importance {total}."]
    lines.append("What stood out:")
    lines += [f"- #{m.id} ({m.importance}/10): {_excerpt(m.content)}" for m in top]
    if topics:
        lines.append("Recurring topics: " + ", ".join(topics) + ".")
    return insights, "\n".join(lines)


def _excerpt(text: str, limit: int = 140) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1].rstrip() + "…"


# -- reading -------------------------------------------------------------------------------


def latest_reflection(db: SessionDB, thread_id: str) -> JournalEntry | None:
    """The thread's most recent reflection entry (for chat's system prompt)."""
    return latest_entry(db, thread_id, "reflection")


def reflection_view(
    db: SessionDB, thread_id: str, *, threshold: int = DEFAULT_THRESHOLD
) -> dict[str, Any]:
    """Everything ``GET /api/threads/{id}/reflection`` shows; raises ThreadNotFound."""
    db.require_thread(thread_id)
    state = reflection_db.state(db, thread_id)
    last_id = state.last_message_id
    stats = reflection_db.stats(db, thread_id, since_id=last_id)
    recent = db.list_messages(thread_id, limit=SCORECARD_SPAN, newest=True)
    latest = latest_reflection(db, thread_id)
    return {
        "thread_id": thread_id,
        "threshold": threshold,
        "importance_since_last_reflection": stats.importance_since,
        "messages_since_last_reflection": stats.messages_since,
        "unscored_since_last_reflection": stats.messages_since - stats.scored_since,
        "last_reflection_message_id": last_id or None,
        "last_reflection_at": iso(state.last_at),
        "latest_reflection": latest.as_dict() if latest else None,
        "counts": {
            "messages": stats.messages,
            "scored": stats.scored,
            "scored_by_llm": stats.scored_by_llm,
            "scored_by_heuristic": stats.scored_by_heuristic,
            "average_importance": (
                None if stats.average_importance is None else round(stats.average_importance, 2)
            ),
            "reflections": stats.reflections,
        },
        "scorecard": topic_scorecard(recent),
        "reflection_loop_watermark": db.thread_watermark(LOOP, thread_id),
    }
