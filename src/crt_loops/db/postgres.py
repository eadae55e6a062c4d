"""PostgresStore: the same Store on a PostgreSQL server, through psycopg 3 and its pool.

Several service processes, on several machines, share one database (docs/storage.md, "Several
hosts"). What SQLite's single write lock gave for free is kept here as follows:

- ``write()`` is a ``READ COMMITTED`` transaction on a pooled connection. Leases, profiles and
  watermarks are decided by the statement that writes them (rule 4), which holds under it; the
  per-thread check-then-write steps of rule 5 lock the thread's row first
  (:func:`crt_loops.db.session.lock_thread`).
- Ids of ``messages`` and ``journal_entries`` are handed out and committed in one order: the
  first insert into either table in a transaction takes one transaction-scoped advisory lock,
  so a row that commits later always has a higher id and ``progress.committed_high_id`` stays
  ``MAX(id)`` (docs/storage.md, "Ids and watermarks").
- Statements inside ``write()`` or ``snapshot()`` on a thread, including ``query()`` calls
  made meanwhile, run on that transaction's connection, as SQLite's per-thread connection did.

Values are bound client-side (psycopg's ``ClientCursor``): the shared SQL compares parameters
with ``? IS NULL`` and passes booleans to integer columns, which server-side binding cannot
type. Booleans are sent as ``'1'``/``'0'``, numerics come back as floats, and rows read by name
and by index like ``sqlite3.Row``.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Any

import psycopg
import psycopg_pool
from psycopg.adapt import Dumper
from psycopg.types.numeric import FloatLoader

from crt_loops.db.availability import DbUnavailable, WriteHealth, classify
from crt_loops.db.conn import POSTGRES, Args, Dialect, Row
from crt_loops.db.deferred import DeferredWrites
from crt_loops.db.errors import DatabaseClosedError, DatabaseError
from crt_loops.db.pg_errors import DRIVER_ERRORS, translated_pg
from crt_loops.db.pg_sql import to_postgres
from crt_loops.db.store import Store

__all__ = ["PostgresStore"]

logger = logging.getLogger(__name__)

POOL_SIZE = 10
POOL_TIMEOUT_SECONDS = 10.0
#: Advisory lock keys (any 64-bit values no one else uses on the database).
MIGRATION_LOCK = 0x637274_0001
ID_ORDER_LOCK = 0x637274_0002
#: Taken by every write of a store opened with ``serialize_writes`` (the Ledger's).
WRITE_LOCK = 0x637274_0003
_ORDERED_INSERT = re.compile(r"^\s*INSERT\s+INTO\s+(messages|journal_entries)\b", re.IGNORECASE)


class _BoolAsInt(Dumper):
    # An untyped literal: an INTEGER column and a boolean context both accept it.
    oid = 0

    def dump(self, obj: Any) -> bytes:
        return b"1" if obj else b"0"

    def quote(self, obj: Any) -> bytes:
        return b"'1'" if obj else b"'0'"


@lru_cache(maxsize=256)
def _row_class(names: tuple[str, ...]) -> type[tuple[Any, ...]]:
    index = {name: i for i, name in enumerate(names)}

    class PgRow(tuple[Any, ...]):
        """A row that reads by column name or position, like ``sqlite3.Row``."""

        __slots__ = ()

        def __getitem__(self, key: Any) -> Any:
            if isinstance(key, str):
                return tuple.__getitem__(self, index[key])
            return tuple.__getitem__(self, key)

        def keys(self) -> list[str]:
            return list(names)

    return PgRow


def _row_factory(cursor: Any) -> Callable[[Sequence[Any]], Any]:
    if cursor.description is None:
        return tuple
    cls = _row_class(tuple(col.name for col in cursor.description))
    return cls


class PgResult:
    """A statement's rows, fetched before its connection went back to the pool."""

    def __init__(self, rows: list[Row], rowcount: int) -> None:
        self._rows = rows
        self._next = 0
        self._rowcount = rowcount

    @property
    def rowcount(self) -> int:
        return self._rowcount

    @property
    def lastrowid(self) -> int | None:
        return None

    def fetchone(self) -> Row | None:
        if self._next >= len(self._rows):
            return None
        self._next += 1
        return self._rows[self._next - 1]

    def fetchall(self) -> list[Row]:
        rows = self._rows[self._next :]
        self._next = len(self._rows)
        return rows

    def __iter__(self) -> Iterator[Row]:
        return iter(self.fetchall())


class PgConnection:
    """One pooled connection seen through the repository protocol (:mod:`crt_loops.db.conn`)."""

    def __init__(
        self,
        raw: psycopg.Connection[Any],
        *,
        in_write: bool,
        closed: Callable[[], bool],
        trace: Callable[[str], None] | None = None,
    ) -> None:
        self.raw = raw
        self._in_write = in_write
        self._ordered = False
        self._closed = closed
        self._trace = trace

    def _check_open(self) -> None:
        if self._closed():
            # close() from another thread while this one was inside a transaction.
            raise DatabaseClosedError("the database was closed during this transaction")

    @property
    def dialect(self) -> Dialect:
        return POSTGRES

    @property
    def in_transaction(self) -> bool:
        return self.raw.info.transaction_status != psycopg.pq.TransactionStatus.IDLE

    def _order_ids(self, sql: str) -> None:
        if self._in_write and not self._ordered and _ORDERED_INSERT.match(sql):
            self.raw.execute(f"SELECT pg_advisory_xact_lock({ID_ORDER_LOCK})")
            self._ordered = True

    def execute(self, sql: str, parameters: Args = (), /) -> PgResult:
        self._check_open()
        if self._trace is not None:
            self._trace(sql)
        with translated_pg():
            self._order_ids(sql)
            cur = self.raw.cursor()
            if parameters:
                cur.execute(to_postgres(sql), parameters)
            else:
                cur.execute(to_postgres(sql, with_params=False))
            rows = cur.fetchall() if cur.description is not None else []
            return PgResult(rows, cur.rowcount)

    def executemany(self, sql: str, parameters: Iterable[Args], /) -> PgResult:
        self._check_open()
        if self._trace is not None:
            self._trace(sql)
        with translated_pg():
            self._order_ids(sql)
            cur = self.raw.cursor()
            cur.executemany(to_postgres(sql), list(parameters))
            return PgResult([], cur.rowcount)


class _Reader:
    """``read()``: each statement on a connection borrowed for it alone (its own snapshot),
    or on this thread's open transaction."""

    def __init__(self, store: PostgresStore) -> None:
        self._store = store

    @property
    def dialect(self) -> Dialect:
        return POSTGRES

    def execute(self, sql: str, parameters: Args = (), /) -> PgResult:
        current = self._store._current()
        if current is not None:
            return current.execute(sql, parameters)
        with self._store._borrow() as raw:
            return PgConnection(
                raw, in_write=False, closed=self._store._is_closed, trace=self._store.trace
            ).execute(sql, parameters)

    def executemany(self, sql: str, parameters: Iterable[Args], /) -> PgResult:
        raise DatabaseError("executemany needs a write() transaction")


class PostgresStore(Store):
    """A PostgreSQL database behind a psycopg connection pool, with numbered migrations."""

    def __init__(
        self,
        url: str,
        migrations: Sequence[tuple[int, str]],
        *,
        clock: Callable[[], float] = time.time,
        pool_size: int = POOL_SIZE,
        pool_timeout: float = POOL_TIMEOUT_SECONDS,
        serialize_writes: bool = False,
    ) -> None:
        self.url = url
        self.serialize_writes = serialize_writes
        #: Called with every statement's text (the benchmarks count queries per pass with it).
        self.trace: Callable[[str], None] | None = None
        info = psycopg.conninfo.conninfo_to_dict(url)
        self.path = Path(
            f"{info.get('host', '')}:{info.get('port', '5432')}/{info.get('dbname', '')}"
        )
        self.clock = clock
        self.write_health = WriteHealth()
        self.deferred = DeferredWrites(self.path.name)
        self._local = threading.local()
        self._closed = False
        self._pool: psycopg_pool.ConnectionPool[Any] = psycopg_pool.ConnectionPool(
            url,
            min_size=1,
            max_size=max(1, pool_size),
            timeout=pool_timeout,
            kwargs={"autocommit": True},
            configure=self._configure,
            open=False,
            name=f"crt-pg-{self.path.name}",
        )
        with translated_pg():
            self._pool.open(wait=True, timeout=pool_timeout)
        self._migrations = list(migrations)
        try:
            self.migrate()
        except BaseException:
            self.close()
            raise

    @staticmethod
    def _configure(conn: psycopg.Connection[Any]) -> None:
        conn.cursor_factory = psycopg.ClientCursor
        conn.row_factory = _row_factory
        conn.adapters.register_dumper(bool, _BoolAsInt)
        conn.adapters.register_loader("numeric", FloatLoader)

    @property
    def dialect(self) -> Dialect:
        return POSTGRES

    # -- connections and transactions ---------------------------------------------------

    def _current(self) -> PgConnection | None:
        conn: PgConnection | None = getattr(self._local, "tx", None)
        return conn

    @contextmanager
    def _borrow(self) -> Iterator[psycopg.Connection[Any]]:
        if self._closed:
            raise DatabaseClosedError(f"database {self.path} is closed")
        with translated_pg():
            raw = self._pool.getconn()
        try:
            yield raw
        finally:
            self._pool.putconn(raw)

    @contextmanager
    def _transaction(self, begin: str, *, write: bool) -> Iterator[PgConnection]:
        if self._current() is not None:
            raise DatabaseError("cannot start a transaction within a transaction")
        with self._borrow() as raw:
            conn = PgConnection(raw, in_write=write, closed=self._is_closed, trace=self.trace)
            try:
                with translated_pg():
                    raw.execute(begin)
                    if write and self.serialize_writes:
                        raw.execute(f"SELECT pg_advisory_xact_lock({WRITE_LOCK})")
            except DatabaseError as exc:
                self._note_failure(exc, write)
                raise
            self._local.tx = conn
            try:
                yield conn
            except BaseException as exc:
                self._note_failure(exc, write)
                self._rollback(raw)
                raise
            finally:
                self._local.tx = None
            try:
                with translated_pg():
                    raw.execute("COMMIT")
            except DatabaseError as exc:
                self._note_failure(exc, write)
                self._rollback(raw)
                raise
        if write:
            self.write_health.succeeded()

    def write(self) -> AbstractContextManager[PgConnection]:
        """A ``READ COMMITTED`` transaction: committed on success, rolled back on any error."""
        return self._transaction("BEGIN", write=True)

    def snapshot(self) -> AbstractContextManager[PgConnection]:
        """A ``REPEATABLE READ`` read-only transaction: several SELECTs, one state."""
        return self._transaction("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", write=False)

    def _note_failure(self, exc: BaseException, write: bool) -> None:
        failure = classify(exc) if write else None
        if failure is not None:
            self.write_health.failed(failure)

    def _rollback(self, raw: psycopg.Connection[Any]) -> None:
        # The error that got us here is the one worth raising: a broken connection cannot
        # roll back, and the pool discards it when it comes back.
        try:
            if raw.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
                raw.execute("ROLLBACK")
        except DRIVER_ERRORS as exc:
            logger.info("%s: rollback failed (%s); the connection is discarded", self.path, exc)

    def read(self) -> _Reader:
        return _Reader(self)

    def query(self, sql: str, args: Args = ()) -> list[Row]:
        return self.read().execute(sql, args).fetchall()

    def query_one(self, sql: str, args: Args = ()) -> Row | None:
        return self.read().execute(sql, args).fetchone()

    def availability(self, probe_timeout: float = 0.25) -> DbUnavailable | None:
        """None when a write could be made now; else the latest failed write's problem."""
        if self._closed:
            return None
        return self.write_health.failure

    def close(self) -> None:
        """Close the pool. Idempotent and one-way: later use raises DatabaseClosedError."""
        self.deferred.close()
        if self._closed:
            return
        self._closed = True
        self._pool.close()

    @property
    def closed(self) -> bool:
        return self._closed

    def _is_closed(self) -> bool:
        return self._closed

    # -- schema --------------------------------------------------------------------------

    def migrate(self) -> int:
        """Apply pending migrations under an advisory lock (hosts starting together wait)."""
        with self.write() as tx:
            tx.execute(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK})")
            tx.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, "
                "applied_at DOUBLE PRECISION NOT NULL)"
            )
            applied = {
                int(r[0]) for r in tx.execute("SELECT version FROM schema_migrations").fetchall()
            }
            for version, sql in self._migrations:
                if version in applied:
                    continue
                # Migration text is PostgreSQL's own (db/pg_migrations.py): sent as it is.
                with translated_pg():
                    tx.raw.execute(sql)
                tx.execute(
                    "INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)",
                    (version, self.clock()),
                )
                logger.info("%s: applied migration %d", self.path, version)
        row = self.query_one("SELECT MAX(version) FROM schema_migrations")
        return int(row[0] or 0) if row else 0
