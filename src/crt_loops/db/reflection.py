"""Reflection records: messages' importance scores, each thread's last reflection, statistics.

Scores and the thread's watermark commit together, and so do a reflection entry, the thread's
``reflection_state`` and its watermark, so a crash between them never scores a message twice
or writes the same reflection twice.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from crt_loops.db import progress
from crt_loops.db.journal import count_entries, write_entry
from crt_loops.db.session import MESSAGE_COLUMNS, MessageRow, SessionDB, lock_thread

#: (importance 1-10, reason, scored_by) for one message id.
Score = tuple[int, str, str]


@dataclass(frozen=True)
class ReflectionState:
    """Where the thread's last reflection ended (message id 0 and no time before the first)."""

    last_message_id: int
    last_at: float | None


@dataclass(frozen=True)
class ReflectionStats:
    """The numbers ``GET /api/threads/{id}/reflection`` shows."""

    importance_since: int  # summed over messages after the last reflection
    messages_since: int
    scored_since: int
    messages: int  # in the whole thread
    scored: int
    scored_by_llm: int
    scored_by_heuristic: int
    average_importance: float | None
    reflections: int


def state(db: SessionDB, thread_id: str) -> ReflectionState:
    row = db.query_one(
        "SELECT last_reflection_message_id, last_reflection_at FROM reflection_state "
        "WHERE thread_id = ?",
        (thread_id,),
    )
    if row is None:
        return ReflectionState(0, None)
    return ReflectionState(int(row[0]), None if row[1] is None else float(row[1]))


def since_last_reflection(
    db: SessionDB, thread_id: str, *, up_to_id: int, read_from: int | None = None
) -> tuple[int, int | None]:
    """(the id the thread's last reflection covered, 0 before the first; the summed importance
    of its scored messages after that id and up to ``up_to_id``): :func:`state` and
    that sum in one statement, since a pass reads both for every thread.

    With ``read_from`` (the caller has read every message after that id), the sum is None
    when the last reflection is at or past it: those messages are the caller's to add up, and
    reading each row again was most of the statement's cost.
    """
    total = (
        "(SELECT COALESCE(SUM(m.importance), 0) FROM messages m WHERE m.thread_id = ? "
        " AND m.id > COALESCE(s.last_reflection_message_id, 0) AND m.id <= ?)"
    )
    args: tuple[object, ...] = (thread_id, up_to_id, thread_id)
    if read_from is not None:
        total = (
            f"CASE WHEN COALESCE(s.last_reflection_message_id, 0) >= ? THEN NULL ELSE {total} END"
        )
        args = (read_from, *args)
    row = db.query_one(
        f"SELECT COALESCE(s.last_reflection_message_id, 0), {total} "
        "FROM (SELECT 1 AS one) AS t LEFT JOIN reflection_state s ON s.thread_id = ?",
        args,
    )
    assert row is not None  # one row, whatever the join finds
    return int(row[0]), None if row[1] is None else int(row[1])


def most_important(
    db: SessionDB, thread_id: str, *, after_id: int, up_to_id: int, limit: int
) -> list[MessageRow]:
    """The ``limit`` most important messages in the range (newest first among equals), by id."""
    rows = db.query(
        f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE thread_id = ? AND id > ? AND id <= ? "
        "ORDER BY importance DESC, id DESC LIMIT ?",
        (thread_id, after_id, up_to_id, limit),
    )
    return sorted((MessageRow(*r) for r in rows), key=lambda m: m.id)


def save_scores(
    db: SessionDB,
    scores: Mapping[int, Score],
    *,
    loop: str,
    thread_id: str,
    done_up_to: int | None,
) -> None:
    """Store scores of still-unscored messages; with ``done_up_to``, also raise the thread's
    watermark to it, in the same transaction."""
    with db.write() as tx:
        # Only still-unscored rows: a concurrent manual run's scores are kept, not redone.
        tx.executemany(
            "UPDATE messages SET importance = ?, importance_reason = ?, scored_by = ? "
            "WHERE id = ? AND importance IS NULL",
            [(s[0], s[1], s[2], mid) for mid, s in scores.items()],
        )
        if done_up_to is not None:
            progress.raise_thread_watermark(tx, loop, thread_id, done_up_to, db.clock())


def add_reflection(
    db: SessionDB,
    *,
    loop: str,
    thread_id: str,
    up_to_id: int,
    title: str,
    body: str,
    meta: dict[str, Any],
    now: float,
) -> bool:
    """Write the reflection covering messages up to ``up_to_id`` and move the thread's
    reflection state and watermark there, in one transaction. False (no entry) when a reflection
    already covers ``up_to_id`` (a concurrent manual run); the watermark moves either way."""
    with db.write() as tx:
        lock_thread(tx, thread_id)
        current = tx.execute(
            "SELECT last_reflection_message_id FROM reflection_state WHERE thread_id = ?",
            (thread_id,),
        ).fetchone()
        written = current is None or int(current[0]) < up_to_id
        if written:
            write_entry(
                tx,
                thread_id=thread_id,
                entry_type="reflection",
                title=title,
                body=body,
                created_at=now,
                meta=meta,
            )
            tx.execute(
                "INSERT INTO reflection_state (thread_id, last_reflection_message_id, "
                "last_reflection_at) VALUES (?, ?, ?) ON CONFLICT(thread_id) DO UPDATE SET "
                "last_reflection_message_id = excluded.last_reflection_message_id, "
                "last_reflection_at = excluded.last_reflection_at",
                (thread_id, up_to_id, now),
            )
        progress.raise_thread_watermark(tx, loop, thread_id, up_to_id, db.clock())
    return written


def stats(db: SessionDB, thread_id: str, *, since_id: int) -> ReflectionStats:
    """Importance since ``since_id`` (the last reflection) and counts over the whole thread."""
    since = db.query_one(
        "SELECT COALESCE(SUM(importance), 0), COUNT(*), COUNT(importance) FROM messages "
        "WHERE thread_id = ? AND id > ?",
        (thread_id, since_id),
    )
    counts = db.query_one(
        "SELECT COUNT(*), COUNT(importance), "
        "COALESCE(SUM(CASE WHEN scored_by = 'llm' THEN 1 ELSE 0 END), 0), "
        "COALESCE(SUM(CASE WHEN scored_by = 'heuristic' THEN 1 ELSE 0 END), 0), "
        "AVG(importance) FROM messages "
        "WHERE thread_id = ?",
        (thread_id,),
    )
    assert since is not None and counts is not None  # aggregates always return a row
    return ReflectionStats(
        importance_since=int(since[0]),
        messages_since=int(since[1]),
        scored_since=int(since[2]),
        messages=int(counts[0]),
        scored=int(counts[1]),
        scored_by_llm=int(counts[2]),
        scored_by_heuristic=int(counts[3]),
        average_importance=None if counts[4] is None else float(counts[4]),
        reflections=count_entries(db, thread_id, "reflection"),
    )
