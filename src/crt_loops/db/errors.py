"""The storage layer's exceptions: what callers outside ``crt_loops.db`` catch.

Driver errors are translated here, once, by the store's transaction and query methods
(:class:`crt_loops.db.sqlite.SQLiteStore`), and re-raised ``from`` the driver's exception so
the original stays in the traceback. Nothing outside the package catches ``sqlite3.*``; a second
backend maps its own driver's errors onto the same tree.

    DatabaseError                  any failure of a database statement or transaction
    ├── DatabaseClosedError        the store was used after ``close()`` (shutting down)
    ├── ConstraintViolation        a write broke a CHECK, UNIQUE, NOT NULL or FOREIGN KEY rule
    └── DatabaseUnavailable        the database could not run the statement right now
        ├── DatabaseBusy           another writer still held the lock when the busy timeout ran out
        └── DatabaseFull           the disk, or the file's size limit, is full

``DatabaseBusy`` and ``DatabaseFull`` are conditions of the machine, not of the request: an HTTP
edge answers them with 503 and a retry hint. ``DatabaseUnavailable`` is what the heartbeat
executor retries or records (its other members: I/O errors, a read-only file, a database that
cannot be opened). ``ConstraintViolation`` means a caller let invalid data through to the
database, a bug upstream; the rest of the driver's errors (a corrupt file, a misused API) are
plain ``DatabaseError``.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = [
    "ConstraintViolation",
    "DatabaseBusy",
    "DatabaseClosedError",
    "DatabaseError",
    "DatabaseFull",
    "DatabaseUnavailable",
    "translate",
    "translated",
]


class DatabaseError(Exception):
    """Raised when a database statement or transaction fails (the base of this module's tree)."""


class DatabaseClosedError(DatabaseError, RuntimeError):
    """Raised when a store is used after ``close()``.

    Also a ``RuntimeError``, as it was before the tree existed: using a closed store is a
    lifecycle mistake, and loops stop their pass on it instead of counting a failed thread.
    """


class ConstraintViolation(DatabaseError):
    """Raised when a write breaks a CHECK, UNIQUE, NOT NULL or FOREIGN KEY constraint."""


class DatabaseUnavailable(DatabaseError):
    """Raised when the database cannot run a statement now: locked, full, I/O, read-only."""


class DatabaseBusy(DatabaseUnavailable):
    """Raised when another connection still holds the write lock after the busy timeout."""


class DatabaseFull(DatabaseUnavailable):
    """Raised when a write needs space the disk (or the file's size limit) does not have."""


# SQLite's primary result codes (the low byte of an extended code such as SQLITE_BUSY_SNAPSHOT).
_SQLITE_BUSY = 5
_SQLITE_LOCKED = 6
_SQLITE_FULL = 13


def translate(exc: sqlite3.Error) -> DatabaseError:
    """The project's exception for a driver error (the caller raises it ``from exc``)."""
    code = getattr(exc, "sqlite_errorcode", None)
    primary = code & 0xFF if isinstance(code, int) else None
    text = str(exc)
    if isinstance(exc, sqlite3.ProgrammingError) and "closed database" in text:
        # close() from another thread while this one was between statements.
        return DatabaseClosedError(text)
    if isinstance(exc, sqlite3.IntegrityError):
        return ConstraintViolation(text)
    if primary in (_SQLITE_BUSY, _SQLITE_LOCKED) or "database is locked" in text:
        return DatabaseBusy(text)
    if primary == _SQLITE_FULL or "database or disk is full" in text:
        return DatabaseFull(text)
    if isinstance(exc, sqlite3.OperationalError):
        return DatabaseUnavailable(text)
    return DatabaseError(text)


@contextmanager
def translated() -> Iterator[None]:
    """Run the block with driver errors raised as this module's exceptions."""
    try:
        yield
    except sqlite3.Error as exc:
        raise translate(exc) from exc
