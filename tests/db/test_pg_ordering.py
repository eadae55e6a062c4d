"""PostgreSQL only: ids of the watermarked tables commit in id order (docs/storage.md).

A sequence hands out ids before commit, so without the advisory lock a second writer's id 2 could
commit while id 1 is still in flight; a pass reading ``committed_high_id`` = 2 would then raise
its watermark past row 1 before it ever became visible, and row 1 would never be processed.
"""

from __future__ import annotations

import threading

import pytest
from support.waiting import wait_for

from crt_loops.db import progress
from crt_loops.db.session import SessionDB

pytestmark = pytest.mark.postgres


@pytest.fixture
def pg(db_url: str) -> SessionDB:
    return SessionDB(db_url)


def _waiting_for_advisory_lock(db: SessionDB) -> bool:
    row = db.query_one("SELECT COUNT(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted")
    return bool(row and row[0])


def test_a_later_insert_waits_for_an_earlier_one_in_flight(pg: SessionDB) -> None:
    other = SessionDB(pg.backend.url)  # type: ignore[attr-defined]
    try:
        second: list[int] = []
        with pg.write() as tx:
            first = tx.execute(
                "INSERT INTO messages (thread_id, role, content, created_at) "
                "VALUES ('default', 'user', 'first', 0) RETURNING id"
            ).fetchone()[0]

            def write_second() -> None:
                second.append(other.add_message("default", "user", "second").id)

            writer = threading.Thread(target=write_second, name="second-writer")
            writer.start()
            # The second insert is queued behind this transaction, not committed beside it.
            wait_for(lambda: _waiting_for_advisory_lock(other), timeout=10)
            assert not second
            assert progress.committed_high_id(other, "messages") == 0
        writer.join(timeout=10)
        assert second and second[0] > first
        assert progress.committed_high_id(other, "messages") == second[0]
    finally:
        other.close()
        pg.close()


def test_other_tables_are_not_serialised(pg: SessionDB) -> None:
    other = SessionDB(pg.backend.url)  # type: ignore[attr-defined]
    try:
        with pg.write() as tx:
            tx.execute("INSERT INTO kv (key, value, updated_at) VALUES ('a', '1', 0)")
            other.kv_set("b", "2")  # commits while the first transaction is open
            assert other.kv_get("b") == "2"
    finally:
        other.close()
        pg.close()
