"""Send a huge chunked request body over a raw socket and read the answer while sending.

An HTTP client library writes the whole body before it reads the response; against a server
that answers 413 early and closes, it sees only a broken pipe. This sender watches the socket
for the answer between chunks, like a browser does.
"""

from __future__ import annotations

import select
import socket
from dataclasses import dataclass

CHUNK = 1024 * 1024


@dataclass
class ChunkedResult:
    status: int | None
    body: bytes
    sent: int  # body bytes the server accepted before answering (or closing)


def send_chunked(
    host: str,
    port: int,
    path: str,
    total: int,
    headers: dict[str, str] | None = None,
    *,
    stop_at_answer: bool = True,
) -> ChunkedResult:
    """Send ``total`` body bytes in 1 MiB chunks (never the closing chunk). With
    ``stop_at_answer`` false, keep sending after the answer, as a hostile client would, until
    the server closes the connection."""
    lines = [
        f"POST {path} HTTP/1.1",
        f"Host: {host}:{port}",
        "Transfer-Encoding: chunked",
        "Content-Type: application/json",
        *(f"{k}: {v}" for k, v in (headers or {}).items()),
    ]
    frame = f"{CHUNK:x}\r\n".encode() + b"a" * CHUNK + b"\r\n"
    answer = b""
    sent = 0
    with socket.create_connection((host, port), timeout=30) as sock:
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode() + b"1\r\n[\r\n")
        sock.setblocking(False)
        pending = memoryview(b"")
        closed = False
        while sent < total and not closed:
            readable, writable, _ = select.select([sock], [sock], [], 30)
            if readable:
                data = sock.recv(65536)
                if not data:
                    break
                answer += data
                if stop_at_answer and b"\r\n\r\n" in answer:
                    break  # the answer started: the server will read no more
            if writable:
                if not pending:
                    pending = memoryview(frame)
                try:
                    n = sock.send(pending)
                except (BrokenPipeError, ConnectionResetError):
                    closed = True
                    continue
                pending = pending[n:]
                sent += n
        sock.setblocking(True)
        sock.settimeout(10)
        try:
            while not _complete(answer):
                data = sock.recv(65536)
                if not data:
                    break
                answer += data
        except (TimeoutError, ConnectionResetError):
            pass  # whatever arrived is the answer
    head, _, body = answer.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1]) if head.startswith(b"HTTP/") else None
    return ChunkedResult(status, body, sent)


def _complete(answer: bytes) -> bool:
    head, sep, rest = answer.partition(b"\r\n\r\n")
    length = _content_length(head) if sep else None
    return length is not None and len(rest) >= length


def _content_length(head: bytes) -> int | None:
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length" and value.strip().isdigit():
            return int(value.strip())
    return None


def rss_kib(pid: int) -> tuple[int, int]:
    """(VmRSS, VmHWM) of a process, in KiB, from /proc."""
    values: dict[str, int] = {}
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            name, _, rest = line.partition(":")
            if name in ("VmRSS", "VmHWM"):
                values[name] = int(rest.split()[0])
    return values["VmRSS"], values["VmHWM"]
