"""Store: what every backend of a database offers the repositories (docs/storage.md).

:class:`~crt_loops.db.sqlite.SQLiteStore` and :class:`~crt_loops.db.postgres.PostgresStore`
implement it; :class:`~crt_loops.db.session.SessionDB` is one of them chosen by the URL it is
opened with. The transaction rules are the same on both: ``write()`` commits on success and
rolls back on any exception, a read outside ``snapshot()`` is its own snapshot, and no
transaction waits on the network.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path

from crt_loops.db.availability import DbUnavailable, WriteHealth
from crt_loops.db.conn import Args, Connection, Dialect, Row
from crt_loops.db.deferred import DeferredWrites

__all__ = ["Store"]


class Store(ABC):
    """One database: transactions, reads, migrations, health."""

    #: Where it lives: a file for SQLite, ``host:port/db`` for PostgreSQL (for log lines).
    path: Path
    clock: Callable[[], float]
    write_health: WriteHealth
    deferred: DeferredWrites

    @property
    @abstractmethod
    def dialect(self) -> Dialect:
        """Whose SQL the connections speak."""

    @abstractmethod
    def write(self) -> AbstractContextManager[Connection]:
        """A write transaction: committed on success, rolled back on any error."""

    @abstractmethod
    def snapshot(self) -> AbstractContextManager[Connection]:
        """A read transaction: several SELECTs that see one consistent state."""

    @abstractmethod
    def read(self) -> Connection:
        """A connection whose every statement is its own snapshot (storage modules only)."""

    @abstractmethod
    def query(self, sql: str, args: Args = ()) -> list[Row]:
        """Every row of one read statement."""

    @abstractmethod
    def query_one(self, sql: str, args: Args = ()) -> Row | None:
        """The first row of one read statement, or None."""

    @abstractmethod
    def migrate(self) -> int:
        """Apply pending migrations; return the schema version."""

    @abstractmethod
    def availability(self) -> DbUnavailable | None:
        """None when a write could be made now; else why not."""

    @abstractmethod
    def close(self) -> None:
        """Idempotent and one-way: later use raises DatabaseClosedError."""

    @property
    @abstractmethod
    def closed(self) -> bool: ...
