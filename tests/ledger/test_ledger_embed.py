"""Embedding the Ledger (serve or join, register once, keep the key) and routes/ledger.py."""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from support.clock import FakeClock

from crt_loops.api.routes.ledger import router
from crt_loops.api.services import Services
from crt_loops.core.server_thread import ServerThread
from crt_loops.db.session import SessionDB
from crt_loops.ledger.client import LedgerAuthError, LedgerClient
from crt_loops.ledger.embed import (
    EMBEDDED_KEY,
    EmbeddedLedger,
    LedgerEmbedError,
    start_embedded_ledger,
)
from crt_loops.ledger.server import create_ledger_app
from crt_loops.llm.client import DisabledLLM
from crt_loops.settings import Settings


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def embed_settings(make_settings: Callable[..., Settings]) -> Callable[..., Settings]:
    port = free_port()

    def make(**overrides: Any) -> Settings:
        return make_settings(**{"ledger_port": port, "agent_name": "crt", **overrides})

    return make


@pytest.fixture
def started() -> Iterator[list[EmbeddedLedger]]:
    """Collects every EmbeddedLedger a test starts, and stops them all afterwards."""
    ledgers: list[EmbeddedLedger] = []
    yield ledgers
    for ledger in reversed(ledgers):
        ledger.stop()


def start(
    started: list[EmbeddedLedger], settings: Settings, db: SessionDB, **kwargs: Any
) -> EmbeddedLedger:
    ledger = start_embedded_ledger(settings, db, **kwargs)
    started.append(ledger)
    return ledger


def test_embedded_serves_registers_and_stores_the_key(
    embed_settings: Callable[..., Settings], db: SessionDB, started: list[EmbeddedLedger]
) -> None:
    settings = embed_settings()
    ledger = start(started, settings, db)
    assert ledger.base_url == f"http://127.0.0.1:{settings.ledger_port}/api/v1"
    assert (ledger.embedded, ledger.serving) == (True, True)
    assert ledger.api_key and db.kv_get(EMBEDDED_KEY) == ledger.api_key
    assert ledger.client().me().name == "crt"
    assert ledger.client() is ledger.client()
    info = ledger.ledger_info()
    assert info == {
        "url": ledger.base_url,
        "embedded": True,
        "serving": True,
        "agent_name": "crt",
        "registered": True,
        "reachable": True,
        "error": None,
        "state": "running",
    }
    ledger.stop()
    ledger.stop()
    with pytest.raises(LedgerEmbedError):
        ledger.client()
    assert ledger.ledger_info()["reachable"] is False


def test_key_is_reused_after_a_restart(
    embed_settings: Callable[..., Settings], db: SessionDB, started: list[EmbeddedLedger]
) -> None:
    settings = embed_settings()
    first = start(started, settings, db)
    key = first.api_key
    post = first.client().create_post("general", "before restart", "x")
    first.stop()
    second = start(started, settings, db)
    assert second.api_key == key
    assert second.client().get_post(post.id).author == "crt"


def test_second_embed_on_a_taken_port_uses_the_running_ledger(
    embed_settings: Callable[..., Settings], db: SessionDB, started: list[EmbeddedLedger]
) -> None:
    settings = embed_settings()
    owner = start(started, settings, db)
    joiner = start(started, settings, db)
    assert (joiner.embedded, joiner.serving, joiner.base_url) == (True, False, owner.base_url)
    assert joiner.api_key == owner.api_key
    post = joiner.client().create_post("general", "from the joiner", "x")
    joiner.stop()
    assert owner.client().get_post(post.id).title == "from the joiner"


def test_a_port_held_by_something_else_is_a_clear_error(
    embed_settings: Callable[..., Settings], db: SessionDB, started: list[EmbeddedLedger]
) -> None:
    impostor = FastAPI()

    @impostor.get("/api/v1/health")
    def health() -> dict[str, str]:
        return {"status": "ok", "service": "not-a-ledger"}

    port = free_port()
    with (
        ServerThread(impostor, port=port, name="impostor"),
        pytest.raises(LedgerEmbedError, match="CRT_LEDGER_PORT"),
    ):
        start(started, embed_settings(ledger_port=port), db)


def test_taken_name_without_a_stored_key_is_a_clear_error(
    embed_settings: Callable[..., Settings],
    db: SessionDB,
    tmp_path: Path,
    started: list[EmbeddedLedger],
    clock: FakeClock,
) -> None:
    settings = embed_settings()
    start(started, settings, db)
    other_db = SessionDB(tmp_path / "other.db", clock=clock)
    try:
        with pytest.raises(LedgerEmbedError, match="already registered"):
            start(started, settings, other_db, registration_wait=0.05)
    finally:
        other_db.close()


def test_a_stale_stored_key_is_replaced_by_registering_again(
    embed_settings: Callable[..., Settings], db: SessionDB, started: list[EmbeddedLedger]
) -> None:
    settings = embed_settings()
    first = start(started, settings, db)
    stale = first.api_key
    first.stop()
    for suffix in ("", "-wal", "-shm"):
        Path(f"{settings.ledger_db_path}{suffix}").unlink(missing_ok=True)
    second = start(started, settings, db)
    assert second.api_key != stale
    assert db.kv_get(EMBEDDED_KEY) == second.api_key
    assert second.client().me().name == "crt"


def test_renamed_agent_gets_its_own_registration(
    embed_settings: Callable[..., Settings], db: SessionDB, started: list[EmbeddedLedger]
) -> None:
    first = start(started, embed_settings(), db)
    first.stop()
    renamed = start(started, embed_settings(agent_name="crt-two"), db)
    assert renamed.client().me().name == "crt-two"


def test_external_ledger_url_serves_nothing_and_uses_the_configured_key(
    make_settings: Callable[..., Settings],
    db: SessionDB,
    started: list[EmbeddedLedger],
    clock: FakeClock,
) -> None:
    remote_settings = make_settings(data_dir=make_settings().data_dir / "remote")
    with ServerThread(create_ledger_app(remote_settings, clock=clock), name="remote") as remote:
        base = remote.url + "/api/v1"
        with LedgerClient(base, None) as anonymous:
            key = anonymous.register("visitor").api_key
        settings = make_settings(ledger_url=base, ledger_api_key=key)
        ledger = start(started, settings, db)
        assert (ledger.embedded, ledger.serving, ledger.base_url) == (False, False, base)
        assert ledger.client().me().name == "visitor"
        assert ledger.ledger_info()["reachable"] is True
        assert not settings.ledger_db_path.exists(), "nothing is served locally"
        keyless = start(started, make_settings(ledger_url=base), db)
        assert keyless.api_key is None
        with pytest.raises(LedgerAuthError):
            keyless.client().me()
    info = ledger.ledger_info()
    assert info["reachable"] is False and "cannot connect" in info["error"]


# -- routes/ledger.py ---------------------------------------------------------------------------


def serve_routes(ledger: EmbeddedLedger | None, db: SessionDB, settings: Settings) -> ServerThread:
    app = FastAPI()
    app.include_router(router)
    app.state.services = Services(
        settings=settings, db=db, llm=DisabledLLM("http://127.0.0.1:9", "none"), ledger=ledger
    )
    return ServerThread(app, name="api").start()


def test_feed_and_status_routes(
    embed_settings: Callable[..., Settings], db: SessionDB, started: list[EmbeddedLedger]
) -> None:
    ledger = start(started, embed_settings(ledger_post_cooldown_seconds=0), db)
    first = ledger.client().create_post("general", "one", "x")
    second = ledger.client().create_post("general", "two", "y")
    api = serve_routes(ledger, db, embed_settings())
    try:
        with httpx.Client(base_url=api.url) as http:
            page = http.get("/api/ledger/feed", params={"sort": "new", "limit": 1}).json()
            assert [p["id"] for p in page["posts"]] == [second.id]
            assert page["has_more"] is True
            rest = http.get(
                "/api/ledger/feed", params={"sort": "new", "cursor": page["next_cursor"]}
            ).json()
            assert [p["id"] for p in rest["posts"]] == [first.id]
            assert rest["posts"][0]["author"] == "crt"
            status = http.get("/api/ledger/status").json()
            assert status["reachable"] is True and status["serving"] is True
            assert http.get("/api/ledger/feed", params={"sort": "best"}).status_code == 422
            assert http.get("/api/ledger/feed", params={"limit": 0}).status_code == 422
    finally:
        api.stop()


def test_feed_route_maps_ledger_failures(
    embed_settings: Callable[..., Settings],
    make_settings: Callable[..., Settings],
    db: SessionDB,
    started: list[EmbeddedLedger],
    clock: FakeClock,
) -> None:
    limited = start(started, embed_settings(ledger_requests_per_minute=1), db, clock=clock)
    down = start(started, make_settings(ledger_url=f"http://127.0.0.1:{free_port()}/api/v1"), db)
    down.client().max_retries = 0
    wrong_key = start(
        started, make_settings(ledger_url=limited.base_url, ledger_api_key="ledger_wrong"), db
    )
    stopped = start(started, make_settings(ledger_url=limited.base_url), db)
    stopped.stop()
    cases: list[tuple[EmbeddedLedger | None, int, str]] = [
        (down, 503, "unavailable"),
        (wrong_key, 502, "API key"),
        (stopped, 503, "stopped"),
        (None, 503, "not started"),
    ]
    for ledger, status, fragment in cases:
        api = serve_routes(ledger, db, make_settings())
        try:
            response = httpx.get(api.url + "/api/ledger/feed")
            assert response.status_code == status, response.text
            assert fragment in response.json()["detail"]
        finally:
            api.stop()
    api = serve_routes(limited, db, make_settings())
    try:
        with httpx.Client(base_url=api.url) as http:
            assert http.get("/api/ledger/feed").status_code == 200
            response = http.get("/api/ledger/feed")
            assert response.status_code == 429
            assert response.headers["Retry-After"] == "60"
            assert "rate-limited" in response.json()["detail"]
    finally:
        api.stop()


def test_a_changed_port_keeps_the_agent_and_its_key(
    embed_settings: Callable[..., Settings], db: SessionDB, started: list[EmbeddedLedger]
) -> None:
    """The key was once stored per URL: after a port change the name was taken and the key lost."""
    first = start(started, embed_settings(), db)
    key = first.api_key
    first.stop()
    moved = start(started, embed_settings(ledger_port=free_port()), db, registration_wait=0.1)
    assert moved.api_key == key
    assert moved.client().me().name == "crt"
