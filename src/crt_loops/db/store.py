"""Store: what every backend of a database offers the repositories (docs/storage.md).

:class:`~crt_loops.db.sqlite.SQLiteStore` and :class:`~crt_loops.db.postgres.PostgresStore`
implement it; :class:`~crt_loops.db.session.SessionDB` is one of them chosen by the URL it is
opened with. The transaction rules are the same on both: ``write()`` commits on success and
rolls back on any exception, a read outside ``snapshot()`` is its own snapshot, and no
transaction waits on the network.

Inside ``write_batch()`` a backend may hold one transaction across several ``write()`` blocks of
the same thread (SQLite does: each block is a savepoint, so it still succeeds or fails alone),
committing when the batch is ``checkpoint()``-ed after ``max_seconds``, ``flush()``-ed, or left.
A backend that does not batch (PostgreSQL, where several hosts claim threads one by one) gives
a :class:`WriteBatch` that does nothing: each ``write()`` commits on its own, as outside one.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path

from crt_loops.db.availability import DbUnavailable, WriteHealth
from crt_loops.db.conn import Args, Connection, Dialect, Row
from crt_loops.db.deferred import DeferredWrites

__all__ = ["Store", "WriteBatch"]


class WriteBatch:
    """A thread's writes that commit together (:meth:`Store.write_batch`).

    This base class is the batch of a backend that does not batch: each ``write()`` has
    already committed, so there is never anything to commit here.
    """

    def checkpoint(self) -> None:
        """Commit what is pending if it has waited ``max_seconds``; call between items."""

    def flush(self) -> None:
        """Commit what is pending now: before anything that waits on the network."""


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

    def write_batch(self, max_seconds: float) -> AbstractContextManager[WriteBatch]:
        """``write()`` blocks of this thread that may share one transaction (module docstring):
        it is held at most ``max_seconds`` past the first write, if ``checkpoint()`` is called
        between items, and committed when the block is left, even by an exception (each
        finished ``write()`` block was a whole unit, as it would have been on its own)."""
        return nullcontext(WriteBatch())

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
