"""A locked session DB through the whole app: JSON 503 with Retry-After, ``/health`` degraded
(HTTP 503), and a run-now that could not be recorded appears as ``failed``/``db_error`` once the
database is writable again. (A full disk against the real server: tests/system.)"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from support.waiting import wait_for

from crt_loops.db.sqlite import BUSY_TIMEOUT_MS

pytestmark = pytest.mark.slow


@pytest.fixture
def locked(client: TestClient) -> Iterator[sqlite3.Connection]:
    """Another process's connection holding the session DB's write lock until released."""
    conn = sqlite3.connect(client.app.state.settings.session_db_path, isolation_level=None)
    conn.execute("BEGIN IMMEDIATE")
    yield conn
    if conn.in_transaction:
        conn.execute("ROLLBACK")
    conn.close()


def test_writes_answer_503_and_a_refused_run_now_is_recorded_later(
    client: TestClient, locked: sqlite3.Connection
) -> None:
    health = client.get("/health")
    assert health.status_code == 503
    body = health.json()
    assert (body["status"], body["db"], body["db_problem"]) == ("degraded", "degraded", "busy")
    assert "another connection holds its write lock" in body["db_error"]

    started = time.monotonic()
    r = client.post("/api/threads/default/messages", json={"content": "hello"})
    elapsed = time.monotonic() - started
    assert r.status_code == 503, r.text
    assert r.headers["retry-after"] == "5"
    assert "database is busy" in r.json()["detail"]
    assert elapsed < BUSY_TIMEOUT_MS / 1000 + 2.0

    r = client.post("/api/threads/default/heartbeat/run-now")
    assert r.status_code == 503, r.text
    assert r.headers["retry-after"] == "5"
    assert "recorded as failed/db_error" in r.json()["detail"]
    assert client.get("/health").json()["db_pending_writes"] == 1
    # Reads still work while the lock is held (WAL).
    assert client.get("/api/threads/default/heartbeat/history").json()["runs"] == []

    locked.execute("COMMIT")

    def recorded() -> list[dict[str, object]]:
        runs: list[dict[str, object]] = client.get("/api/threads/default/heartbeat/history").json()[
            "runs"
        ]
        return runs

    runs = wait_for(recorded, timeout=15)
    assert [(r["outcome"], r["reason"], r["trigger"]) for r in runs] == [
        ("failed", "db_error", "manual")
    ]
    assert "database is locked" in str(runs[0]["error"])
    health = client.get("/health")
    assert health.status_code == 200 and health.json()["db_pending_writes"] == 0
    assert client.post("/api/threads/default/messages", json={"content": "hi"}).status_code == 201
    config = client.get("/api/threads/default/heartbeat/config").json()
    assert (config["last_outcome"], config["last_reason"]) == ("failed", "db_error")
