"""SessionDB: schema, thread ids, watermarks, leases, and no lost updates under threads."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import psycopg
import pytest
from support.clock import FakeClock

from crt_loops.db.errors import ConstraintViolation
from crt_loops.db.session import (
    DEFAULT_THREAD,
    LIST_THREADS_SQL,
    DatabaseClosedError,
    InvalidThreadId,
    SessionDB,
    ThreadNotFound,
    check_thread_id,
)


@pytest.mark.sqlite_only
def test_default_thread_and_seed_columns_exist(db: SessionDB) -> None:
    assert db.thread_exists(DEFAULT_THREAD)
    cols = {r[1] for r in db.read().execute("PRAGMA table_info(thread_sessions)")}
    assert {
        "heartbeat_config_json",
        "heartbeat_last_run",
        "heartbeat_last_summary",
        "heartbeat_last_actions_json",
    } <= cols
    mode = db.read().execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"
    assert db.read().execute("PRAGMA foreign_keys").fetchone()[0] == 1


def test_migrations_are_idempotent_across_reopen(tmp_path: Path, clock: FakeClock) -> None:
    first = SessionDB(tmp_path / "x.db", clock=clock)
    version = first.migrate()
    first.add_message("default", "user", "hello")
    first.close()
    second = SessionDB(tmp_path / "x.db", clock=clock)
    try:
        assert second.migrate() == version
        assert [m.content for m in second.list_messages("default")] == ["hello"]
    finally:
        second.close()


@pytest.mark.parametrize("bad", ["", "a" * 65, "../etc", "has space", "ünï", "a/b", "x;y"])
def test_thread_ids_are_checked_never_rewritten(bad: str) -> None:
    with pytest.raises(InvalidThreadId, match="1-64"):
        check_thread_id(bad)


def test_messages_need_an_existing_thread(db: SessionDB) -> None:
    with pytest.raises(ThreadNotFound):
        db.add_message("nope", "user", "hi")
    # The driver's error is translated at the storage layer's edge and kept as the cause.
    with pytest.raises(ConstraintViolation) as refused:
        db.add_message("default", "robot", "hi")
    driver = sqlite3.IntegrityError if db.dialect == "sqlite" else psycopg.IntegrityError
    assert isinstance(refused.value.__cause__, driver)


def test_get_never_creates(db: SessionDB) -> None:
    assert db.get_thread("ghost") is None
    assert not db.thread_exists("ghost")
    assert db.count_threads() == 1


def test_watermark_query_sees_only_new_work(db: SessionDB) -> None:
    db.ensure_thread("a")
    db.ensure_thread("b")
    m1 = db.add_message("a", "user", "one")
    m2 = db.add_message("b", "user", "two")
    assert db.threads_with_new_messages("reflection") == [("a", 0, m1.id), ("b", 0, m2.id)]
    db.set_thread_watermark("reflection", "a", m1.id)
    assert db.threads_with_new_messages("reflection") == [("b", 0, m2.id)]
    db.set_thread_watermark("reflection", "b", m2.id)
    db.advance_loop_watermark("reflection", m2.id)
    assert db.threads_with_new_messages("reflection") == []
    # another loop's progress is its own
    assert len(db.threads_with_new_messages("personality")) == 2
    # watermarks never go backwards
    db.advance_loop_watermark("reflection", 0)
    assert db.loop_watermark("reflection") == m2.id
    m3 = db.add_message("a", "user", "three")
    assert db.threads_with_new_messages("reflection") == [("a", m1.id, m3.id)]


@pytest.mark.sqlite_only
def test_watermark_query_uses_the_primary_key(db: SessionDB) -> None:
    plan = (
        db.read()
        .execute("EXPLAIN QUERY PLAN SELECT thread_id FROM messages WHERE id > 5")
        .fetchall()
    )
    assert any("USING INTEGER PRIMARY KEY" in str(tuple(r)) for r in plan)


def test_four_threads_read_modify_write_lose_nothing(tmp_path: Path) -> None:
    """docs/reference.md §2 trap: SELECT-then-UPDATE under BEGIN IMMEDIATE loses no increments."""
    db = SessionDB(tmp_path / "race.db")
    db.kv_set("counter", "0")
    per_thread = 250
    errors: list[BaseException] = []

    def work() -> None:
        try:
            for _ in range(per_thread):
                with db.write() as tx:
                    value = int(
                        tx.execute("SELECT value FROM kv WHERE key='counter'").fetchone()[0]
                    )
                    tx.execute("UPDATE kv SET value = ? WHERE key='counter'", (str(value + 1),))
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=work, name=f"rmw-{i}") for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    try:
        assert errors == []
        assert db.kv_get("counter") == str(4 * per_thread)
    finally:
        db.close()


def test_failed_write_rolls_back_and_connection_stays_usable(db: SessionDB) -> None:
    with pytest.raises(RuntimeError), db.write() as tx:
        tx.execute("INSERT INTO kv (key, value, updated_at) VALUES ('k', 'v', 0)")
        raise RuntimeError("abort")
    assert db.kv_get("k") is None
    db.kv_set("k", "v2")
    assert db.kv_get("k") == "v2"


def test_leases_one_owner_expiry_and_renewal(db: SessionDB, clock: FakeClock) -> None:
    assert db.acquire_lease("x", "a", 10)
    assert not db.acquire_lease("x", "b", 10)
    clock.advance(5)
    assert db.acquire_lease("x", "a", 10)  # renewal extends
    clock.advance(8)
    assert not db.acquire_lease("x", "b", 10)
    clock.advance(3)
    assert db.acquire_lease("x", "b", 10)  # expired: taken over
    assert db.lease_holder("x") == ("b", clock.now + 10)
    db.release_lease("x", "a")  # not the owner: no effect
    assert db.lease_holder("x") is not None
    db.release_lease("x", "b")
    assert db.lease_holder("x") is None


def test_close_is_idempotent_and_one_way(tmp_path: Path) -> None:
    db = SessionDB(tmp_path / "c.db")
    db.close()
    db.close()
    with pytest.raises(DatabaseClosedError):
        db.get_thread("default")


def test_delete_thread_cascades(db: SessionDB) -> None:
    db.ensure_thread("gone")
    db.add_message("gone", "user", "bye")
    assert db.delete_thread("gone")
    assert (
        db.read().execute("SELECT COUNT(*) FROM messages WHERE thread_id='gone'").fetchone()[0] == 0
    )
    assert not db.delete_thread("gone")


def test_thread_list_is_most_recent_first_then_by_id(db: SessionDB, clock: FakeClock) -> None:
    clock.advance(5)
    db.ensure_thread("b")
    clock.advance(5)
    db.ensure_thread("c")
    db.ensure_thread("a")  # the same updated_at as "c": the id decides
    listed = [t.thread_id for t in db.list_threads(limit=10)]
    # (The default thread's time is the migration's own clock, not this test's.)
    assert [t for t in listed if t != DEFAULT_THREAD] == ["a", "c", "b"]
    assert [t.thread_id for t in db.list_threads(limit=2, offset=1)] == listed[1:3]


@pytest.mark.sqlite_only
def test_thread_list_walks_its_index_instead_of_sorting(db: SessionDB) -> None:
    for i in range(50):
        db.ensure_thread(f"t{i:03d}")
    plan = " ".join(
        str(tuple(r)) for r in db.read().execute("EXPLAIN QUERY PLAN " + LIST_THREADS_SQL, (100, 0))
    )
    assert "ix_threads_updated" in plan and "TEMP B-TREE" not in plan, plan
