"""Passing database problems, with real SQLite: a lock held by another connection, a full
database (``max_page_count`` makes SQLite answer SQLITE_FULL exactly as a full disk does), the
write-lock probe, and writes deferred until the database takes them."""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.waiting import wait_for

from crt_loops.db.availability import DbProblem, WriteHealth, classify, probe_write
from crt_loops.db.errors import ConstraintViolation, DatabaseError
from crt_loops.db.sqlite import SQLiteStore

MIGRATIONS = [(1, "CREATE TABLE notes (id INTEGER PRIMARY KEY, body BLOB NOT NULL)")]


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SQLiteStore]:
    s = SQLiteStore(tmp_path / "t.db", MIGRATIONS, busy_timeout_ms=50)
    yield s
    s.close()


@pytest.fixture
def locker(store: SQLiteStore) -> Iterator[sqlite3.Connection]:
    """Another connection, holding the write lock until the test commits it."""
    conn = sqlite3.connect(store.path, isolation_level=None)
    conn.execute("BEGIN IMMEDIATE")
    yield conn
    if conn.in_transaction:
        conn.execute("ROLLBACK")
    conn.close()


def insert(store: SQLiteStore, body: bytes = b"x") -> None:
    with store.write() as tx:
        tx.execute("INSERT INTO notes (body) VALUES (?)", (body,))


def count(store: SQLiteStore) -> int:
    return int(store.read().execute("SELECT COUNT(*) FROM notes").fetchone()[0])


def test_a_held_write_lock_is_busy_and_remembered_until_a_write_succeeds(
    store: SQLiteStore, locker: sqlite3.Connection
) -> None:
    with pytest.raises(DatabaseError) as caught:
        insert(store)
    failure = classify(caught.value)
    assert failure is not None and failure.problem is DbProblem.BUSY and failure.retry_after == 5
    assert "database is locked" in failure.sentence()
    assert store.write_health.failure is not None
    assert store.availability() is not None
    locker.execute("COMMIT")
    insert(store)
    assert store.write_health.failure is None and store.availability() is None


def test_a_full_database_is_full_and_holds_no_lock(store: SQLiteStore, tmp_path: Path) -> None:
    conn = store.conn()
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    conn.execute(f"PRAGMA max_page_count = {pages}")
    with pytest.raises(DatabaseError) as caught:
        insert(store, b"x" * 200_000)
    failure = classify(caught.value)
    assert failure is not None and failure.problem is DbProblem.FULL, caught.value
    assert store.write_health.failure is not None
    assert not conn.in_transaction  # rolled back: other writers are not locked out
    other = sqlite3.connect(store.path, timeout=0, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    other.execute("ROLLBACK")
    other.close()
    conn.execute("PRAGMA max_page_count = 1073741823")
    insert(store)
    assert store.write_health.failure is None


def test_other_errors_are_bugs_not_passing_problems(store: SQLiteStore) -> None:
    with pytest.raises(DatabaseError) as caught:
        store.query("SELECT nope FROM notes")
    assert classify(caught.value) is None
    assert classify(ValueError("x")) is None


def test_the_probe_sees_a_lock_held_by_another_connection(
    store: SQLiteStore, locker: sqlite3.Connection
) -> None:
    failure = probe_write(store.path, 0.05)
    assert failure is not None and failure.problem is DbProblem.BUSY
    locker.execute("COMMIT")
    assert probe_write(store.path, 0.05) is None


def test_a_deferred_write_lands_once_the_lock_is_released(
    store: SQLiteStore, locker: sqlite3.Connection, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    store.deferred.submit("one note", lambda: insert(store, b"late"))
    assert store.deferred.pending == 1
    wait_for(lambda: "database unavailable" in caplog.text, timeout=5)
    locker.execute("COMMIT")
    wait_for(lambda: store.deferred.pending == 0, timeout=10)
    assert count(store) == 1
    assert "recorded after" in caplog.text
    wait_for(lambda: store.deferred._thread is None, timeout=5)  # no idle retry thread


def test_a_deferred_write_that_fails_for_good_is_logged_and_dropped(
    store: SQLiteStore, caplog: pytest.LogCaptureFixture
) -> None:
    def broken() -> None:
        raise ConstraintViolation("NOT NULL constraint failed")

    store.deferred.submit("a broken record", broken)
    wait_for(lambda: store.deferred.pending == 0, timeout=10)
    assert "could not record a broken record" in caplog.text


def test_close_stops_retrying_and_says_what_was_lost(
    store: SQLiteStore, locker: sqlite3.Connection, caplog: pytest.LogCaptureFixture
) -> None:
    store.deferred.submit("the last run", lambda: insert(store))
    store.close()
    assert "not recorded before shutdown: the last run" in caplog.text
    assert store.deferred.pending == 0


def test_write_health_says_whether_a_write_got_through_since_a_moment() -> None:
    health = WriteHealth()
    before = time.monotonic()
    assert not health.succeeded_since(before)
    health.succeeded()
    assert health.succeeded_since(before)
    assert not health.succeeded_since(time.monotonic())


def test_a_lock_held_elsewhere_is_busy_even_right_after_our_own_writes(
    store: SQLiteStore,
) -> None:
    # Our writes before the probe do not make a lock held now look like contention.
    insert(store)
    conn = sqlite3.connect(store.path, isolation_level=None)
    conn.execute("BEGIN IMMEDIATE")
    try:
        failure = store.availability(probe_timeout=0.05)
    finally:
        conn.execute("ROLLBACK")
        conn.close()
    assert failure is not None and failure.problem is DbProblem.BUSY
