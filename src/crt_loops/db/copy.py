"""Copy a SQLite session DB into a PostgreSQL one: ``crt db copy`` (README, "Scaling out").

The target is opened (and so migrated) as a SessionDB and must hold nothing yet but the
``default`` thread every SessionDB creates. Every table is copied in one transaction, in an
order that satisfies the foreign keys, with the ids as they were, so the loops' watermarks stay
valid; the identity sequences then continue after the highest id. Leases are not copied (their
holders are the old host's processes), nor the run counts, which the target's triggers rebuild
as the runs arrive. The source is only read.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from crt_loops.db.conn import POSTGRES, Connection
from crt_loops.db.session import DEFAULT_THREAD, SessionDB

__all__ = ["CopyError", "CopyReport", "copy_sqlite_to"]

#: Parents before children; a table not listed here is refused (the schema grew: list it).
TABLES = (
    "thread_sessions",
    "messages",
    "journal_entries",
    "reflection_state",
    "personality_profiles",
    "personality_history",
    "loop_state",
    "loop_watermarks",
    "heartbeat_runs",
    "heartbeat_actions",
    "heartbeat_owner_feedback",
    "heartbeat_wakes",
    "heartbeat_prompts",
    "kv",
)
SKIPPED: frozenset[str] = frozenset(
    {"leases", "heartbeat_run_counts", "schema_migrations", "sqlite_sequence"}
)
#: Tables whose ``id`` is an identity column on PostgreSQL.
IDENTITY_TABLES = (
    "messages",
    "journal_entries",
    "personality_history",
    "heartbeat_actions",
    "heartbeat_owner_feedback",
)
BATCH = 1000


class CopyError(RuntimeError):
    """Raised when the copy cannot start: the source is missing or the target is not empty."""


@dataclass
class CopyReport:
    """Rows copied per table."""

    rows: dict[str, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(self.rows.values())


def _source_tables(src: sqlite3.Connection) -> list[str]:
    rows = src.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
    return [str(r[0]) for r in rows]


def _columns(src: sqlite3.Connection, table: str) -> list[str]:
    return [str(r[1]) for r in src.execute(f"PRAGMA table_info({table})").fetchall()]


def _batches(cursor: sqlite3.Cursor) -> Iterator[list[tuple[object, ...]]]:
    while rows := cursor.fetchmany(BATCH):
        yield [tuple(r) for r in rows]


def _check_empty(tx: Connection) -> None:
    for table in TABLES:
        row = tx.execute(f"SELECT COUNT(*) FROM {table}").fetchone()
        allowed = 1 if table == "thread_sessions" else 0
        if row is not None and int(row[0]) > allowed:
            raise CopyError(f"the target already holds data ({table} has {row[0]} rows)")


def copy_sqlite_to(source: Path, target: SessionDB) -> CopyReport:
    """Copy every row of the SQLite file ``source`` into the empty PostgreSQL ``target``."""
    if target.dialect != POSTGRES:
        raise CopyError("the target must be a postgresql:// database")
    if not source.is_file():
        raise CopyError(f"no SQLite database at {source}")
    src = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
    try:
        tables = _source_tables(src)
    except sqlite3.Error as exc:
        raise CopyError(f"{source} is not a SQLite database: {exc}") from exc
    finally:
        src.close()
    if "thread_sessions" not in tables:
        raise CopyError(f"{source} is not a session DB (it has no thread_sessions table)")
    # An older file is brought to the current schema first, as the service's start would.
    SessionDB(source).close()
    # Then it is only read.
    src = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
    report = CopyReport()
    try:
        unknown = set(_source_tables(src)) - set(TABLES) - SKIPPED
        if unknown:
            raise CopyError(f"tables this version cannot copy: {sorted(unknown)}")
        with target.write() as tx:
            _check_empty(tx)
            tx.execute("DELETE FROM thread_sessions WHERE thread_id = ?", (DEFAULT_THREAD,))
            for table in TABLES:
                columns = _columns(src, table)
                marks = ", ".join("?" for _ in columns)
                insert = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})"
                order = "id" if "id" in columns else "rowid"
                cursor = src.execute(f"SELECT {', '.join(columns)} FROM {table} ORDER BY {order}")
                count = 0
                for batch in _batches(cursor):
                    tx.executemany(insert, batch)
                    count += len(batch)
                report.rows[table] = count
            # AUTOINCREMENT's high-water mark (sqlite_sequence) counts deleted rows too: ids
            # continue after it, so no id is ever handed out twice.
            issued = {
                str(r[0]): int(r[1]) for r in src.execute("SELECT name, seq FROM sqlite_sequence")
            }
            for table in IDENTITY_TABLES:
                tx.execute(
                    f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                    f"GREATEST((SELECT COALESCE(MAX(id), 0) FROM {table}), ?) + 1, false)",
                    (issued.get(table, 0),),
                )
    finally:
        src.close()
    return report
