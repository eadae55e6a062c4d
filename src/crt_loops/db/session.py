"""SessionDB: the service's store, safe across threads, processes and hosts.

It is a SQLite file (:mod:`crt_loops.db.sqlite`: ``BEGIN IMMEDIATE`` for every write, one
connection per thread) or, opened with a ``postgresql://`` URL, a PostgreSQL database shared by
several hosts (:mod:`crt_loops.db.postgres`); the schema is in :mod:`crt_loops.db.migrations`
and, for PostgreSQL, :mod:`crt_loops.db.pg_migrations`, numbered alike. SessionDB holds the
core records (threads, messages, the loops' watermarks, leases, key/value); each feature's
records have a repository module beside it (``db.journal``, ``db.reflection``, ``db.personality``,
``db.heartbeats``, ``db.agent_history``, ``db.retention``).

Nothing here waits on the network: callers claim, commit, call the LLM or the Ledger, then record
in a new transaction.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from crt_loops.db import progress
from crt_loops.db.backends import StoreFacade, open_store
from crt_loops.db.conn import POSTGRES, Connection, Row
from crt_loops.db.errors import DatabaseClosedError, translated
from crt_loops.db.leases import drop_lease, get_lease, kv_read, kv_write, take_lease
from crt_loops.db.migrations import MIGRATIONS
from crt_loops.db.pg_migrations import PG_MIGRATIONS
from crt_loops.db.sqlite import BUSY_TIMEOUT_MS

__all__ = ["MIGRATIONS", "DatabaseClosedError", "SessionDB"]

THREAD_ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
DEFAULT_THREAD = "default"


class InvalidThreadId(ValueError):
    """Raised when a thread id does not match ``^[A-Za-z0-9_-]{1,64}$``."""


class ThreadNotFound(LookupError):
    """Raised when an operation needs a thread that does not exist."""


def check_thread_id(thread_id: str) -> str:
    """Return ``thread_id`` unchanged, or raise InvalidThreadId: ids are never rewritten."""
    if not isinstance(thread_id, str) or not THREAD_ID_RE.fullmatch(thread_id):
        raise InvalidThreadId(
            "thread_id must be 1-64 characters of letters, digits, '_' or '-' "
            f"(pattern ^[A-Za-z0-9_-]{{1,64}}$), got {thread_id!r:.80}"
        )
    return thread_id


def insert_thread(tx: Connection, thread_id: str, title: str, now: float) -> bool:
    """Create the thread inside the caller's transaction unless it exists; True if created."""
    cur = tx.execute(
        "INSERT INTO thread_sessions (thread_id, title, created_at, updated_at) "
        "VALUES (?, ?, ?, ?) ON CONFLICT(thread_id) DO NOTHING",
        (thread_id, title, now, now),
    )
    return cur.rowcount == 1


def require_thread_in(tx: Connection, thread_id: str) -> None:
    """Raise ThreadNotFound unless the thread exists (inside the caller's transaction)."""
    if not tx.execute("SELECT 1 FROM thread_sessions WHERE thread_id = ?", (thread_id,)).fetchone():
        raise ThreadNotFound(f"thread {thread_id!r} does not exist")


def lock_thread(tx: Connection, thread_id: str) -> None:
    """Serialise the caller's check-then-write on one thread (docs/storage.md, rule 5).

    SQLite's ``BEGIN IMMEDIATE`` already serialises every write transaction, so there is
    nothing to do there (a plain read was one statement of every reflection a pass writes); on
    PostgreSQL it locks the thread's row until the transaction ends, so two hosts checking "no
    reflection covers these messages yet" cannot both write one.
    """
    if tx.dialect == POSTGRES:
        tx.execute("SELECT 1 FROM thread_sessions WHERE thread_id = ? FOR UPDATE", (thread_id,))


@dataclass(frozen=True)
class ThreadRow:
    thread_id: str
    title: str
    created_at: float
    updated_at: float


class MessageRow(NamedTuple):
    """One message. A named tuple, not a frozen dataclass: a backlog pass makes ~2.5 of these a
    message, and a frozen dataclass took four times as long to build (bench/backlog.py)."""

    id: int
    thread_id: str
    role: str
    content: str
    created_at: float
    importance: int | None
    importance_reason: str | None
    scored_by: str | None


#: MessageRow's fields, in order: every query that builds one selects these.
MESSAGE_COLUMNS = ", ".join(MessageRow._fields)


def _message(row: Row) -> MessageRow:
    return MessageRow(*row)


# Walks ix_threads_updated (migration 6) in order, so a page costs its rows, not a sort of
# every thread (tests/db/test_session_db.py checks the plan).
LIST_THREADS_SQL = (
    "SELECT thread_id, title, created_at, updated_at FROM thread_sessions "
    "ORDER BY updated_at DESC, thread_id LIMIT ? OFFSET ?"
)


class SessionDB(StoreFacade):
    """The session database: threads, messages, journal, loops' progress, heartbeat records.

    Opened on a SQLite path (the default) or a ``postgresql://`` URL (``CRT_DATABASE_URL``);
    every repository works on either through :class:`~crt_loops.db.store.Store`.
    """

    def __init__(
        self,
        path: Path | str,
        *,
        clock: Callable[[], float] = time.time,
        busy_timeout_ms: int = BUSY_TIMEOUT_MS,
        pool_size: int | None = None,
    ) -> None:
        super().__init__(
            open_store(
                path,
                sqlite_migrations=MIGRATIONS,
                pg_migrations=PG_MIGRATIONS,
                clock=clock,
                busy_timeout_ms=busy_timeout_ms,
                pool_size=pool_size,
            ),
            clock,
        )
        try:
            self.ensure_thread(DEFAULT_THREAD)
        except BaseException:
            self.backend.close()
            raise

    # -- threads -------------------------------------------------------------------------

    def ensure_thread(self, thread_id: str, title: str | None = None) -> bool:
        """Create the thread if missing; return True when it was created."""
        check_thread_id(thread_id)
        now = self.clock()
        with self.write() as tx:
            created = insert_thread(tx, thread_id, title or "", now)
            if not created and title is not None:
                tx.execute(
                    "UPDATE thread_sessions SET title = ?, updated_at = ? WHERE thread_id = ?",
                    (title, now, thread_id),
                )
        return created

    def get_thread(self, thread_id: str) -> ThreadRow | None:
        check_thread_id(thread_id)
        row = self.query_one(
            "SELECT thread_id, title, created_at, updated_at FROM thread_sessions "
            "WHERE thread_id = ?",
            (thread_id,),
        )
        return ThreadRow(*row) if row else None

    def require_thread(self, thread_id: str) -> ThreadRow:
        row = self.get_thread(thread_id)
        if row is None:
            raise ThreadNotFound(f"thread {thread_id!r} does not exist")
        return row

    def thread_exists(self, thread_id: str) -> bool:
        return self.get_thread(thread_id) is not None

    def list_threads(self, limit: int = 100, offset: int = 0) -> list[ThreadRow]:
        rows = self.query(LIST_THREADS_SQL, (limit, offset))
        return [ThreadRow(*r) for r in rows]

    def count_threads(self) -> int:
        row = self.query_one("SELECT COUNT(*) FROM thread_sessions")
        return int(row[0]) if row else 0

    def delete_thread(self, thread_id: str) -> bool:
        check_thread_id(thread_id)
        with self.write() as tx:
            cur = tx.execute("DELETE FROM thread_sessions WHERE thread_id = ?", (thread_id,))
            return cur.rowcount == 1

    # -- messages ------------------------------------------------------------------------

    def add_message(self, thread_id: str, role: str, content: str) -> MessageRow:
        """Append a message; the thread must exist."""
        now = self.clock()
        with self.write() as tx:
            require_thread_in(tx, thread_id)
            row = tx.execute(
                "INSERT INTO messages (thread_id, role, content, created_at) VALUES (?, ?, ?, ?) "
                f"RETURNING {MESSAGE_COLUMNS}",
                (thread_id, role, content, now),
            ).fetchone()
            tx.execute(
                "UPDATE thread_sessions SET updated_at = ? WHERE thread_id = ?", (now, thread_id)
            )
        return _message(row)

    def get_message(self, message_id: int) -> MessageRow | None:
        row = self.query_one(f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE id = ?", (message_id,))
        return _message(row) if row else None

    def list_messages(
        self, thread_id: str, *, after_id: int = 0, limit: int = 100, newest: bool = False
    ) -> list[MessageRow]:
        """Messages oldest first; with ``newest``, the last ``limit`` of them, oldest first."""
        if newest:
            rows = self.query(
                f"SELECT * FROM (SELECT {MESSAGE_COLUMNS} FROM messages WHERE thread_id = ? "
                "AND id > ? ORDER BY id DESC LIMIT ?) AS newest ORDER BY id",
                (thread_id, after_id, limit),
            )
        else:
            rows = self.query(
                f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE thread_id = ? AND id > ? "
                "ORDER BY id LIMIT ?",
                (thread_id, after_id, limit),
            )
        return [_message(r) for r in rows]

    def latest_message_id(self, thread_id: str) -> int:
        return progress.newest_id(self, "messages", thread_id)

    def messages_in_range(
        self, thread_id: str, after_id: int, up_to_id: int, *, role: str | None = None
    ) -> list[MessageRow]:
        """The thread's messages with ``after_id < id <= up_to_id`` (of ``role``), oldest first."""
        rows = self.query(
            f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE thread_id = ? AND id > ? AND id <= ? "
            "AND (? IS NULL OR role = ?) ORDER BY id",
            (thread_id, after_id, up_to_id, role, role),
        )
        return [_message(r) for r in rows]

    # -- loop watermarks (crt_loops.db.progress) -----------------------------------------

    def loop_watermark(self, loop: str) -> int:
        return progress.loop_watermark(self, loop)

    def thread_watermark(self, loop: str, thread_id: str) -> int:
        return progress.thread_watermark(self, loop, thread_id)

    def threads_with_new_messages(self, loop: str) -> list[tuple[str, int, int]]:
        """(thread_id, its watermark, newest message id) for threads with unprocessed messages."""
        return [
            (c.thread_id, c.watermark, c.max_id)
            for c in progress.candidates(self, loop, "messages")
        ]

    def set_thread_watermark(self, loop: str, thread_id: str, message_id: int) -> None:
        progress.set_thread_watermark(self, loop, thread_id, message_id)

    def advance_loop_watermark(self, loop: str, watermark: int) -> None:
        """Raise the global watermark (never lowers it)."""
        progress.advance_loop_watermark(self, loop, watermark)

    # -- leases (exactly-once across processes) -------------------------------------------

    def acquire_lease(self, name: str, owner: str, ttl_seconds: float) -> bool:
        """Take or renew the lease ``name`` for ``owner``; False when someone else holds it."""
        with self.write() as tx:
            return take_lease(tx, name, owner, self.clock(), ttl_seconds, renew=True)

    def release_lease(self, name: str, owner: str) -> None:
        with self.write() as tx:
            drop_lease(tx, name, owner)

    def lease_holder(self, name: str) -> tuple[str, float] | None:
        lease = get_lease(self, name)
        if lease is None or lease.expires_at < self.clock():
            return None
        return lease.owner, lease.expires_at

    # -- key/value -----------------------------------------------------------------------

    def kv_get(self, key: str) -> str | None:
        with translated():
            return kv_read(self.read(), key)

    def kv_set(self, key: str, value: str) -> None:
        with self.write() as tx:
            kv_write(tx, key, value, self.clock())


def dumps(value: Any) -> str:
    """Compact, stable JSON for storage."""
    return json.dumps(value, separators=(",", ":"), sort_keys=True, ensure_ascii=False)
