"""Journal records: entries, people's comments, the per-thread self-reply settings.

Entries are written either in their own transaction (:func:`add_entry`, :func:`add_comment`,
:func:`add_self_reply`) or, by the other repositories, inside the transaction of the results
they belong to (:func:`insert_entry`), so a reflection and its watermark commit together.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from crt_loops.core.clock import iso
from crt_loops.db.conn import Connection, Cursor, Row
from crt_loops.db.session import (
    SessionDB,
    ThreadNotFound,
    dumps,
    lock_thread,
    require_thread_in,
)

ENTRY_TYPES = ("reflection", "personality", "self_reply", "comment")
SELF_REPLY_MODES = ("default", "on", "off")
_COLUMNS = "id, thread_id, entry_type, title, body, created_at, reply_to, meta_json"
# The agent's own thinking that an unprompted self-reply may follow up (answers to comments are
# conversations with the person, not thoughts to continue alone).
_TARGET_FILTER = (
    "(entry_type IN ('reflection', 'personality') OR (entry_type = 'self_reply' AND "
    "COALESCE(json_extract(meta_json, '$.kind'), 'self_reply') <> 'comment_answer'))"
)
# Deeper chains are cut off: the self-reply policy stops them long before this.
_MAX_CHAIN_WALK = 50


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


@dataclass(frozen=True)
class SelfReplySettings:
    """A thread's self-reply override and when the agent last replied to itself there."""

    mode: str
    last_self_reply_at: float | None


def _entry(row: Row | tuple[Any, ...]) -> JournalEntry:
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


# -- writing ---------------------------------------------------------------------------------


def insert_entry(
    tx: Connection,
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
    cursor = _insert(
        tx,
        f"RETURNING {_COLUMNS}",
        thread_id=thread_id,
        entry_type=entry_type,
        title=title,
        body=body,
        created_at=created_at,
        reply_to=reply_to,
        meta=meta,
    )
    return _entry(cursor.fetchone())


def write_entry(
    tx: Connection,
    *,
    thread_id: str,
    entry_type: str,
    title: str,
    body: str,
    created_at: float,
    meta: dict[str, Any] | None = None,
) -> None:
    """:func:`insert_entry` for a caller that does not read the entry back (a pass writing a
    reflection or a profile change: decoding the row it returned was wasted per thread)."""
    _insert(
        tx,
        "",
        thread_id=thread_id,
        entry_type=entry_type,
        title=title,
        body=body,
        created_at=created_at,
        reply_to=None,
        meta=meta,
    )


def _insert(
    tx: Connection,
    returning: str,
    *,
    thread_id: str,
    entry_type: str,
    title: str,
    body: str,
    created_at: float,
    reply_to: int | None,
    meta: dict[str, Any] | None,
) -> Cursor:
    if entry_type not in ENTRY_TYPES:
        raise ValueError(f"entry_type must be one of {ENTRY_TYPES}, got {entry_type!r}")
    return tx.execute(
        "INSERT INTO journal_entries (thread_id, entry_type, title, body, created_at, reply_to, "
        f"meta_json) VALUES (?, ?, ?, ?, ?, ?, ?) {returning}",
        (thread_id, entry_type, title, body, created_at, reply_to, dumps(meta or {})),
    )


def add_entry(
    db: SessionDB,
    *,
    thread_id: str,
    entry_type: str,
    title: str,
    body: str,
    created_at: float,
    reply_to: int | None = None,
    meta: dict[str, Any] | None = None,
) -> JournalEntry:
    """Write one entry in its own transaction."""
    with db.write() as tx:
        return insert_entry(
            tx,
            thread_id=thread_id,
            entry_type=entry_type,
            title=title,
            body=body,
            created_at=created_at,
            reply_to=reply_to,
            meta=meta,
        )


def add_comment(
    db: SessionDB, thread_id: str, entry_id: int, body: str, *, author: str = "person"
) -> JournalEntry:
    """A comment on one of the thread's entries; raises ThreadNotFound or EntryNotFound."""
    with db.write() as tx:
        require_thread_in(tx, thread_id)
        lock_thread(tx, thread_id)
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
            body=body,
            created_at=db.clock(),
            reply_to=entry_id,
            meta={"author": author},
        )


def add_self_reply(
    db: SessionDB,
    target: JournalEntry,
    *,
    title: str,
    body: str,
    meta: dict[str, Any],
    now: float,
) -> JournalEntry | None:
    """The agent's reply to ``target``, and the thread's ``last_self_reply_at``, in one
    transaction; None (nothing written) when a self-reply to it exists already."""
    with db.write() as tx:
        # Someone (a manual run, another process) may have answered it since the caller looked.
        lock_thread(tx, target.thread_id)
        if tx.execute(
            "SELECT 1 FROM journal_entries WHERE reply_to = ? AND entry_type = 'self_reply'",
            (target.id,),
        ).fetchone():
            return None
        entry = insert_entry(
            tx,
            thread_id=target.thread_id,
            entry_type="self_reply",
            title=title,
            body=body,
            created_at=now,
            reply_to=target.id,
            meta=meta,
        )
        tx.execute(
            "UPDATE thread_sessions SET last_self_reply_at = ? WHERE thread_id = ?",
            (now, target.thread_id),
        )
    return entry


# -- reading ---------------------------------------------------------------------------------


def get_entry(db: SessionDB, entry_id: int) -> JournalEntry | None:
    row = db.query_one(f"SELECT {_COLUMNS} FROM journal_entries WHERE id = ?", (entry_id,))
    return _entry(row) if row else None


def list_entries(
    db: SessionDB, thread_id: str, limit: int = 50, before_id: int | None = None
) -> list[JournalEntry]:
    """The thread's entries, newest first; ``before_id`` pages to older ones."""
    rows = db.query(
        f"SELECT {_COLUMNS} FROM journal_entries WHERE thread_id = ? AND id < ? "
        "ORDER BY id DESC LIMIT ?",
        (thread_id, before_id if before_id is not None else 2**62, max(1, limit)),
    )
    return [_entry(r) for r in rows]


def latest_entry(db: SessionDB, thread_id: str, entry_type: str) -> JournalEntry | None:
    row = db.query_one(
        f"SELECT {_COLUMNS} FROM journal_entries WHERE thread_id = ? AND entry_type = ? "
        "ORDER BY id DESC LIMIT 1",
        (thread_id, entry_type),
    )
    return _entry(row) if row else None


def count_entries(db: SessionDB, thread_id: str, entry_type: str) -> int:
    row = db.query_one(
        "SELECT COUNT(*) FROM journal_entries WHERE thread_id = ? AND entry_type = ?",
        (thread_id, entry_type),
    )
    return int(row[0]) if row else 0


def unanswered_comments(
    db: SessionDB, thread_id: str, *, after_id: int, limit: int
) -> list[JournalEntry]:
    """The thread's comments above ``after_id`` that no self-reply answers yet, oldest first."""
    rows = db.query(
        f"SELECT {_COLUMNS} FROM journal_entries c WHERE thread_id = ? AND id > ? "
        "AND entry_type = 'comment' AND NOT EXISTS (SELECT 1 FROM journal_entries r "
        "WHERE r.reply_to = c.id AND r.entry_type = 'self_reply') ORDER BY id LIMIT ?",
        (thread_id, after_id, limit),
    )
    return [_entry(r) for r in rows]


def latest_own_thought(db: SessionDB, thread_id: str, *, after_id: int) -> JournalEntry | None:
    """The thread's newest entry above ``after_id`` that the agent may follow up on its own: a
    reflection, a personality entry or a self-reply that is not an answer to a comment."""
    row = db.query_one(
        f"SELECT {_COLUMNS} FROM journal_entries WHERE thread_id = ? AND id > ? AND "
        f"{_TARGET_FILTER} ORDER BY id DESC LIMIT 1",
        (thread_id, after_id),
    )
    return _entry(row) if row else None


def has_reply(db: SessionDB, entry_id: int) -> bool:
    """Whether any entry (a comment or a self-reply) replies to ``entry_id``."""
    return (
        db.query_one("SELECT 1 FROM journal_entries WHERE reply_to = ? LIMIT 1", (entry_id,))
        is not None
    )


def chain(db: SessionDB, entry_id: int) -> list[JournalEntry]:
    """The entry and its ancestors along ``reply_to``, oldest first."""
    rows = db.query(
        "WITH RECURSIVE chain(id, depth) AS ("
        "  SELECT id, 0 FROM journal_entries WHERE id = ? "
        "  UNION ALL SELECT j.reply_to, c.depth + 1 FROM journal_entries j "
        "  JOIN chain c ON j.id = c.id WHERE j.reply_to IS NOT NULL AND c.depth < ?) "
        f"SELECT {', '.join('e.' + c.strip() for c in _COLUMNS.split(','))} "
        "FROM chain JOIN journal_entries e ON e.id = chain.id ORDER BY chain.depth DESC",
        (entry_id, _MAX_CHAIN_WALK),
    )
    return [_entry(r) for r in rows]


# -- per-thread settings ---------------------------------------------------------------------


def self_reply_settings(db: SessionDB, thread_id: str) -> SelfReplySettings | None:
    """The thread's self-reply settings, or None when the thread does not exist."""
    row = db.query_one(
        "SELECT journal_self_reply, last_self_reply_at FROM thread_sessions WHERE thread_id = ?",
        (thread_id,),
    )
    if row is None:
        return None
    return SelfReplySettings(
        mode=str(row[0]), last_self_reply_at=None if row[1] is None else float(row[1])
    )


def set_self_reply_mode(db: SessionDB, thread_id: str, mode: str) -> None:
    """Store the thread's override; raises ThreadNotFound."""
    if mode not in SELF_REPLY_MODES:
        raise ValueError(f"self_reply must be one of {SELF_REPLY_MODES}, got {mode!r}")
    with db.write() as tx:
        cur = tx.execute(
            "UPDATE thread_sessions SET journal_self_reply = ? WHERE thread_id = ?",
            (mode, thread_id),
        )
        if cur.rowcount != 1:
            raise ThreadNotFound(f"thread {thread_id!r} does not exist")
