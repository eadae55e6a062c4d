"""Driver errors leave the storage layer as the project's own exceptions, once, ``from`` the
driver's; the connection stays usable afterwards."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from support.clock import FakeClock

from crt_loops.db.errors import (
    DatabaseBusy,
    DatabaseClosedError,
    DatabaseError,
    DatabaseFull,
    DatabaseUnavailable,
)
from crt_loops.db.leases import take_lease
from crt_loops.db.session import SessionDB


def test_locked_past_the_busy_timeout_is_database_busy(tmp_path: Path, clock: FakeClock) -> None:
    db = SessionDB(tmp_path / "busy.db", clock=clock, busy_timeout_ms=50)
    other = sqlite3.connect(db.path, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        with pytest.raises(DatabaseBusy) as busy:
            db.kv_set("k", "v")
        assert isinstance(busy.value, DatabaseUnavailable)
        assert isinstance(busy.value.__cause__, sqlite3.OperationalError)
        assert "locked" in str(busy.value)
        other.execute("ROLLBACK")
        db.kv_set("k", "v")
        assert db.kv_get("k") == "v"
    finally:
        other.close()
        db.close()


@pytest.mark.sqlite_only
def test_a_full_database_is_database_full_and_rolls_back(db: SessionDB) -> None:
    pages = db.query_one("PRAGMA page_count")
    assert pages is not None
    db.conn().execute(f"PRAGMA max_page_count = {int(pages[0])}")
    with pytest.raises(DatabaseFull) as full:
        db.add_message("default", "user", "x" * 200_000)
    assert isinstance(full.value.__cause__, sqlite3.OperationalError)
    db.conn().execute("PRAGMA max_page_count = 1073741823")
    assert db.list_messages("default") == []  # the failed write left nothing behind
    db.add_message("default", "user", "fits now")
    assert [m.content for m in db.list_messages("default")] == ["fits now"]


def test_closed_inside_a_transaction_is_database_closed(db: SessionDB) -> None:
    with pytest.raises(DatabaseClosedError) as closed, db.write() as tx:
        db.close()
        tx.execute("SELECT 1")
    assert isinstance(closed.value, DatabaseError)
    if db.dialect == "sqlite":
        assert isinstance(closed.value.__cause__, sqlite3.ProgrammingError)


def test_other_exceptions_pass_through_a_write_unchanged(db: SessionDB) -> None:
    with pytest.raises(KeyError), db.write() as tx:
        tx.execute("INSERT INTO kv (key, value, updated_at) VALUES ('k', 'v', 0)")
        raise KeyError("k")
    assert db.kv_get("k") is None


def test_one_lease_upsert_serves_renewing_and_exclusive_takers(
    db: SessionDB, clock: FakeClock
) -> None:
    assert db.acquire_lease("job", "a", 60)
    first = db.query_one("SELECT acquired_at, expires_at FROM leases WHERE name = 'job'")
    clock.advance(10)
    assert db.acquire_lease("job", "a", 60)  # renewing keeps when it was first acquired
    renewed = db.query_one("SELECT acquired_at, expires_at FROM leases WHERE name = 'job'")
    assert first is not None and renewed is not None
    assert renewed[0] == first[0] and renewed[1] == clock() + 60
    assert not db.acquire_lease("job", "b", 60)
    with db.write() as tx:  # an exclusive taker is refused even by its own unexpired lease
        assert not take_lease(tx, "job", "a", clock(), 60, renew=False)
    clock.advance(61)
    with db.write() as tx:
        assert take_lease(tx, "job", "b", clock(), 60, renew=False)
    holder = db.lease_holder("job")
    assert holder is not None and holder[0] == "b"
