"""api.services: the composition root starts its parts in order, unwinds a failed startup,
and stops idempotently."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

import httpx
import pytest

from crt_loops.api.services import Services
from crt_loops.db.session import SessionDB
from crt_loops.heartbeat.loop import HeartbeatLoop
from crt_loops.settings import Settings


def test_start_builds_every_part_and_stop_is_idempotent(
    make_settings: Callable[..., Settings],
) -> None:
    services = Services.start(make_settings(reflection_loop_enabled=False))
    try:
        assert list(services.loops) == [
            "reflection",
            "personality",
            "journal_self_reply",
            "heartbeat",
        ]
        assert isinstance(services.heartbeat_loop, HeartbeatLoop)
        assert services.ledger is not None and services.ledger_error is None
        assert httpx.get(services.ledger.base_url.removesuffix("/api/v1") + "/health").is_success
        assert not services.loops["reflection"].running
    finally:
        services.stop()
    services.stop()
    assert services.db.closed


def test_a_startup_that_fails_after_the_ledger_started_stops_it(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings()
    db = SessionDB(settings.session_db_path)
    db.close()
    # A real failure late in startup: heartbeat recovery finds its table gone.
    with sqlite3.connect(settings.session_db_path) as conn:
        conn.execute("DROP TABLE heartbeat_actions")
    with pytest.raises(Exception, match="heartbeat_actions"):
        Services.start(settings)
    # The embedded Ledger that had started is stopped again: the autouse leak guard fails the
    # test if its server thread is still alive, and its port answers no more.
