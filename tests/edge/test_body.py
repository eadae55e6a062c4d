"""Body limits: a JSON 413 on every route for declared and chunked bodies, on both apps.

A chunked body used to pass the API's check as an ``http.disconnect``, which the routes that
read the body themselves (HEARTBEAT.md, heartbeat config) turned into a ``ClientDisconnect``
traceback and a 500; the Ledger checked only a declared Content-Length. (The memory side, a
400 MiB chunked body against the real server processes, is in tests/system/test_edge_memory.py.)
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import httpx
import pytest
from fastapi.testclient import TestClient
from support.live_ledger import LiveLedger

from crt_loops.api.app import MAX_REQUEST_BYTES

CHUNK = b"x" * 65536


def chunks(total: int) -> Iterator[bytes]:
    """A body with no Content-Length (httpx sends an iterator chunked)."""
    yield b'{"content": "'
    sent = 0
    while sent < total:
        yield CHUNK
        sent += len(CHUNK)
    yield b'"}'


@pytest.mark.parametrize(
    "path",
    [
        "/api/heartbeat/heartbeat.md",
        "/api/threads/default/heartbeat/config",
        "/api/threads/default/messages",
        "/api/threads",
        "/api/loops/run",
        "/api/threads/default/chat",
    ],
)
def test_a_chunked_oversize_body_is_a_json_413_without_a_traceback(
    client: TestClient, path: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    r = client.post(path, content=chunks(2 * MAX_REQUEST_BYTES))
    assert r.status_code == 413, r.text
    assert "request body too large" in r.json()["detail"]
    assert "ClientDisconnect" not in caplog.text and "Traceback" not in caplog.text
    assert not [rec for rec in caplog.records if rec.levelno >= logging.ERROR]


def test_a_declared_oversize_body_is_refused_before_it_is_read(client: TestClient) -> None:
    r = client.post(
        "/api/heartbeat/heartbeat.md",
        content=b"{}",
        headers={"Content-Length": str(MAX_REQUEST_BYTES + 1)},
    )
    assert r.status_code == 413 and "the limit is" in r.json()["detail"]


def test_a_body_under_the_limit_still_arrives_whole(client: TestClient) -> None:
    text = "## Checklist\n" + "- read the feed\n" * 2000
    body = json.dumps({"content": text}).encode()
    r = client.post("/api/heartbeat/heartbeat.md", content=iter([body[:100], body[100:]]))
    assert r.status_code == 200, r.text
    assert r.json()["content"] == text


def test_the_ledger_refuses_a_chunked_oversize_body_in_its_envelope(
    live_ledger: LiveLedger, http: httpx.Client
) -> None:
    key = live_ledger.register()
    for path, auth in [("/api/v1/posts", True), ("/api/v1/agents/register", False)]:
        headers = {"Authorization": f"Bearer {key}"} if auth else {}
        r = http.post(live_ledger.url + path, content=chunks(2 * 1024 * 1024), headers=headers)
        assert r.status_code == 413, r.text
        body = r.json()
        assert body["success"] is False and "too large" in body["error"]
        assert "40,000" in body["hint"]
    assert live_ledger.count("posts") == 0 and live_ledger.count("agents") == 1
