"""Fixtures for the edge tests: the real Ledger on a loopback port, and a plain HTTP client."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import httpx
import pytest
from support.live_ledger import LiveLedger

from crt_loops.core.server_thread import ServerThread
from crt_loops.ledger.server import create_ledger_app
from crt_loops.settings import Settings


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=10) as client:
        yield client


@pytest.fixture
def live_ledger(make_settings: Callable[..., Settings], http: httpx.Client) -> Iterator[LiveLedger]:
    settings = make_settings(ledger_post_cooldown_seconds=0, ledger_comment_cooldown_seconds=0)
    server = ServerThread(create_ledger_app(settings), name="ledger").start()
    try:
        yield LiveLedger(server, settings, http)
    finally:
        server.stop()
