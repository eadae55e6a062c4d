"""The loops' progress: per-loop watermarks over ``messages`` and ``journal_entries`` ids.

A loop keeps a global watermark (``loop_state``: every row at or below it is processed for
every thread) and one per thread (``loop_watermarks``), so one failing thread neither holds back
nor loses another's work. Both only ever rise.

Watermarks are only as correct as the ids under them: a row must never become visible with an
id below a watermark that was already advanced past it. :func:`committed_high_id` is where that
is guaranteed. SQLite assigns ids and commits under one write lock, so every row committed after
a read of ``MAX(id)`` has a higher id. A backend whose writers commit concurrently (PostgreSQL
sequences hand out ids before the commit) implements it as the highest id below which no
transaction is still in flight (docs/storage.md).
"""

from __future__ import annotations

from dataclasses import dataclass

from crt_loops.db.conn import Connection
from crt_loops.db.store import Store

#: Tables whose ids the watermarks count (interpolated into SQL, so never from user input).
WATERMARK_TABLES = frozenset({"messages", "journal_entries"})


@dataclass(frozen=True)
class Candidate:
    """A thread with unprocessed rows: its watermark and the newest id seen by the pass."""

    thread_id: str
    watermark: int
    max_id: int


def _checked(table: str) -> str:
    if table not in WATERMARK_TABLES:
        raise ValueError(f"no watermark over table {table!r}")
    return table


def loop_watermark(store: Store, loop: str) -> int:
    row = store.query_one("SELECT watermark FROM loop_state WHERE loop = ?", (loop,))
    return int(row[0]) if row else 0


def thread_watermark(store: Store, loop: str, thread_id: str) -> int:
    row = store.query_one(
        "SELECT message_id FROM loop_watermarks WHERE loop = ? AND thread_id = ?",
        (loop, thread_id),
    )
    return int(row[0]) if row else 0


def committed_high_id(store: Store, table: str) -> int:
    """The highest id of ``table`` below which no row can still appear (module docstring)."""
    row = store.query_one(f"SELECT MAX(id) FROM {_checked(table)}")
    return int(row[0] or 0) if row else 0


def newest_id(store: Store, table: str, thread_id: str) -> int:
    """The thread's highest id in ``table`` (0 when it has no rows)."""
    row = store.query_one(
        f"SELECT MAX(id) FROM {_checked(table)} WHERE thread_id = ?", (thread_id,)
    )
    return int(row[0] or 0) if row else 0


def candidates(store: Store, loop: str, table: str) -> list[Candidate]:
    """Threads with rows above their watermark in ``table``, by thread id.

    One range scan over the primary key above the loop's global watermark, so a pass over
    threads with nothing new costs one indexed query whatever the thread count.
    """
    rows = store.query(
        "SELECT t.thread_id, COALESCE(w.message_id, 0), MAX(t.id) "
        f"FROM {_checked(table)} t LEFT JOIN loop_watermarks w "
        "  ON w.loop = :loop AND w.thread_id = t.thread_id "
        "WHERE t.id > (SELECT COALESCE(MAX(watermark), 0) FROM loop_state WHERE loop = :loop) "
        "GROUP BY t.thread_id, w.message_id "
        "HAVING MAX(t.id) > COALESCE(w.message_id, 0) "
        "ORDER BY t.thread_id",
        {"loop": loop},
    )
    return [Candidate(str(r[0]), int(r[1]), int(r[2])) for r in rows]


def first_unprocessed(
    store: Store, loop: str, table: str, thread_id: str, floor: int
) -> int | None:
    """The thread's lowest id in ``table`` above both ``floor`` and its watermark."""
    above = max(floor, thread_watermark(store, loop, thread_id))
    row = store.query_one(
        f"SELECT MIN(id) FROM {_checked(table)} WHERE thread_id = ? AND id > ?",
        (thread_id, above),
    )
    return int(row[0]) if row and row[0] is not None else None


def raise_thread_watermark(
    tx: Connection, loop: str, thread_id: str, row_id: int, now: float
) -> None:
    """Inside the caller's transaction (with the results it covers); never lowers it."""
    tx.execute(
        "INSERT INTO loop_watermarks (loop, thread_id, message_id, updated_at) "
        "VALUES (?, ?, ?, ?) ON CONFLICT(loop, thread_id) DO UPDATE SET "
        "message_id = MAX(loop_watermarks.message_id, excluded.message_id), "
        "updated_at = excluded.updated_at",
        (loop, thread_id, row_id, now),
    )


def set_thread_watermark(store: Store, loop: str, thread_id: str, row_id: int) -> None:
    with store.write() as tx:
        raise_thread_watermark(tx, loop, thread_id, row_id, store.clock())


def advance_loop_watermark(store: Store, loop: str, watermark: int) -> None:
    """Raise the global watermark (never lowers it)."""
    with store.write() as tx:
        tx.execute(
            "INSERT INTO loop_state (loop, watermark, updated_at) VALUES (?, ?, ?) "
            "ON CONFLICT(loop) DO UPDATE SET "
            "watermark = MAX(loop_state.watermark, excluded.watermark), "
            "updated_at = excluded.updated_at",
            (loop, watermark, store.clock()),
        )
