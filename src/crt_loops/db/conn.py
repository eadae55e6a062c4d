"""What a repository function sees of a backend: a connection, its cursors and its rows.

Repository modules (docs/storage.md) are written once against these protocols. SQLite's own
``sqlite3.Connection`` (through :class:`SQLiteConnection`, which only adds ``dialect``) meets
them as it is; PostgreSQL's adapter (:mod:`crt_loops.db.postgres`) translates the shared SQL
text (``?`` and ``:name`` placeholders, SQLite's two-argument ``MAX``/``MIN``) and returns
rows that read by name and by index, like ``sqlite3.Row``. Where the dialects differ in more
than that, a repository picks its SQL by ``dialect``.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any, Literal, Protocol, TypeAlias

__all__ = [
    "POSTGRES",
    "SQLITE",
    "Args",
    "Connection",
    "Cursor",
    "Dialect",
    "Row",
    "SQLiteConnection",
]

Dialect: TypeAlias = Literal["sqlite", "postgres"]
SQLITE: Dialect = "sqlite"
POSTGRES: Dialect = "postgres"

#: A row: ``row["name"]``, ``row[0]``, unpacking and ``len()`` work on both backends.
Row: TypeAlias = Any
Args: TypeAlias = Sequence[Any] | Mapping[str, Any]


class Cursor(Protocol):
    """The result of one statement."""

    @property
    def rowcount(self) -> int: ...

    # Row | None, as Any: callers index the row of an aggregate that always has one.
    def fetchone(self) -> Row: ...

    def fetchall(self) -> list[Row]: ...

    def __iter__(self) -> Iterator[Row]: ...


class Connection(Protocol):
    """A connection inside a transaction (``write()``, ``snapshot()``) or in autocommit
    (``read()``); ``dialect`` says whose SQL it speaks."""

    @property
    def dialect(self) -> Dialect: ...

    def execute(self, sql: str, parameters: Args = (), /) -> Cursor: ...

    def executemany(self, sql: str, parameters: Iterable[Args], /) -> Cursor: ...


class SQLiteConnection(sqlite3.Connection):
    """``sqlite3.Connection`` that names its dialect (passed as ``factory=`` to connect)."""

    @property
    def dialect(self) -> Dialect:
        return SQLITE
