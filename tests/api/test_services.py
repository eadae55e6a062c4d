"""api.services: the composition root starts its parts in order, unwinds a failed startup,
and stops idempotently."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

import httpx
import pytest
from support.fake_ollama import FakeOllama
from support.waiting import wait_for

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


def test_start_probes_the_llm_beside_startup_so_no_request_has_to(
    make_settings: Callable[..., Settings], fake_ollama: FakeOllama
) -> None:
    services = Services.start(
        make_settings(
            ollama_host=fake_ollama.url,
            reflection_loop_enabled=False,
            personality_loop_enabled=False,
            journal_self_reply_loop_enabled=False,
        )
    )
    try:
        wait_for(lambda: fake_ollama.version_calls == 1)
        assert services.llm_probe is not None
        services.llm_probe.join(timeout=5)
        assert services.llm.available() and fake_ollama.version_calls == 1  # the cached answer
    finally:
        services.stop()
    assert services.llm_probe is not None and not services.llm_probe.is_alive()
