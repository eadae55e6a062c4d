"""Hold the embedded Ledger's database write lock from the test process, so that the Ledger's
next write waits on SQLite's busy timeout: a Ledger call held in flight at a chosen moment."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path


class LedgerLock:
    """Holds the Ledger DB's write lock from the test process when armed by the fake model."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.armed = threading.Event()
        self.conn: sqlite3.Connection | None = None
        self._lock = threading.Lock()

    def take(self) -> None:
        with self._lock:
            if self.conn is None and self.armed.is_set():
                self.armed.clear()
                conn = sqlite3.connect(self.path, check_same_thread=False, timeout=5)
                conn.isolation_level = None
                conn.execute("BEGIN IMMEDIATE")
                self.conn = conn

    def release(self) -> None:
        with self._lock:
            self.armed.clear()
            if self.conn is not None:
                self.conn.execute("ROLLBACK")
                self.conn.close()
                self.conn = None
