"""The fake Ollama answers the way real Ollama does on the wire: a reply in one segment.

Headers and body written separately, without TCP_NODELAY, wait for the client's delayed ACK:
~40 ms a reply, which inflated every benchmark figure that included an LLM round trip
(bench/README.md). Over loopback one ``write`` arrives in one ``recv``.
"""

from __future__ import annotations

import json
import select
import socket
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest
from support.fake_ollama import FakeOllama


@pytest.fixture
def fake() -> Iterator[FakeOllama]:
    with FakeOllama() as server:
        yield server


def first_segment(url: str, request: bytes) -> bytes:
    parts = urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port), timeout=5) as sock:
        sock.sendall(request)
        readable, _, _ = select.select([sock], [], [], 5)
        assert readable, "no reply within 5 s"
        return sock.recv(1 << 16)


@pytest.mark.parametrize("stream", [False, True])
def test_a_chat_reply_arrives_whole_in_one_segment(fake: FakeOllama, stream: bool) -> None:
    fake.always("a reply of several words")
    body = json.dumps(
        {
            "model": "llama3.2:latest",
            "messages": [{"role": "user", "content": "hi"}],
            "stream": stream,
        }
    ).encode()
    request = (
        b"POST /api/chat HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        + f"Content-Length: {len(body)}\r\n\r\n".encode()
        + body
    )
    data = first_segment(fake.url, request)
    head, _, rest = data.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length")
    )
    assert len(rest) == length  # headers and the whole body in the first recv
    assert b"several" in rest


def test_the_version_probe_arrives_whole_in_one_segment(fake: FakeOllama) -> None:
    data = first_segment(fake.url, b"GET /api/version HTTP/1.1\r\nHost: x\r\n\r\n")
    assert data.startswith(b"HTTP/1.1 200") and data.endswith(b'{"version": "0.12.6"}')
