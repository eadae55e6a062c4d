"""No leaked file descriptors or threads across open/close cycles of the DB and the whole app."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from fastapi.testclient import TestClient

from crt_loops.api.app import create_app
from crt_loops.db.session import SessionDB
from crt_loops.settings import Settings


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_session_db_open_close_cycles_leak_nothing(tmp_path: Path) -> None:
    SessionDB(tmp_path / "warm.db").close()
    before = open_fds()
    for i in range(50):
        db = SessionDB(tmp_path / f"c{i % 3}.db")
        db.add_message("default", "user", "x")
        db.close()
    assert open_fds() <= before


def test_app_lifespan_cycles_leak_nothing(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    settings = make_settings(heartbeat_loop_enabled=True)
    with TestClient(create_app(settings), client=("127.0.0.1", 1)) as client:
        assert client.get("/health").status_code == 200
    before = open_fds()
    for _ in range(5):
        with TestClient(create_app(settings), client=("127.0.0.1", 1)) as client:
            assert client.get("/api/loops").status_code == 200
    # the autouse no_leaked_threads fixture checks every thread (loops, Ledger server) is gone
    assert open_fds() <= before + 2  # slack for lazily opened interpreter files
