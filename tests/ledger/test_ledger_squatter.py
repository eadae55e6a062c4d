"""Port squatting: whatever answers on CRT_LEDGER_PORT must prove it is our Ledger before the
agent's key is sent, and status never calls an impostor "embedded, reachable"."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from fastapi.testclient import TestClient
from support.service import LOCAL

from crt_loops.api.app import create_app
from crt_loops.db.session import SessionDB
from crt_loops.ledger.embed import EMBEDDED_KEY, LedgerEmbedError, start_embedded_ledger
from crt_loops.ledger.identity import load_or_create_secret, prove
from crt_loops.settings import Settings


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Squatter:
    """A program on the Ledger's port that looks like a CRT Ledger from the outside: it answers
    /health like one, claims any agent, and records every byte it is sent."""

    def __init__(self, port: int, proof: Callable[[str], str] | None = None) -> None:
        self.seen: list[str] = []
        squatter = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                return

            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length).decode("latin-1") if length else ""
                squatter.seen.append(f"{self.command} {self.path}\n{self.headers}\n{body}")
                if "/identity" in self.path:
                    nonce = self.path.rpartition("nonce=")[2]
                    data: dict[str, Any] = {
                        "success": True,
                        "service": "crt-ledger",
                        "proof": proof(nonce) if proof else "0" * 64,
                    }
                elif "/agents/register" in self.path:
                    data = {"success": True, "agent": {"name": "crt", "api_key": "ledger_fake"}}
                elif "/agents/me" in self.path:
                    data = {"success": True, "agent": {"name": "crt", "karma": 0}}
                else:
                    data = {"success": True, "status": "ok", "service": "crt-ledger"}
                raw = json.dumps(data).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            do_GET = _answer
            do_POST = _answer

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.thread = threading.Thread(
            target=self.server.serve_forever, name="squatter", daemon=True
        )

    def __enter__(self) -> Squatter:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)

    def received(self, secret: str) -> bool:
        return any(secret in request for request in self.seen)


@pytest.fixture
def stored_key(make_settings: Callable[..., Settings]) -> Iterator[tuple[SessionDB, str]]:
    """A session DB holding the agent's key from an earlier start of the real Ledger."""
    settings = make_settings(ledger_port=free_port())
    db = SessionDB(settings.session_db_path)
    ledger = start_embedded_ledger(settings, db)
    key = ledger.api_key
    ledger.stop()
    assert key and db.kv_get(EMBEDDED_KEY) == key
    yield db, key
    db.close()


def test_a_squatter_never_receives_the_key(
    make_settings: Callable[..., Settings], stored_key: tuple[SessionDB, str]
) -> None:
    db, key = stored_key
    port = free_port()
    with Squatter(port) as squatter:
        with pytest.raises(LedgerEmbedError) as info:
            start_embedded_ledger(make_settings(ledger_port=port), db)
        assert squatter.seen, "the squatter was asked to prove itself"
        assert not squatter.received(key)
        assert not any("authorization" in r.casefold() for r in squatter.seen)
    message = str(info.value)
    assert "not this service's Ledger" in message
    assert "wrong" in message and "key was not sent" in message and "CRT_LEDGER_PORT" in message


def test_a_replayed_or_foreign_proof_is_refused(
    make_settings: Callable[..., Settings], stored_key: tuple[SessionDB, str], tmp_path: Any
) -> None:
    db, key = stored_key
    # A proof made with another data dir's secret (another install's Ledger on this port).
    foreign = load_or_create_secret(tmp_path / "other-install")
    port = free_port()
    with Squatter(port, proof=lambda nonce: prove(foreign, nonce)) as squatter:
        with pytest.raises(LedgerEmbedError, match="wrong"):
            start_embedded_ledger(make_settings(ledger_port=port), db)
        assert not squatter.received(key)
    # A proof recorded from our real Ledger once, answered to every later challenge.
    ours = load_or_create_secret(make_settings().data_dir)
    recorded = prove(ours, "ab" * 16)
    with Squatter(port, proof=lambda nonce: recorded) as squatter:
        with pytest.raises(LedgerEmbedError, match="wrong"):
            start_embedded_ledger(make_settings(ledger_port=port), db)
        assert not squatter.received(key)


def test_the_service_starts_without_the_ledger_and_says_why(
    make_settings: Callable[..., Settings], stored_key: tuple[SessionDB, str]
) -> None:
    db, key = stored_key
    db.close()
    port = free_port()
    with Squatter(port) as squatter:
        app = create_app(make_settings(ledger_port=port))
        with TestClient(app, client=LOCAL) as client:
            assert client.get("/health").status_code == 200
            status = client.get("/api/ledger/status")
            assert status.status_code == 503
            assert "not this service's Ledger" in status.json()["detail"]
            feed = client.get("/api/ledger/feed")
            assert feed.status_code == 503
        assert not squatter.received(key)
