"""Opening a database on either backend, and the facade SessionDB and LedgerStore share.

:func:`open_store` picks the backend from the target: a ``postgresql://`` URL opens a
:class:`~crt_loops.db.postgres.PostgresStore` (psycopg is imported only then: it is the
optional ``postgres`` extra), anything else a SQLite file. :class:`StoreFacade` is a Store that
forwards to the one it opened, so a database class (``SessionDB``, ``LedgerStore``) adds its
records' methods once, whatever the backend.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

from crt_loops.db.availability import DbUnavailable
from crt_loops.db.conn import Args, Connection, Dialect, Row, SQLiteConnection
from crt_loops.db.sqlite import BUSY_TIMEOUT_MS, SQLiteStore
from crt_loops.db.store import Store, WriteBatch

__all__ = ["Migrations", "MissingDriver", "StoreFacade", "is_postgres_url", "open_store"]


class MissingDriver(RuntimeError):
    """Raised when a ``postgresql://`` URL is given but psycopg (the ``postgres`` extra) is not
    installed."""


Migrations = Sequence[tuple[int, str]]


def is_postgres_url(target: object) -> bool:
    return isinstance(target, str) and target.startswith(("postgresql://", "postgres://"))


def open_store(
    target: Path | str,
    *,
    sqlite_migrations: Migrations,
    pg_migrations: Migrations,
    clock: Callable[[], float] = time.time,
    busy_timeout_ms: int = BUSY_TIMEOUT_MS,
    pool_size: int | None = None,
    serialize_writes: bool = False,
) -> Store:
    """The backend for ``target``: a ``postgresql://`` URL or a SQLite path.

    ``serialize_writes``: on PostgreSQL, every write transaction first takes one advisory
    lock, as SQLite's ``BEGIN IMMEDIATE`` does (for a schema whose rules assume it).
    """
    if is_postgres_url(target):
        try:
            from crt_loops.db.postgres import POOL_SIZE, PostgresStore
        except ModuleNotFoundError as exc:
            raise MissingDriver(
                f"a postgresql:// database needs psycopg ({exc.name} is missing): "
                "pip install -e '.[postgres]'"
            ) from exc

        return PostgresStore(
            str(target),
            pg_migrations,
            clock=clock,
            pool_size=pool_size or POOL_SIZE,
            serialize_writes=serialize_writes,
        )
    return SQLiteStore(target, sqlite_migrations, clock=clock, busy_timeout_ms=busy_timeout_ms)


class StoreFacade(Store):
    """A Store that forwards every call to ``backend``."""

    def __init__(self, backend: Store, clock: Callable[[], float]) -> None:
        self.backend = backend
        self.path = backend.path
        self.clock = clock
        self.write_health = backend.write_health
        self.deferred = backend.deferred
        #: Write blocks and batches this process has ended (committed or not). A short-lived
        #: copy of what the DB said (api/snapshots.py) is stale once this moved past its own
        #: count. Inside a write batch (a thinking loop's pass) a block's writes commit at the
        #: batch's checkpoint or end, so they may be seen up to that copy's bound (1 s) late.
        self.writes_ended = 0

    @property
    def dialect(self) -> Dialect:
        return self.backend.dialect

    @contextmanager
    def write(self) -> Iterator[Connection]:
        try:
            with self.backend.write() as tx:
                yield tx
        finally:
            # After the commit, never before it: a reader that read the old rows must not
            # record them as current.
            self.writes_ended += 1

    @contextmanager
    def write_batch(self, max_seconds: float) -> Iterator[WriteBatch]:
        try:
            with self.backend.write_batch(max_seconds) as batch:
                yield batch
        finally:
            self.writes_ended += 1  # its last commit is at its end

    def snapshot(self) -> AbstractContextManager[Connection]:
        return self.backend.snapshot()

    def read(self) -> Connection:
        return self.backend.read()

    def query(self, sql: str, args: Args = ()) -> list[Row]:
        return self.backend.query(sql, args)

    def query_one(self, sql: str, args: Args = ()) -> Row | None:
        return self.backend.query_one(sql, args)

    def migrate(self) -> int:
        return self.backend.migrate()

    def availability(self) -> DbUnavailable | None:
        return self.backend.availability()

    def close(self) -> None:
        self.backend.close()

    @property
    def closed(self) -> bool:
        return self.backend.closed

    def conn(self) -> SQLiteConnection:
        """This thread's SQLite connection (SQLite only: tests that inspect the file use it)."""
        if not isinstance(self.backend, SQLiteStore):
            raise TypeError(f"{self.path} is not a SQLite database")
        return self.backend.conn()
