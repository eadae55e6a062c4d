"""Hold the Ledger's database against writes from the test process, so that the Ledger's next
post waits: a Ledger call held in flight at a chosen moment.

:class:`LedgerLock` holds the embedded Ledger's SQLite write lock (its POST waits on SQLite's
busy timeout); :class:`PgLedgerLock` holds a lock on the ``posts`` table of a Ledger on
PostgreSQL (its INSERT waits, and with it every other Ledger write, which the Ledger serialises:
docs/storage.md, "The Ledger"). Both are taken by the fake model as it answers, once armed.
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path
from typing import Protocol

import psycopg


class _Held(Protocol):
    def close(self) -> None: ...


class _HeldLock:
    """Armed from the test, taken once by :meth:`take`, given back by :meth:`release`."""

    def __init__(self) -> None:
        self.armed = threading.Event()
        self.conn: _Held | None = None
        self._lock = threading.Lock()

    @property
    def held(self) -> bool:
        return self.conn is not None

    def take(self) -> bool:
        """Take the lock if armed and not held; True when this call took it."""
        with self._lock:
            if self.conn is None and self.armed.is_set():
                self.armed.clear()
                self.conn = self._open()
                return True
            return False

    def release(self) -> None:
        with self._lock:
            self.armed.clear()
            if self.conn is not None:
                self._rollback(self.conn)
                self.conn.close()
                self.conn = None

    def _open(self) -> _Held:
        raise NotImplementedError

    def _rollback(self, conn: _Held) -> None:
        raise NotImplementedError


class LedgerLock(_HeldLock):
    """Holds the Ledger DB's SQLite write lock (``BEGIN IMMEDIATE``) when armed."""

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path = path

    def _open(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, check_same_thread=False, timeout=5)
        conn.isolation_level = None
        conn.execute("BEGIN IMMEDIATE")
        return conn

    def _rollback(self, conn: _Held) -> None:
        assert isinstance(conn, sqlite3.Connection)
        conn.execute("ROLLBACK")


class PgLedgerLock(_HeldLock):
    """Holds ``posts`` of a Ledger on PostgreSQL in a mode that blocks INSERT (not SELECT)."""

    def __init__(self, url: str) -> None:
        super().__init__()
        self.url = url

    def _open(self) -> psycopg.Connection[tuple[object, ...]]:
        conn = psycopg.connect(self.url)  # not autocommit: the lock lasts until the rollback
        conn.execute("LOCK TABLE posts IN SHARE ROW EXCLUSIVE MODE")
        return conn

    def _rollback(self, conn: _Held) -> None:
        assert isinstance(conn, psycopg.Connection)
        conn.rollback()
