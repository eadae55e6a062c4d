"""The agent's journal: entries, people's comments, per-thread settings, and self-replies.

Entries (DESIGN §9) are ``reflection`` and ``personality`` (written by those loops),
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

import json
import logging
import random
import sqlite3
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, Field

from crt_loops.core.clock import Clock, iso
from crt_loops.db.session import SessionDB, ThreadNotFound, check_thread_id, dumps
from crt_loops.llm.client import LLM, ChatMessage
from crt_loops.loops.passes import (
    Candidate,
    LLMGate,
    PassResult,
    WatermarkedService,
    thread_watermark,
)

logger = logging.getLogger(__name__)

LOOP = "journal_self_reply"
LOG_PREFIX = "[JOURNAL_SELF_REPLY_LOOP]"
ENTRY_TYPES = ("reflection", "personality", "self_reply", "comment")
SELF_REPLY_MODES = ("default", "on", "off")
MAX_CHAIN = 3
COMMENTS_PER_PASS = 3
MAX_COMMENT_CHARS = 10_000
MAX_REPLY_CHARS = 2_000
DEFAULT_CHANCE = 0.25
DEFAULT_MIN_SECONDS = 1800.0
_COLUMNS = "id, thread_id, entry_type, title, body, created_at, reply_to, meta_json"
# The agent's own thinking that an unprompted self-reply may follow up (answers to comments are
# conversations with the person, not thoughts to continue alone).
_TARGET_FILTER = (
    "(entry_type IN ('reflection', 'personality') OR (entry_type = 'self_reply' AND "
    "COALESCE(json_extract(meta_json, '$.kind'), 'self_reply') <> 'comment_answer'))"
)


_KIND_LABEL = {"comment": "comment by the person", "self_reply": "your self-reply"}


class EntryNotFound(LookupError):
    """Raised when a journal entry does not exist, or belongs to another thread."""


@dataclass(frozen=True)
class JournalEntry:
    id: int
    thread_id: str
    entry_type: str
    title: str
    body: str
    created_at: float
    reply_to: int | None
    meta: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "thread_id": self.thread_id,
            "entry_type": self.entry_type,
            "title": self.title,
            "body": self.body,
            "created_at": iso(self.created_at),
            "reply_to": self.reply_to,
            "meta": self.meta,
        }


def _entry(row: sqlite3.Row | tuple[Any, ...]) -> JournalEntry:
    meta = json.loads(row[7]) if row[7] else {}
    return JournalEntry(
        id=int(row[0]),
        thread_id=str(row[1]),
        entry_type=str(row[2]),
        title=str(row[3]),
        body=str(row[4]),
        created_at=float(row[5]),
        reply_to=None if row[6] is None else int(row[6]),
        meta=meta if isinstance(meta, dict) else {"value": meta},
    )


def insert_entry(
    tx: sqlite3.Connection,
    *,
    thread_id: str,
    entry_type: str,
    title: str,
    body: str,
    created_at: float,
    reply_to: int | None = None,
    meta: dict[str, Any] | None = None,
) -> JournalEntry:
    """Write an entry inside the caller's transaction (with the results it belongs to)."""
    if entry_type not in ENTRY_TYPES:
        raise ValueError(f"entry_type must be one of {ENTRY_TYPES}, got {entry_type!r}")
    row = tx.execute(
        "INSERT INTO journal_entries (thread_id, entry_type, title, body, created_at, reply_to, "
        f"meta_json) VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING {_COLUMNS}",
        (thread_id, entry_type, title, body, created_at, reply_to, dumps(meta or {})),
    ).fetchone()
    return _entry(row)


def get_entry(db: SessionDB, entry_id: int) -> JournalEntry | None:
    row = (
        db.read()
        .execute(f"SELECT {_COLUMNS} FROM journal_entries WHERE id = ?", (entry_id,))
        .fetchone()
    )
    return _entry(row) if row else None


def list_entries(
    db: SessionDB, thread_id: str, limit: int = 50, before_id: int | None = None
) -> list[JournalEntry]:
    """The thread's entries, newest first; ``before_id`` pages to older ones."""
    rows = db.read().execute(
        f"SELECT {_COLUMNS} FROM journal_entries WHERE thread_id = ? AND id < ? "
        "ORDER BY id DESC LIMIT ?",
        (thread_id, before_id if before_id is not None else 2**62, max(1, limit)),
    )
    return [_entry(r) for r in rows]


def latest_entry(db: SessionDB, thread_id: str, entry_type: str) -> JournalEntry | None:
    row = (
        db.read()
        .execute(
            f"SELECT {_COLUMNS} FROM journal_entries WHERE thread_id = ? AND entry_type = ? "
            "ORDER BY id DESC LIMIT 1",
            (thread_id, entry_type),
        )
        .fetchone()
    )
    return _entry(row) if row else None


def add_comment(db: SessionDB, thread_id: str, entry_id: int, body: str) -> JournalEntry:
    """A person's comment on one of the thread's entries (answered by the next self-reply pass)."""
    check_thread_id(thread_id)
    text = body.strip()
    if not text:
        raise ValueError("a comment must not be empty")
    if len(text) > MAX_COMMENT_CHARS:
        raise ValueError(f"a comment is at most {MAX_COMMENT_CHARS} characters, got {len(text)}")
    with db.write() as tx:
        if not tx.execute(
            "SELECT 1 FROM thread_sessions WHERE thread_id = ?", (thread_id,)
        ).fetchone():
            raise ThreadNotFound(f"thread {thread_id!r} does not exist")
        owner = tx.execute(
            "SELECT thread_id FROM journal_entries WHERE id = ?", (entry_id,)
        ).fetchone()
        if owner is None or owner[0] != thread_id:
            raise EntryNotFound(f"journal entry {entry_id} does not exist in thread {thread_id!r}")
        return insert_entry(
            tx,
            thread_id=thread_id,
            entry_type="comment",
            title="",
            body=text,
            created_at=db.clock(),
            reply_to=entry_id,
            meta={"author": "person"},
        )


# -- per-thread settings -------------------------------------------------------------------


def get_settings(
    db: SessionDB,
    thread_id: str,
    *,
    chance: float = DEFAULT_CHANCE,
    min_seconds: float = DEFAULT_MIN_SECONDS,
) -> dict[str, Any]:
    """The thread's override and the policy it results in (``chance``: the configured one)."""
    row = (
        db.read()
        .execute(
            "SELECT journal_self_reply, last_self_reply_at FROM thread_sessions "
            "WHERE thread_id = ?",
            (check_thread_id(thread_id),),
        )
        .fetchone()
    )
    if row is None:
        raise ThreadNotFound(f"thread {thread_id!r} does not exist")
    mode, last_at = str(row[0]), row[1]
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
        with db.write() as tx:
            cur = tx.execute(
                "UPDATE thread_sessions SET journal_self_reply = ? WHERE thread_id = ?",
                (self_reply, check_thread_id(thread_id)),
            )
            if cur.rowcount != 1:
                raise ThreadNotFound(f"thread {thread_id!r} does not exist")
    return get_settings(db, thread_id, chance=chance, min_seconds=min_seconds)


# -- self-replies --------------------------------------------------------------------------


class JournalReply(BaseModel):
    """The LLM's structured answer for a journal self-reply or an answer to a comment."""

    reply: str = Field(description="2-4 sentences, first person, plain text")


def _candidates(db: SessionDB) -> list[Candidate]:
    rows = db.read().execute(
        "SELECT j.thread_id, COALESCE(w.message_id, 0), MAX(j.id) "
        "FROM journal_entries j LEFT JOIN loop_watermarks w "
        "  ON w.loop = :loop AND w.thread_id = j.thread_id "
        "WHERE j.id > (SELECT COALESCE(MAX(watermark), 0) FROM loop_state WHERE loop = :loop) "
        "GROUP BY j.thread_id HAVING MAX(j.id) > COALESCE(w.message_id, 0) "
        "ORDER BY j.thread_id",
        {"loop": LOOP},
    )
    return [Candidate(r[0], int(r[1]), int(r[2])) for r in rows]


def _chain(conn: sqlite3.Connection, entry_id: int) -> list[JournalEntry]:
    """The entry and its ancestors along ``reply_to``, oldest first."""
    rows = conn.execute(
        "WITH RECURSIVE chain(id, depth) AS ("
        "  SELECT id, 0 FROM journal_entries WHERE id = ? "
        "  UNION ALL SELECT j.reply_to, c.depth + 1 FROM journal_entries j "
        "  JOIN chain c ON j.id = c.id WHERE j.reply_to IS NOT NULL AND c.depth < 50) "
        f"SELECT {', '.join('e.' + c.strip() for c in _COLUMNS.split(','))} "
        "FROM chain JOIN journal_entries e ON e.id = chain.id ORDER BY chain.depth DESC",
        (entry_id,),
    ).fetchall()
    return [_entry(r) for r in rows]


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
        return _candidates(self.db)

    def process(self, cand: Candidate, gate: LLMGate, result: PassResult) -> bool:
        return self._process(cand, gate, result, force=False)

    def process_thread(self, thread_id: str, *, force: bool = True) -> PassResult:
        """Run this thread now. ``force`` (the default for a manual run) skips the dice and the
        minimum gap and looks at the whole thread; ``off``, the chain cap and "already answered"
        still hold."""
        self.db.require_thread(thread_id)
        conn = self.db.read()
        wm = thread_watermark(conn, LOOP, thread_id)
        row = conn.execute(
            "SELECT MAX(id) FROM journal_entries WHERE thread_id = ?", (thread_id,)
        ).fetchone()
        candidate = Candidate(thread_id, 0 if force else wm, max(wm, int(row[0] or 0)))
        return self.run_one(candidate, lambda c, g, r: self._process(c, g, r, force=force))

    # -- one thread ----------------------------------------------------------------------

    def _process(self, cand: Candidate, gate: LLMGate, result: PassResult, *, force: bool) -> bool:
        conn = self.db.read()
        row = conn.execute(
            "SELECT journal_self_reply, last_self_reply_at FROM thread_sessions "
            "WHERE thread_id = ?",
            (cand.thread_id,),
        ).fetchone()
        if row is None or row[0] == "off":
            return self._done(cand)
        mode, last_at = str(row[0]), row[1]
        comments = [
            _entry(r)
            for r in conn.execute(
                f"SELECT {_COLUMNS} FROM journal_entries c WHERE thread_id = ? AND id > ? "
                "AND entry_type = 'comment' AND NOT EXISTS (SELECT 1 FROM journal_entries r "
                "WHERE r.reply_to = c.id AND r.entry_type = 'self_reply') ORDER BY id LIMIT ?",
                (cand.thread_id, cand.watermark, COMMENTS_PER_PASS),
            )
        ]
        if comments:
            for comment in comments:
                self._reply(comment, "comment_answer", gate, result)
            return False  # look again next pass: more comments, or the dust settled
        target_row = conn.execute(
            f"SELECT {_COLUMNS} FROM journal_entries WHERE thread_id = ? AND id > ? AND "
            f"{_TARGET_FILTER} ORDER BY id DESC LIMIT 1",
            (cand.thread_id, cand.watermark),
        ).fetchone()
        if target_row is None:
            return self._done(cand)
        target = _entry(target_row)
        if conn.execute(
            "SELECT 1 FROM journal_entries WHERE reply_to = ? LIMIT 1", (target.id,)
        ).fetchone():
            return self._done(cand)
        chain = _chain(conn, target.id)
        if sum(1 for e in chain if e.entry_type == "self_reply") >= MAX_CHAIN:
            return self._done(cand)
        chance = 1.0 if mode == "on" else self.chance
        if not force and chance <= 0.0:
            return self._done(cand)  # nothing here will ever be answered at chance 0
        if target.entry_type == "self_reply" and not gate.usable():
            # Continuing a chain with the fixed template would only repeat it; wait for the LLM.
            return False
        if not force:
            if last_at is not None and self.clock() - float(last_at) < self.min_seconds:
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
        chain = chain if chain is not None else _chain(self.db.read(), target.id)
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
        now = self.clock()
        with self.db.write() as tx:
            # Someone (a manual run, another process) may have answered it since we looked.
            if tx.execute(
                "SELECT 1 FROM journal_entries WHERE reply_to = ? AND entry_type = 'self_reply'",
                (target.id,),
            ).fetchone():
                return
            insert_entry(
                tx,
                thread_id=target.thread_id,
                entry_type="self_reply",
                title=("Re: " + (chain[0].title or chain[0].entry_type))[:200],
                body=text,
                created_at=now,
                reply_to=target.id,
                meta=meta,
            )
            tx.execute(
                "UPDATE thread_sessions SET last_self_reply_at = ? WHERE thread_id = ?",
                (now, target.thread_id),
            )
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
