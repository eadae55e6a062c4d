"""Store.write_batch: write() blocks of one thread that share a transaction (SQLite) and still
succeed or fail one by one, on either backend."""

from __future__ import annotations

import sqlite3

import pytest

from crt_loops.db.errors import DatabaseError
from crt_loops.db.session import SessionDB


def _titles(db: SessionDB) -> list[str]:
    return [str(r[0]) for r in db.query("SELECT title FROM thread_sessions ORDER BY title")]


def _add(db: SessionDB, title: str) -> None:
    with db.write() as tx:
        tx.execute(
            "INSERT INTO thread_sessions (thread_id, title, created_at, updated_at) "
            "VALUES (?, ?, 0, 0)",
            (title, title),
        )


def test_each_write_in_a_batch_succeeds_or_fails_alone(db: SessionDB) -> None:
    with db.write_batch(60.0) as batch:
        _add(db, "a")
        with pytest.raises(ValueError, match="boom"), db.write() as tx:
            tx.execute(
                "INSERT INTO thread_sessions (thread_id, title, created_at, updated_at) "
                "VALUES ('b', 'b', 0, 0)"
            )
            raise ValueError("boom")
        with pytest.raises(DatabaseError):
            _add(db, "a")  # the same key again: a driver error, translated as outside a batch
        _add(db, "c")
        assert "a" in _titles(db) and "c" in _titles(db)  # reads see the batch's writes
        batch.checkpoint()
    assert _titles(db) == ["", "a", "c"]


def test_leaving_a_batch_by_an_exception_keeps_the_finished_writes(db: SessionDB) -> None:
    with pytest.raises(RuntimeError, match="pass failed"), db.write_batch(60.0):
        _add(db, "a")
        raise RuntimeError("pass failed")
    assert _titles(db) == ["", "a"]
    _add(db, "b")  # and the connection is usable afterwards, outside a batch
    assert _titles(db) == ["", "a", "b"]


@pytest.mark.sqlite_only
def test_a_sqlite_batch_is_one_transaction_until_checkpoint_or_flush(db: SessionDB) -> None:
    other = sqlite3.connect(db.path, timeout=0)
    try:

        def seen() -> list[str]:
            return [r[0] for r in other.execute("SELECT title FROM thread_sessions ORDER BY 1")]

        with db.write_batch(60.0) as batch:
            _add(db, "a")
            _add(db, "b")
            batch.checkpoint()  # younger than 60 s: still pending
            assert seen() == [""]
            with pytest.raises(sqlite3.OperationalError, match="locked"):
                other.execute("BEGIN IMMEDIATE")
            batch.flush()
            assert seen() == ["", "a", "b"]
            other.execute("BEGIN IMMEDIATE")  # the write lock is free between writes
            other.execute("ROLLBACK")
            _add(db, "c")
        assert seen() == ["", "a", "b", "c"]
        with db.write_batch(0.0) as batch:
            _add(db, "d")
            batch.checkpoint()  # older than 0 s: committed
            assert seen()[-1] == "d"
    finally:
        other.close()


@pytest.mark.sqlite_only
def test_a_sqlite_batch_cannot_commit_inside_a_write(db: SessionDB) -> None:
    with (
        db.write_batch(60.0) as batch,
        db.write(),
        pytest.raises(RuntimeError, match="inside one of its write"),
    ):
        batch.flush()


@pytest.mark.sqlite_only
def test_a_batch_whose_transaction_sqlite_ended_fails_as_a_whole(db: SessionDB) -> None:
    # SQLite itself ends the whole transaction on some errors (a full disk, an I/O error): the
    # blocks that had succeeded are gone with it, so the batch must fail, not just one block.
    with (
        pytest.raises(DatabaseError, match="rolled back with writes"),
        db.write_batch(60.0) as batch,
    ):
        _add(db, "a")
        with pytest.raises(ValueError), db.write() as tx:
            tx.execute("ROLLBACK")  # what SQLite does on SQLITE_FULL
            raise ValueError("disk full")
        batch.checkpoint()
    assert _titles(db) == [""]
    _add(db, "b")
    assert _titles(db) == ["", "b"]
