"""SQLiteStore: one SQLite file, safe across threads and processes.

Transaction discipline (docs/storage.md): every connection runs in autocommit mode
(``isolation_level=None``) with WAL, a busy timeout and foreign keys; every transaction that
writes starts with ``BEGIN IMMEDIATE`` through :meth:`SQLiteStore.write`, so a read-then-write
can neither lose an update nor fail with "database is locked" when another writer got in between.
Each thread gets its own connection, created inside that thread. Schema changes are numbered
migrations, applied once even when several processes start together.

Driver errors leave :meth:`~SQLiteStore.write`, :meth:`~SQLiteStore.snapshot`,
:meth:`~SQLiteStore.query` and :meth:`~SQLiteStore.query_one` as the exceptions of
:mod:`crt_loops.db.errors`. :meth:`~SQLiteStore.read` hands out the raw connection: only the
storage modules use it.

Both the session DB and the embedded Ledger's DB are SQLiteStores.
"""

from __future__ import annotations

import logging
import re
import sqlite3
import threading
import time
import weakref
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from crt_loops.db.availability import DbUnavailable, WriteHealth, classify, probe_write
from crt_loops.db.conn import SQLITE, Args, Dialect, SQLiteConnection
from crt_loops.db.deferred import DeferredWrites
from crt_loops.db.errors import DatabaseClosedError, DatabaseError, translate, translated
from crt_loops.db.store import Store, WriteBatch

__all__ = ["BUSY_TIMEOUT_MS", "DatabaseClosedError", "SQLiteStore"]

logger = logging.getLogger(__name__)

BUSY_TIMEOUT_MS = 5000
#: How long :meth:`SQLiteStore.close` waits for a statement still running on another thread.
CLOSE_WAIT_SECONDS = 0.5
#: How long ``/health`` waits for the write lock before it calls the database busy.
PROBE_TIMEOUT_SECONDS = 0.25


class SQLiteStore(Store):
    """A SQLite file with per-thread connections, ``BEGIN IMMEDIATE`` writes and migrations."""

    def __init__(
        self,
        path: Path | str,
        migrations: Sequence[tuple[int, str]],
        *,
        clock: Callable[[], float] = time.time,
        busy_timeout_ms: int = BUSY_TIMEOUT_MS,
    ) -> None:
        self.path = Path(path)
        self.clock = clock
        self.busy_timeout_ms = busy_timeout_ms
        self._local = threading.local()
        self._lock = threading.Lock()
        # (owning thread, connection): pruned when threads die, all closed by close().
        self._connections: list[tuple[weakref.ref[threading.Thread], SQLiteConnection]] = []
        self._closed = False
        #: The latest failed write (locked, disk full, ...) until a write succeeds again.
        self.write_health = WriteHealth()
        #: Writes to retry once the database is writable again (see crt_loops.db.deferred).
        self.deferred = DeferredWrites(self.path.name)
        if str(path) != ":memory:":
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self._migrations = list(migrations)
        self.migrate()

    @property
    def dialect(self) -> Dialect:
        return SQLITE

    # -- connections and transactions ---------------------------------------------------

    def _connect(self) -> SQLiteConnection:
        conn = sqlite3.connect(
            self.path,
            isolation_level=None,
            check_same_thread=False,
            timeout=self.busy_timeout_ms / 1000,
            factory=SQLiteConnection,
        )
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(f"PRAGMA busy_timeout={int(self.busy_timeout_ms)}")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA foreign_keys=ON")
        return conn

    def conn(self) -> SQLiteConnection:
        """This thread's connection (created on first use inside the thread)."""
        if self._closed:
            raise DatabaseClosedError(f"database {self.path} is closed")
        conn: SQLiteConnection | None = getattr(self._local, "conn", None)
        if conn is None:
            with translated():
                conn = self._connect()
            self._local.conn = conn
            with self._lock:
                alive = []
                for ref, other in self._connections:
                    owner = ref()
                    if owner is None or not owner.is_alive():
                        other.close()
                    else:
                        alive.append((ref, other))
                alive.append((weakref.ref(threading.current_thread()), conn))
                self._connections = alive
        return conn

    @contextmanager
    def write(self) -> Iterator[SQLiteConnection]:
        """A ``BEGIN IMMEDIATE`` transaction: committed on success, rolled back on any error.

        A driver error inside the block, or from BEGIN or COMMIT, leaves as a
        :class:`~crt_loops.db.errors.DatabaseError`; any other exception passes unchanged. A
        failure that may pass (locked, disk full: see :mod:`crt_loops.db.availability`) is
        remembered in ``write_health`` until a later write commits. Inside this thread's
        :meth:`write_batch`, the block is a savepoint of the batch's transaction instead.
        """
        batch: _SQLiteBatch | None = getattr(self._local, "batch", None)
        if batch is not None:
            with batch.write() as tx:
                yield tx
            return
        conn = self.conn()
        self._begin(conn)
        try:
            yield conn
        except sqlite3.Error as exc:
            self._note_failure(exc)
            self._rollback(conn)
            raise translate(exc) from exc
        except BaseException as exc:
            self._note_failure(exc)
            self._rollback(conn)
            raise
        self._commit(conn)

    def _begin(self, conn: SQLiteConnection) -> None:
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            self._note_failure(exc)
            raise translate(exc) from exc

    def _commit(self, conn: SQLiteConnection) -> None:
        try:
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            # A COMMIT that fails (disk full while writing the WAL) leaves the transaction
            # open, holding the write lock against every other connection: end it here.
            self._note_failure(exc)
            self._rollback(conn)
            raise translate(exc) from exc
        self.write_health.succeeded()

    @contextmanager
    def write_batch(self, max_seconds: float) -> Iterator[WriteBatch]:
        """This thread's ``write()`` blocks share one ``BEGIN IMMEDIATE`` transaction, each a
        savepoint (Store.write_batch). It begins with the first write, so reads before it are
        plain autocommit reads; reads after it see the batch's writes, as they would have seen
        them committed. A batch inside a batch is the outer one."""
        outer: _SQLiteBatch | None = getattr(self._local, "batch", None)
        if outer is not None:
            yield outer
            return
        batch = _SQLiteBatch(self, self.conn(), max_seconds)
        self._local.batch = batch
        try:
            yield batch
        except BaseException:
            self._local.batch = None
            batch.flush_after_error()
            raise
        self._local.batch = None
        batch.flush()

    def _note_failure(self, exc: BaseException) -> None:
        failure = classify(exc)
        if failure is not None:
            self.write_health.failed(failure)

    def availability(self, probe_timeout: float = PROBE_TIMEOUT_SECONDS) -> DbUnavailable | None:
        """None when a write could be made now; else why not (the write lock is held, or the
        latest write failed and none has succeeded since)."""
        if self._closed:
            return None
        began = time.monotonic()
        probed = probe_write(self.path, probe_timeout) if str(self.path) != ":memory:" else None
        if probed is not None and self.write_health.succeeded_since(began):
            # Our own writes got the lock while the probe waited: that is contention (a queue
            # of short writers outlasting SQLite's busy back-off), not a lock held elsewhere.
            probed = None
        return probed or self.write_health.failure

    def _rollback(self, conn: sqlite3.Connection) -> None:
        # The error that got us here is the one worth raising, so nothing here may replace it:
        # a failed statement may already have ended the transaction, and close() from another
        # thread discards it with the connection.
        try:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
        except sqlite3.ProgrammingError:
            logger.info("%s: closed inside a transaction, nothing to roll back", self.path)

    def read(self) -> SQLiteConnection:
        """This thread's connection for reads (autocommit: each statement is its own snapshot).

        Errors of statements run on it are the driver's: prefer :meth:`query`.
        """
        return self.conn()

    def query(self, sql: str, args: Args = ()) -> list[sqlite3.Row]:
        """Every row of one read statement (its own snapshot)."""
        conn = self.conn()
        with translated():
            return conn.execute(sql, args).fetchall()

    def query_one(self, sql: str, args: Args = ()) -> sqlite3.Row | None:
        """The first row of one read statement, or None."""
        conn = self.conn()
        with translated():
            row: sqlite3.Row | None = conn.execute(sql, args).fetchone()
            return row

    @contextmanager
    def snapshot(self) -> Iterator[SQLiteConnection]:
        """A read transaction: several SELECTs that see one consistent state."""
        conn = self.conn()
        batch: _SQLiteBatch | None = getattr(self._local, "batch", None)
        if batch is not None and batch.open:
            yield conn  # inside the batch's transaction: its reads already see one state
            return
        with translated():
            conn.execute("BEGIN")
        try:
            yield conn
        except sqlite3.Error as exc:
            raise translate(exc) from exc
        finally:
            with translated():
                conn.execute("COMMIT")

    def close(self) -> None:
        """Close every connection. Idempotent and one-way: later use raises DatabaseClosedError.

        A connection another thread is using mid-statement (waiting out the busy timeout on a
        lock held elsewhere, say) cannot close before that statement ends; the stop does not
        wait for it beyond ``CLOSE_WAIT_SECONDS``: it closes when the statement ends.
        """
        self.deferred.close()
        with self._lock:
            if self._closed:
                return
            self._closed = True
            connections = [conn for _, conn in self._connections]
            self._connections = []
        self._local = threading.local()

        def close_all() -> None:
            for conn in connections:
                conn.close()

        closer = threading.Thread(target=close_all, name=f"close-{self.path.name}", daemon=True)
        closer.start()
        closer.join(CLOSE_WAIT_SECONDS)
        if closer.is_alive():
            logger.warning(
                "%s: a statement was still running at close; its connection closes when it ends",
                self.path.name,
            )

    @property
    def closed(self) -> bool:
        return self._closed

    # -- schema --------------------------------------------------------------------------

    def migrate(self) -> int:
        """Apply pending migrations; return the schema version."""
        with self.write() as conn:
            conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, "
                "applied_at REAL NOT NULL)"
            )
        applied = {r[0] for r in self.query("SELECT version FROM schema_migrations")}
        for version, sql in self._migrations:
            if version in applied:
                continue
            with self.write() as tx:
                # Re-check inside the lock: another process may have migrated meanwhile.
                if tx.execute(
                    "SELECT 1 FROM schema_migrations WHERE version = ?", (version,)
                ).fetchone():
                    continue
                for statement in _split_sql(sql):
                    tx.execute(statement)
                tx.execute(
                    "INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)",
                    (version, self.clock()),
                )
            logger.info("%s: applied migration %d", self.path, version)
        row = self.query_one("SELECT MAX(version) FROM schema_migrations")
        return int(row[0] or 0) if row else 0


class _SQLiteBatch(WriteBatch):
    """One thread's batched writes on its connection (SQLiteStore.write_batch).

    Writing a page to the WAL is most of a small transaction's cost, and a loop's pass wrote
    the same pages (messages interleaved across threads, the watermarks' table) once per
    thread of the conversation: 1,000 commits for a pass over 1,000 threads (bench/backlog.py).
    """

    def __init__(self, store: SQLiteStore, conn: SQLiteConnection, max_seconds: float) -> None:
        self._store = store
        self._conn = conn
        self._max_seconds = max_seconds
        self._opened_at: float | None = None  # time.monotonic() of BEGIN; None: none open
        self._depth = 0  # write() blocks open now (savepoints)
        # Set when SQLite ended the whole transaction (a full disk, an I/O error): the earlier
        # blocks' writes went with it although they had succeeded, so the batch must fail.
        self._lost: BaseException | None = None

    @property
    def open(self) -> bool:
        return self._opened_at is not None

    @contextmanager
    def write(self) -> Iterator[SQLiteConnection]:
        self._check()
        conn = self._conn
        if self._opened_at is None:
            self._store._begin(conn)
            self._opened_at = time.monotonic()
        name = f"batch_write_{self._depth}"
        with translated():
            conn.execute(f"SAVEPOINT {name}")
        self._depth += 1
        try:
            yield conn
        except BaseException as exc:
            self._undo(name, exc)
            if isinstance(exc, sqlite3.Error):
                raise translate(exc) from exc
            raise
        finally:
            self._depth -= 1
        try:
            conn.execute(f"RELEASE {name}")
        except sqlite3.Error as exc:
            self._undo(name, exc)
            raise translate(exc) from exc

    def _undo(self, name: str, exc: BaseException) -> None:
        """Roll back one write() block, as its own transaction would have been."""
        self._store._note_failure(exc)
        if not self._conn.in_transaction:
            self._lost, self._opened_at = exc, None
            return
        try:
            self._conn.execute(f"ROLLBACK TO {name}")
            self._conn.execute(f"RELEASE {name}")
        except sqlite3.Error as undo_exc:
            self._lost, self._opened_at = undo_exc, None
            self._store._rollback(self._conn)

    def _check(self) -> None:
        if self._lost is not None:
            raise DatabaseError(
                "a batched transaction was rolled back with writes that had succeeded: "
                f"{type(self._lost).__name__}: {self._lost}"
            ) from self._lost

    def checkpoint(self) -> None:
        self._check()
        if self._opened_at is not None and time.monotonic() - self._opened_at >= self._max_seconds:
            self.flush()

    def flush(self) -> None:
        self._check()
        if self._depth:
            raise RuntimeError("a write batch cannot commit inside one of its write() blocks")
        if self._opened_at is not None:
            self._opened_at = None
            self._store._commit(self._conn)

    def flush_after_error(self) -> None:
        """Leaving the batch by an exception: keep the blocks that finished (each was whole,
        and would have committed on its own), unless they are already lost."""
        if self._opened_at is None or self._lost is not None:
            return
        try:
            self.flush()
        except DatabaseError as exc:
            logger.warning("%s: could not commit a batch's writes: %s", self._store.path, exc)


_TRIGGER = re.compile(r"CREATE\s+(?:TEMP(?:ORARY)?\s+)?TRIGGER\b", re.IGNORECASE)
_TRIGGER_END = re.compile(r"\bEND$", re.IGNORECASE)


def _split_sql(script: str) -> list[str]:
    """Split a migration into statements: comment lines first (they may hold ';'), then on ';'
    (our migrations have no semicolons inside string literals), keeping each ``CREATE TRIGGER``
    whole: the statements of its ``BEGIN ... END`` body end in ';' too."""
    code = "\n".join(ln for ln in script.splitlines() if not ln.strip().startswith("--"))
    statements: list[str] = []
    pending: list[str] = []
    for part in code.split(";"):
        pending.append(part)
        text = ";".join(pending).strip()
        if _TRIGGER.match(text) and not _TRIGGER_END.search(text):
            continue
        if text:
            statements.append(text)
        pending = []
    return statements
