"""SessionDB: the service's SQLite store, safe across threads and processes.

The connection and transaction discipline lives in :mod:`sqlite_store` (``BEGIN IMMEDIATE``
for every write, one connection per thread, numbered migrations).

Nothing here waits on the network: callers claim, commit, call the LLM or the Ledger, then record
in a new transaction.
"""

from __future__ import annotations

import json
import re
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from crt_loops.db.sqlite import BUSY_TIMEOUT_MS, DatabaseClosedError, SQLiteStore

__all__ = ["DatabaseClosedError", "SessionDB"]

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


# Numbered migrations. Append only: a released number is never edited.
MIGRATIONS: list[tuple[int, str]] = [
    (
        1,
        """
        CREATE TABLE thread_sessions (
            thread_id TEXT PRIMARY KEY,
            title TEXT NOT NULL DEFAULT '',
            created_at REAL NOT NULL,
            updated_at REAL NOT NULL,
            heartbeat_config_json TEXT,
            heartbeat_last_run REAL,
            heartbeat_last_summary TEXT,
            heartbeat_last_actions_json TEXT,
            heartbeat_last_outcome TEXT,
            heartbeat_last_reason TEXT,
            heartbeat_next_due REAL,
            heartbeat_failures INTEGER NOT NULL DEFAULT 0,
            heartbeat_context_hash TEXT,
            journal_self_reply TEXT NOT NULL DEFAULT 'default'
                CHECK (journal_self_reply IN ('default', 'on', 'off')),
            last_self_reply_at REAL
        );
        -- The heartbeat scheduler's only query: enabled threads ordered by due time.
        CREATE INDEX ix_threads_hb_due ON thread_sessions(heartbeat_next_due)
            WHERE heartbeat_next_due IS NOT NULL;

        CREATE TABLE messages (
            id INTEGER PRIMARY KEY AUTOINCREMENT,  -- never reused: loop watermarks rely on it
            thread_id TEXT NOT NULL REFERENCES thread_sessions(thread_id) ON DELETE CASCADE,
            role TEXT NOT NULL CHECK (role IN ('user', 'assistant')),
            content TEXT NOT NULL,
            created_at REAL NOT NULL,
            importance INTEGER CHECK (importance BETWEEN 1 AND 10),
            importance_reason TEXT,
            scored_by TEXT CHECK (scored_by IN ('llm', 'heuristic'))
        );
        CREATE INDEX ix_messages_thread ON messages(thread_id, id);

        CREATE TABLE journal_entries (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            thread_id TEXT NOT NULL REFERENCES thread_sessions(thread_id) ON DELETE CASCADE,
            entry_type TEXT NOT NULL
                CHECK (entry_type IN ('reflection', 'personality', 'self_reply', 'comment')),
            title TEXT NOT NULL DEFAULT '',
            body TEXT NOT NULL,
            created_at REAL NOT NULL,
            reply_to INTEGER REFERENCES journal_entries(id) ON DELETE SET NULL,
            meta_json TEXT NOT NULL DEFAULT '{}'
        );
        CREATE INDEX ix_journal_thread ON journal_entries(thread_id, id);
        CREATE INDEX ix_journal_reply_to ON journal_entries(reply_to);

        CREATE TABLE reflection_state (
            thread_id TEXT PRIMARY KEY REFERENCES thread_sessions(thread_id) ON DELETE CASCADE,
            last_reflection_message_id INTEGER NOT NULL DEFAULT 0,
            last_reflection_at REAL
        );

        CREATE TABLE personality_profiles (
            thread_id TEXT PRIMARY KEY REFERENCES thread_sessions(thread_id) ON DELETE CASCADE,
            profile_json TEXT NOT NULL,
            version INTEGER NOT NULL DEFAULT 1,
            updated_at REAL NOT NULL
        );
        CREATE TABLE personality_history (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            thread_id TEXT NOT NULL REFERENCES thread_sessions(thread_id) ON DELETE CASCADE,
            created_at REAL NOT NULL,
            changes_json TEXT NOT NULL,
            reason TEXT NOT NULL,
            profile_json TEXT NOT NULL
        );
        CREATE INDEX ix_personality_history_thread ON personality_history(thread_id, id);

        -- Per-loop progress: the global watermark below which every message is processed ...
        CREATE TABLE loop_state (
            loop TEXT PRIMARY KEY,
            watermark INTEGER NOT NULL DEFAULT 0,
            updated_at REAL NOT NULL
        );
        -- ... and per thread, so one failing thread never holds back or loses another's work.
        CREATE TABLE loop_watermarks (
            loop TEXT NOT NULL,
            thread_id TEXT NOT NULL REFERENCES thread_sessions(thread_id) ON DELETE CASCADE,
            message_id INTEGER NOT NULL,
            updated_at REAL NOT NULL,
            PRIMARY KEY (loop, thread_id)
        );

        CREATE TABLE leases (
            name TEXT PRIMARY KEY,
            owner TEXT NOT NULL,
            acquired_at REAL NOT NULL,
            expires_at REAL NOT NULL
        );

        CREATE TABLE heartbeat_runs (
            run_id TEXT PRIMARY KEY,
            thread_id TEXT NOT NULL REFERENCES thread_sessions(thread_id) ON DELETE CASCADE,
            trigger TEXT NOT NULL CHECK (trigger IN ('schedule', 'manual')),
            outcome TEXT NOT NULL
                CHECK (outcome IN ('running', 'acted', 'silent', 'dry_run', 'skipped', 'failed')),
            reason TEXT,
            dry_run INTEGER NOT NULL DEFAULT 0,
            summary TEXT NOT NULL DEFAULT '',
            started_at REAL NOT NULL,
            finished_at REAL,
            duration_ms REAL,
            error TEXT,
            prompt_chars INTEGER,
            llm_ms REAL,
            model TEXT,
            raw_decision TEXT
        );
        CREATE INDEX ix_hb_runs_thread ON heartbeat_runs(thread_id, started_at);
        CREATE INDEX ix_hb_runs_running ON heartbeat_runs(outcome) WHERE outcome = 'running';

        CREATE TABLE heartbeat_actions (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            run_id TEXT NOT NULL REFERENCES heartbeat_runs(run_id) ON DELETE CASCADE,
            thread_id TEXT NOT NULL,
            seq INTEGER NOT NULL,
            type TEXT NOT NULL CHECK (type IN ('post', 'comment', 'vote')),
            payload_json TEXT NOT NULL,
            state TEXT NOT NULL
                CHECK (state IN ('pending', 'sent', 'failed', 'blocked', 'dry_run')),
            ledger_id TEXT,
            error TEXT,
            idempotency_key TEXT NOT NULL UNIQUE,
            content_hash TEXT,
            created_at REAL NOT NULL,
            updated_at REAL NOT NULL
        );
        CREATE INDEX ix_hb_actions_run ON heartbeat_actions(run_id, seq);
        CREATE INDEX ix_hb_actions_pending ON heartbeat_actions(state) WHERE state = 'pending';
        CREATE INDEX ix_hb_actions_thread ON heartbeat_actions(thread_id, created_at);

        CREATE TABLE kv (
            key TEXT PRIMARY KEY,
            value TEXT NOT NULL,
            updated_at REAL NOT NULL
        );
        """,
    ),
    (
        2,
        """
        -- Retention prunes runs by age; the agent's recent actions are read by time.
        CREATE INDEX ix_hb_runs_started ON heartbeat_runs(started_at);
        CREATE INDEX ix_hb_actions_updated ON heartbeat_actions(updated_at);
        CREATE INDEX ix_journal_created ON journal_entries(created_at);
        """,
    ),
    (
        3,
        """
        -- db.agent_history.agent_history reads the agent's sent actions by type and time: with
        -- ledger_id and state in the index those reads never touch the table (bench/heartbeat.py:
        -- 20,000 past actions cost 28-35 ms per heartbeat before, ~2 ms after).
        CREATE INDEX ix_hb_actions_sent ON heartbeat_actions(type, updated_at, ledger_id, state)
            WHERE state = 'sent';
        """,
    ),
    (
        4,
        """
        -- Run counts by outcome for GET /api/heartbeat/status, kept by triggers (inserts, outcome
        -- changes, retention and cascade deletes): counting them scanned every run, 35 ms at
        -- 200,000 runs and growing (bench/api_load.py).
        CREATE TABLE heartbeat_run_counts (
            outcome TEXT PRIMARY KEY,
            n INTEGER NOT NULL
        );
        INSERT INTO heartbeat_run_counts (outcome, n)
            SELECT outcome, COUNT(*) FROM heartbeat_runs GROUP BY outcome;
        CREATE TRIGGER tr_hb_run_counts_insert AFTER INSERT ON heartbeat_runs BEGIN
            INSERT INTO heartbeat_run_counts (outcome, n) VALUES (NEW.outcome, 1)
                ON CONFLICT(outcome) DO UPDATE SET n = n + 1;
        END;
        CREATE TRIGGER tr_hb_run_counts_update AFTER UPDATE OF outcome ON heartbeat_runs
            WHEN OLD.outcome IS NOT NEW.outcome BEGIN
            UPDATE heartbeat_run_counts SET n = n - 1 WHERE outcome = OLD.outcome;
            INSERT INTO heartbeat_run_counts (outcome, n) VALUES (NEW.outcome, 1)
                ON CONFLICT(outcome) DO UPDATE SET n = n + 1;
        END;
        CREATE TRIGGER tr_hb_run_counts_delete AFTER DELETE ON heartbeat_runs BEGIN
            UPDATE heartbeat_run_counts SET n = n - 1 WHERE outcome = OLD.outcome;
        END;
        """,
    ),
    (
        6,
        """
        -- Follow and subscribe actions. SQLite cannot change a CHECK constraint in place, so
        -- the table is rebuilt with the same columns and indexes (a version number apart from
        -- other branches' migrations: the order of independent migrations does not matter).
        CREATE TABLE heartbeat_actions_v6 (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            run_id TEXT NOT NULL REFERENCES heartbeat_runs(run_id) ON DELETE CASCADE,
            thread_id TEXT NOT NULL,
            seq INTEGER NOT NULL,
            type TEXT NOT NULL
                CHECK (type IN ('post', 'comment', 'vote', 'follow', 'subscribe')),
            payload_json TEXT NOT NULL,
            state TEXT NOT NULL
                CHECK (state IN ('pending', 'sent', 'failed', 'blocked', 'dry_run')),
            ledger_id TEXT,
            error TEXT,
            idempotency_key TEXT NOT NULL UNIQUE,
            content_hash TEXT,
            created_at REAL NOT NULL,
            updated_at REAL NOT NULL
        );
        INSERT INTO heartbeat_actions_v6 (id, run_id, thread_id, seq, type, payload_json, state,
            ledger_id, error, idempotency_key, content_hash, created_at, updated_at)
            SELECT id, run_id, thread_id, seq, type, payload_json, state, ledger_id, error,
            idempotency_key, content_hash, created_at, updated_at FROM heartbeat_actions;
        DROP TABLE heartbeat_actions;
        ALTER TABLE heartbeat_actions_v6 RENAME TO heartbeat_actions;
        CREATE INDEX ix_hb_actions_run ON heartbeat_actions(run_id, seq);
        CREATE INDEX ix_hb_actions_pending ON heartbeat_actions(state) WHERE state = 'pending';
        CREATE INDEX ix_hb_actions_thread ON heartbeat_actions(thread_id, created_at);
        CREATE INDEX ix_hb_actions_updated ON heartbeat_actions(updated_at);
        CREATE INDEX ix_hb_actions_sent ON heartbeat_actions(type, updated_at, ledger_id, state)
            WHERE state = 'sent';
        """,
    ),
]


@dataclass(frozen=True)
class ThreadRow:
    thread_id: str
    title: str
    created_at: float
    updated_at: float


@dataclass(frozen=True)
class MessageRow:
    id: int
    thread_id: str
    role: str
    content: str
    created_at: float
    importance: int | None
    importance_reason: str | None
    scored_by: str | None


def _message(row: sqlite3.Row) -> MessageRow:
    return MessageRow(
        id=row["id"],
        thread_id=row["thread_id"],
        role=row["role"],
        content=row["content"],
        created_at=row["created_at"],
        importance=row["importance"],
        importance_reason=row["importance_reason"],
        scored_by=row["scored_by"],
    )


class SessionDB(SQLiteStore):
    """The session database: threads, messages, journal, loops' progress, heartbeat records."""

    def __init__(
        self,
        path: Path | str,
        *,
        clock: Callable[[], float] = time.time,
        busy_timeout_ms: int = BUSY_TIMEOUT_MS,
    ) -> None:
        super().__init__(path, MIGRATIONS, clock=clock, busy_timeout_ms=busy_timeout_ms)
        self.ensure_thread(DEFAULT_THREAD)

    # -- threads -------------------------------------------------------------------------

    def ensure_thread(self, thread_id: str, title: str | None = None) -> bool:
        """Create the thread if missing; return True when it was created."""
        check_thread_id(thread_id)
        now = self.clock()
        with self.write() as tx:
            cur = tx.execute(
                "INSERT INTO thread_sessions (thread_id, title, created_at, updated_at) "
                "VALUES (?, ?, ?, ?) ON CONFLICT(thread_id) DO NOTHING",
                (thread_id, title or "", now, now),
            )
            created = cur.rowcount == 1
            if not created and title is not None:
                tx.execute(
                    "UPDATE thread_sessions SET title = ?, updated_at = ? WHERE thread_id = ?",
                    (title, now, thread_id),
                )
        return created

    def get_thread(self, thread_id: str) -> ThreadRow | None:
        check_thread_id(thread_id)
        row = (
            self.read()
            .execute(
                "SELECT thread_id, title, created_at, updated_at FROM thread_sessions "
                "WHERE thread_id = ?",
                (thread_id,),
            )
            .fetchone()
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
        rows = self.read().execute(
            "SELECT thread_id, title, created_at, updated_at FROM thread_sessions "
            "ORDER BY updated_at DESC, thread_id LIMIT ? OFFSET ?",
            (limit, offset),
        )
        return [ThreadRow(*r) for r in rows]

    def count_threads(self) -> int:
        return int(self.read().execute("SELECT COUNT(*) FROM thread_sessions").fetchone()[0])

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
            if not tx.execute(
                "SELECT 1 FROM thread_sessions WHERE thread_id = ?", (thread_id,)
            ).fetchone():
                raise ThreadNotFound(f"thread {thread_id!r} does not exist")
            row = tx.execute(
                "INSERT INTO messages (thread_id, role, content, created_at) VALUES (?, ?, ?, ?) "
                "RETURNING *",
                (thread_id, role, content, now),
            ).fetchone()
            tx.execute(
                "UPDATE thread_sessions SET updated_at = ? WHERE thread_id = ?", (now, thread_id)
            )
        return _message(row)

    def get_message(self, message_id: int) -> MessageRow | None:
        row = self.read().execute("SELECT * FROM messages WHERE id = ?", (message_id,)).fetchone()
        return _message(row) if row else None

    def list_messages(
        self, thread_id: str, *, after_id: int = 0, limit: int = 100, newest: bool = False
    ) -> list[MessageRow]:
        """Messages oldest first; with ``newest``, the last ``limit`` of them, oldest first."""
        if newest:
            rows = self.read().execute(
                "SELECT * FROM (SELECT * FROM messages WHERE thread_id = ? AND id > ? "
                "ORDER BY id DESC LIMIT ?) ORDER BY id",
                (thread_id, after_id, limit),
            )
        else:
            rows = self.read().execute(
                "SELECT * FROM messages WHERE thread_id = ? AND id > ? ORDER BY id LIMIT ?",
                (thread_id, after_id, limit),
            )
        return [_message(r) for r in rows]

    def latest_message_id(self, thread_id: str) -> int:
        row = (
            self.read()
            .execute("SELECT MAX(id) FROM messages WHERE thread_id = ?", (thread_id,))
            .fetchone()
        )
        return int(row[0] or 0)

    # -- loop watermarks -----------------------------------------------------------------

    def loop_watermark(self, loop: str) -> int:
        row = (
            self.read()
            .execute("SELECT watermark FROM loop_state WHERE loop = ?", (loop,))
            .fetchone()
        )
        return int(row[0]) if row else 0

    def threads_with_new_messages(self, loop: str) -> list[tuple[str, int, int]]:
        """(thread_id, thread watermark, newest message id) for threads with unprocessed messages.

        One range scan over the messages' primary key above the loop's global watermark, so a pass
        over threads with nothing new costs one indexed query whatever the thread count.
        """
        rows = self.read().execute(
            "SELECT m.thread_id, COALESCE(w.message_id, 0), MAX(m.id) "
            "FROM messages m LEFT JOIN loop_watermarks w "
            "  ON w.loop = :loop AND w.thread_id = m.thread_id "
            "WHERE m.id > (SELECT COALESCE(MAX(watermark), 0) FROM loop_state WHERE loop = :loop) "
            "GROUP BY m.thread_id "
            "HAVING MAX(m.id) > COALESCE(w.message_id, 0) "
            "ORDER BY m.thread_id",
            {"loop": loop},
        )
        return [(r[0], int(r[1]), int(r[2])) for r in rows]

    def set_thread_watermark(
        self, loop: str, thread_id: str, message_id: int, tx: sqlite3.Connection | None = None
    ) -> None:
        sql = (
            "INSERT INTO loop_watermarks (loop, thread_id, message_id, updated_at) "
            "VALUES (?, ?, ?, ?) ON CONFLICT(loop, thread_id) DO UPDATE SET "
            "message_id = MAX(message_id, excluded.message_id), updated_at = excluded.updated_at"
        )
        args = (loop, thread_id, message_id, self.clock())
        if tx is not None:
            tx.execute(sql, args)
        else:
            with self.write() as own:
                own.execute(sql, args)

    def advance_loop_watermark(self, loop: str, watermark: int) -> None:
        """Raise the global watermark (never lowers it)."""
        with self.write() as tx:
            tx.execute(
                "INSERT INTO loop_state (loop, watermark, updated_at) VALUES (?, ?, ?) "
                "ON CONFLICT(loop) DO UPDATE SET watermark = MAX(watermark, excluded.watermark), "
                "updated_at = excluded.updated_at",
                (loop, watermark, self.clock()),
            )

    # -- leases (exactly-once across processes) -------------------------------------------

    def acquire_lease(self, name: str, owner: str, ttl_seconds: float) -> bool:
        """Take or renew the lease ``name`` for ``owner``; False when someone else holds it."""
        now = self.clock()
        with self.write() as tx:
            row = tx.execute(
                "INSERT INTO leases (name, owner, acquired_at, expires_at) VALUES (?, ?, ?, ?) "
                "ON CONFLICT(name) DO UPDATE SET owner = excluded.owner, "
                "  acquired_at = CASE WHEN leases.owner = excluded.owner THEN leases.acquired_at "
                "                     ELSE excluded.acquired_at END, "
                "  expires_at = excluded.expires_at "
                "WHERE leases.owner = excluded.owner OR leases.expires_at < ? "
                "RETURNING owner",
                (name, owner, now, now + ttl_seconds, now),
            ).fetchone()
        return row is not None

    def release_lease(self, name: str, owner: str) -> None:
        with self.write() as tx:
            tx.execute("DELETE FROM leases WHERE name = ? AND owner = ?", (name, owner))

    def lease_holder(self, name: str) -> tuple[str, float] | None:
        row = (
            self.read()
            .execute("SELECT owner, expires_at FROM leases WHERE name = ?", (name,))
            .fetchone()
        )
        if row is None or row[1] < self.clock():
            return None
        return str(row[0]), float(row[1])

    # -- key/value -----------------------------------------------------------------------

    def kv_get(self, key: str) -> str | None:
        row = self.read().execute("SELECT value FROM kv WHERE key = ?", (key,)).fetchone()
        return str(row[0]) if row else None

    def kv_set(self, key: str, value: str) -> None:
        with self.write() as tx:
            tx.execute(
                "INSERT INTO kv (key, value, updated_at) VALUES (?, ?, ?) "
                "ON CONFLICT(key) DO UPDATE SET value = excluded.value, "
                "updated_at = excluded.updated_at",
                (key, value, self.clock()),
            )


def dumps(value: Any) -> str:
    """Compact, stable JSON for storage."""
    return json.dumps(value, separators=(",", ":"), sort_keys=True, ensure_ascii=False)
