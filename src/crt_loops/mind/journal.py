"""The agent's journal: entries, people's comments, per-thread settings, and self-replies.

Entries (docs/architecture.md §9) are ``reflection`` and ``personality`` (written by those loops),
``self_reply`` (the agent following up on its own entry, or answering a comment) and ``comment``
(a person's comment on an entry). ``reply_to`` links a reply to the entry it answers.

Self-reply policy (SelfReplyService, one pass per ``CRT_JOURNAL_SELF_REPLY_LOOP_SECONDS``):

1. A person's comment that has no answer yet is answered on the next pass, whatever the chance
   and the minimum gap (up to ``COMMENTS_PER_PASS`` per thread per pass, oldest first).
2. Otherwise the candidate is the thread's latest entry of the agent's own thinking: a
   reflection, a personality entry or one of its unprompted self-replies. It is answered only if
   nothing replies to it yet and its chain holds fewer than ``MAX_CHAIN`` self-replies
   (counted along ``reply_to``): chains stop at 3. Older unanswered entries are superseded by the
   newer one and never revisited.
3. The minimum gap (``CRT_JOURNAL_SELF_REPLY_MIN_SECONDS`` since the thread's last self-reply)
   must have passed, then the injected ``random.Random`` is rolled once against the chance.
4. Per-thread override (``GET/POST /api/threads/{id}/journal/settings``): ``default`` uses the
   configured chance, ``on`` uses chance 1 (the minimum gap still holds), ``off`` silences the
   agent's journal in that thread entirely: no self-replies and no answers to comments (a person
   who turns the journal off does not want it talking). Comments made while ``off`` stay
   unanswered when it is turned back on; new ones are answered.

The text comes from the LLM (a ``JournalReply`` structured call). Only when the LLM is unavailable
or its call fails is a fixed template written instead, with ``meta.source = "template"``; a chain
is never continued with the template (it would only repeat itself): it waits for the LLM.

New work is found like the message loops find theirs: a watermark over ``journal_entries.id``
(stored in ``loop_state``/``loop_watermarks`` under the loop name ``journal_self_reply``). A
thread is done (its watermark advanced) once nothing in it can be answered any more; a thread
waiting on the dice or the minimum gap stays pending and is looked at again by the next pass. A
pass with no new entries and nothing pending is two indexed reads, no LLM call and no writes.
"""

from __future__ import annotations

import logging
import random
from typing import Any

from pydantic import BaseModel, Field

from crt_loops.core.clock import Clock, iso
from crt_loops.db import journal as journal_db
from crt_loops.db import progress
from crt_loops.db.journal import (
    ENTRY_TYPES,
    SELF_REPLY_MODES,
    EntryNotFound,
    JournalEntry,
    add_entry,
    get_entry,
    latest_entry,
    list_entries,
)
from crt_loops.db.session import SessionDB, ThreadNotFound, check_thread_id
from crt_loops.llm.client import LLM, ChatMessage
from crt_loops.loops.passes import Candidate, LLMGate, PassResult, WatermarkedService

logger = logging.getLogger(__name__)

LOOP = "journal_self_reply"
LOG_PREFIX = "[JOURNAL_SELF_REPLY_LOOP]"
MAX_CHAIN = 3
COMMENTS_PER_PASS = 3
MAX_COMMENT_CHARS = 10_000
MAX_REPLY_CHARS = 2_000
DEFAULT_CHANCE = 0.25
DEFAULT_MIN_SECONDS = 1800.0
_KIND_LABEL = {"comment": "comment by the person", "self_reply": "your self-reply"}


__all__ = [
    "ENTRY_TYPES",
    "SELF_REPLY_MODES",
    "EntryNotFound",
    "JournalEntry",
    "JournalReply",
    "SelfReplyService",
    "add_comment",
    "add_entry",
    "get_entry",
    "get_settings",
    "latest_entry",
    "list_entries",
    "set_settings",
]


def add_comment(db: SessionDB, thread_id: str, entry_id: int, body: str) -> JournalEntry:
    """A person's comment on one of the thread's entries (answered by the next self-reply pass)."""
    check_thread_id(thread_id)
    text = body.strip()
    if not text:
        raise ValueError("a comment must not be empty")
    if len(text) > MAX_COMMENT_CHARS:
        raise ValueError(f"a comment is at most {MAX_COMMENT_CHARS} characters, got {len(text)}")
    return journal_db.add_comment(db, thread_id, entry_id, text, author="person")


# -- per-thread settings -------------------------------------------------------------------


def get_settings(
    db: SessionDB,
    thread_id: str,
    *,
    chance: float = DEFAULT_CHANCE,
    min_seconds: float = DEFAULT_MIN_SECONDS,
) -> dict[str, Any]:
    """The thread's override and the policy it results in (``chance``: the configured one)."""
    stored = journal_db.self_reply_settings(db, check_thread_id(thread_id))
    if stored is None:
        raise ThreadNotFound(f"thread {thread_id!r} does not exist")
    mode, last_at = stored.mode, stored.last_self_reply_at
    effective = {"on": 1.0, "off": 0.0}.get(mode, chance)
    next_at = None if last_at is None or mode == "off" else last_at + min_seconds
    return {
        "thread_id": thread_id,
        "self_reply": mode,
        "effective_chance": effective,
        "configured_chance": chance,
        "min_seconds": min_seconds,
        "answers_comments": mode != "off",
        "last_self_reply_at": iso(last_at),
        "next_self_reply_possible_at": iso(next_at),
    }


def set_settings(
    db: SessionDB,
    thread_id: str,
    *,
    self_reply: str | None = None,
    chance: float = DEFAULT_CHANCE,
    min_seconds: float = DEFAULT_MIN_SECONDS,
) -> dict[str, Any]:
    """Partial update: ``None`` keeps the current value. Returns the new settings."""
    if self_reply is not None:
        if self_reply not in SELF_REPLY_MODES:
            raise ValueError(f"self_reply must be one of {SELF_REPLY_MODES}, got {self_reply!r}")
        journal_db.set_self_reply_mode(db, check_thread_id(thread_id), self_reply)
    return get_settings(db, thread_id, chance=chance, min_seconds=min_seconds)


# -- self-replies --------------------------------------------------------------------------


class JournalReply(BaseModel):
    """The LLM's structured answer for a journal self-reply or an answer to a comment."""

    reply: str = Field(description="2-4 sentences, first person, plain text")


class SelfReplyService(WatermarkedService):
    """Answers people's comments and sometimes follows up the agent's own entries."""

    loop = LOOP
    log_prefix = LOG_PREFIX
    table = "journal_entries"
    fallback = "template"

    def __init__(
        self,
        db: SessionDB,
        llm: LLM,
        *,
        chance: float,
        min_seconds: float,
        window: int,
        rng: random.Random,
        clock: Clock,
    ) -> None:
        if not 0.0 <= chance <= 1.0:
            raise ValueError(f"chance must be between 0 and 1, got {chance}")
        if min_seconds < 0 or window < 1:
            raise ValueError(f"need min_seconds >= 0 and window >= 1, got {min_seconds}, {window}")
        self.db = db
        self.llm = llm
        self.chance = chance
        self.min_seconds = min_seconds
        self.window = window
        self.rng = rng
        self.clock = clock

    def candidates(self) -> list[Candidate]:
        return progress.candidates(self.db, LOOP, "journal_entries")

    def process(self, cand: Candidate, gate: LLMGate, result: PassResult) -> bool:
        return self._process(cand, gate, result, force=False)

    def process_thread(self, thread_id: str, *, force: bool = True) -> PassResult:
        """Run this thread now. ``force`` (the default for a manual run) skips the dice and the
        minimum gap and looks at the whole thread; ``off``, the chain cap and "already answered"
        still hold."""
        self.db.require_thread(thread_id)
        wm = self.db.thread_watermark(LOOP, thread_id)
        newest = progress.newest_id(self.db, "journal_entries", thread_id)
        candidate = Candidate(thread_id, 0 if force else wm, max(wm, newest))
        return self.run_one(candidate, lambda c, g, r: self._process(c, g, r, force=force))

    # -- one thread ----------------------------------------------------------------------

    def _process(self, cand: Candidate, gate: LLMGate, result: PassResult, *, force: bool) -> bool:
        settings = journal_db.self_reply_settings(self.db, cand.thread_id)
        if settings is None or settings.mode == "off":
            return self._done(cand)
        mode, last_at = settings.mode, settings.last_self_reply_at
        comments = journal_db.unanswered_comments(
            self.db, cand.thread_id, after_id=cand.watermark, limit=COMMENTS_PER_PASS
        )
        if comments:
            for comment in comments:
                self._reply(comment, "comment_answer", gate, result)
            return False  # look again next pass: more comments, or the dust settled
        target = journal_db.latest_own_thought(self.db, cand.thread_id, after_id=cand.watermark)
        if target is None or journal_db.has_reply(self.db, target.id):
            return self._done(cand)
        chain = journal_db.chain(self.db, target.id)
        if sum(1 for e in chain if e.entry_type == "self_reply") >= MAX_CHAIN:
            return self._done(cand)
        chance = 1.0 if mode == "on" else self.chance
        if not force and chance <= 0.0:
            return self._done(cand)  # nothing here will ever be answered at chance 0
        if target.entry_type == "self_reply" and not gate.usable():
            # Continuing a chain with the fixed template would only repeat it; wait for the LLM.
            return False
        if not force:
            if last_at is not None and self.clock() - last_at < self.min_seconds:
                return False
            if self.rng.random() >= chance:
                return False
        self._reply(target, "self_reply", gate, result, chain=chain)
        return False  # the new self-reply may itself be followed up, up to the chain cap

    def _done(self, cand: Candidate) -> bool:
        if cand.max_id > cand.watermark:
            self.db.set_thread_watermark(LOOP, cand.thread_id, cand.max_id)
        return True

    def _reply(
        self,
        target: JournalEntry,
        kind: str,
        gate: LLMGate,
        result: PassResult,
        *,
        chain: list[JournalEntry] | None = None,
    ) -> None:
        chain = chain if chain is not None else journal_db.chain(self.db, target.id)
        meta: dict[str, Any] = {
            "kind": kind,
            "depth": 1 + sum(1 for e in chain if e.entry_type == "self_reply"),
        }
        text: str | None = None
        if gate.usable():
            answered = gate.chat(
                self._prompt(target, kind, chain), JournalReply, temperature=0.5, max_tokens=400
            )
            if answered is not None:
                text = answered[0].reply.strip()[:MAX_REPLY_CHARS] or None
                meta.update(source="llm", model=answered[1].model)
                if text is None:
                    gate.note_fallback("the model's reply was empty")
        if text is None:
            text = _template(target, kind)
            meta["source"] = "template"
            result.fallbacks += 1
        written = journal_db.add_self_reply(
            self.db,
            target,
            title=("Re: " + (chain[0].title or chain[0].entry_type))[:200],
            body=text,
            meta=meta,
            now=self.clock(),
        )
        if written is None:
            return  # answered meanwhile (a manual run, another process)
        result.entries_written += 1
        logger.info(
            "%s thread %s: wrote a %s to entry %d (%s)",
            LOG_PREFIX,
            target.thread_id,
            "reply to a comment" if kind == "comment_answer" else "self-reply",
            target.id,
            meta["source"],
        )

    def _prompt(
        self, target: JournalEntry, kind: str, chain: list[JournalEntry]
    ) -> list[ChatMessage]:
        if kind == "comment_answer":
            task = (
                "The person you talk with commented on your journal. Answer them directly and "
                "warmly in 2-4 sentences, first person, taking their comment seriously."
            )
        else:
            task = (
                "Write a short follow-up (2-4 sentences, first person) to your own latest journal "
                "entry: add a new angle, question it, or note what you will do differently. "
                "Do not repeat the entry."
            )
        history = self.db.list_messages(target.thread_id, limit=self.window, newest=True)
        convo = "\n".join(f"[id {m.id}] {m.role}: {m.content[:400]}" for m in history)
        journal = "\n".join(
            f"[entry {e.id}, {_KIND_LABEL.get(e.entry_type, e.entry_type)}] {e.title}\n"
            f"{e.body[:1500]}"
            for e in chain
        )
        system = (
            "You are a personal AI agent keeping a private journal about a conversation. "
            f'{task} Answer only with JSON: {{"reply": "..."}}.'
        )
        user = (
            f"Recent conversation (context):\n{convo or '(no messages)'}\n\n"
            f"Journal, oldest first:\n{journal}\n\nWrite your reply to entry {target.id}."
        )
        return [ChatMessage("system", system), ChatMessage("user", user)]


def _excerpt(text: str, limit: int = 160) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1].rstrip() + "…"


def _template(target: JournalEntry, kind: str) -> str:
    """The fixed text written when the LLM cannot be used (marked ``source: template``)."""
    if kind == "comment_answer":
        return (
            f'Thank you for your comment: "{_excerpt(target.body)}". I have noted it and will '
            "take it into account the next time we talk."
        )
    if target.entry_type == "reflection":
        return (
            f'Coming back to this reflection: "{_excerpt(target.body)}". It still seems to matter; '
            "I want to keep it in mind in our next conversations."
        )
    if target.entry_type == "personality":
        return (
            "Looking at this change in how I talk here again: I will keep watching whether it "
            "suits the person, and adjust if it does not."
        )
    return "One more thought on this: I will check in our next conversations whether it holds up."
