"""When a SQLite database cannot take a write, and what to tell the client.

A write fails for reasons that pass: another connection holds the write lock past the busy
timeout (``database is locked``), the disk is full, the file system answered an I/O error or
went read-only. :func:`classify` names them (a :class:`DbProblem` and how soon to retry);
anything else is a bug and stays an exception. :class:`WriteHealth` remembers the latest
failed write until a write succeeds again, so ``/health`` can say the DB is degraded even
between requests, and :func:`probe_write` asks SQLite for the write lock with a short timeout,
which is how ``/health`` sees a lock held by another process.
"""

from __future__ import annotations

import enum
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from crt_loops.db.errors import DatabaseBusy, DatabaseClosedError, DatabaseError, DatabaseFull

__all__ = ["DbProblem", "DbUnavailable", "WriteHealth", "classify", "probe_write"]

# SQLite's primary result codes (the low byte of an extended code).
_SQLITE_BUSY, _SQLITE_LOCKED, _SQLITE_READONLY, _SQLITE_IOERR, _SQLITE_FULL = 5, 6, 8, 10, 13
_SQLITE_CANTOPEN = 14


class DbProblem(enum.StrEnum):
    """Why the database cannot take a write right now.

    - busy: another connection holds the write lock past the busy timeout.
    - full: the disk (or the file size limit) is full.
    - io_error: the file system reported an I/O error, or the file could not be opened.
    - read_only: the file or its directory is read-only.
    """

    BUSY = "busy"
    FULL = "full"
    IO_ERROR = "io_error"
    READ_ONLY = "read_only"


_RETRY_AFTER = {
    DbProblem.BUSY: 5,
    DbProblem.FULL: 60,
    DbProblem.IO_ERROR: 30,
    DbProblem.READ_ONLY: 60,
}
_SENTENCES = {
    DbProblem.BUSY: "the database is busy: another connection holds its write lock",
    DbProblem.FULL: "the database cannot grow: the disk is full",
    DbProblem.IO_ERROR: "the database could not be written: the disk reported an I/O error",
    DbProblem.READ_ONLY: "the database is read-only",
}
_CODES = {
    _SQLITE_BUSY: DbProblem.BUSY,
    _SQLITE_LOCKED: DbProblem.BUSY,
    _SQLITE_FULL: DbProblem.FULL,
    _SQLITE_IOERR: DbProblem.IO_ERROR,
    _SQLITE_CANTOPEN: DbProblem.IO_ERROR,
    _SQLITE_READONLY: DbProblem.READ_ONLY,
}


@dataclass(frozen=True)
class DbUnavailable:
    """One failed write that may succeed later: its problem, SQLite's words, and when."""

    problem: DbProblem
    error: str
    at: float

    @property
    def retry_after(self) -> int:
        """Seconds a client should wait before trying again."""
        return _RETRY_AFTER[self.problem]

    def sentence(self) -> str:
        return f"{_SENTENCES[self.problem]} ({self.error}); retry in {self.retry_after} s"


def classify(exc: BaseException, *, now: float | None = None) -> DbUnavailable | None:
    """The passing problem behind a database error (the driver's ``sqlite3.Error``, or the
    :mod:`crt_loops.db.errors` exception it was translated to), or None for any other error:
    a bug, a broken constraint, a closed store."""
    if isinstance(exc, DatabaseError) and not isinstance(exc, DatabaseClosedError):
        cause = exc.__cause__
        if isinstance(cause, sqlite3.Error):
            return classify(cause, now=now)
        if isinstance(exc, DatabaseBusy | DatabaseFull):
            kind = DbProblem.BUSY if isinstance(exc, DatabaseBusy) else DbProblem.FULL
            return DbUnavailable(kind, str(exc)[:200], time.time() if now is None else now)
        return None
    if not isinstance(exc, sqlite3.Error):
        return None
    code = getattr(exc, "sqlite_errorcode", None)
    problem = _CODES.get(code & 0xFF) if isinstance(code, int) else None
    if problem is None:
        text = str(exc).lower()
        if "locked" in text or "busy" in text:
            problem = DbProblem.BUSY
        elif "disk is full" in text:
            problem = DbProblem.FULL
        else:
            return None
    return DbUnavailable(problem, str(exc)[:200], time.time() if now is None else now)


class WriteHealth:
    """The latest write failure that no successful write has cleared yet (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._failure: DbUnavailable | None = None
        self._succeeded_at: float | None = None  # time.monotonic() of the latest success

    def failed(self, failure: DbUnavailable) -> None:
        with self._lock:
            self._failure = failure

    def succeeded(self) -> None:
        self._succeeded_at = time.monotonic()
        if self._failure is not None:  # the common case takes no lock
            with self._lock:
                self._failure = None

    def succeeded_since(self, monotonic_time: float) -> bool:
        """Whether a write succeeded after ``monotonic_time`` (a ``time.monotonic()``)."""
        at = self._succeeded_at
        return at is not None and at > monotonic_time

    @property
    def failure(self) -> DbUnavailable | None:
        return self._failure


def probe_write(path: Path, timeout: float) -> DbUnavailable | None:
    """Take and drop the write lock of ``path`` on a fresh connection, waiting at most
    ``timeout`` seconds: None when a write could start now."""
    try:
        conn = sqlite3.connect(path, timeout=timeout, isolation_level=None)
    except sqlite3.Error as exc:
        return classify(exc) or DbUnavailable(DbProblem.IO_ERROR, str(exc)[:200], time.time())
    try:
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("ROLLBACK")
    except sqlite3.Error as exc:
        return classify(exc) or DbUnavailable(DbProblem.IO_ERROR, str(exc)[:200], time.time())
    finally:
        conn.close()
    return None
