"""A fake Ollama server speaking Ollama's HTTP protocol on loopback (docs/reference.md §1).

It is a real HTTP server, so the real ``ollama`` client (and httpx under it) is exercised end to
end. What it answers is decided by a *responder*: a function from the request JSON to a
:class:`Reply` (or a plain string, meaning a normal answer with that content). Tests install
responders per schema title (pydantic's ``model_json_schema()`` puts the model name in
``title``) with :meth:`FakeOllama.route`, or one catch-all with :meth:`FakeOllama.set_responder`.

Failure modes a Reply can describe: an HTTP error with Ollama's ``{"error": ...}`` body, a slow
reply, a body that is not JSON, ``done_reason: "length"``, an error line in the middle of a
stream, and a dropped connection.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Reply:
    content: str = ""
    status: int = 200
    error: str | None = None  # with status >= 400: Ollama's {"error": ...} body
    delay: float = 0.0  # seconds before answering (a slow model)
    done_reason: str = "stop"
    raw_body: bytes | None = None  # sent verbatim instead of a protocol body (garbage)
    stream_error: str | None = None  # streaming: an {"error": ...} line after the first chunk
    drop: bool = False  # close the connection without answering


Responder = Callable[[dict[str, Any]], "Reply | str"]


@dataclass
class FakeOllama:
    """Start with ``start()`` (or as a context manager); ``url`` is the host to give the client."""

    models: list[str] = field(default_factory=lambda: ["llama3.2:latest", "qwen3:8b"])
    requests: list[dict[str, Any]] = field(default_factory=list)
    version_calls: int = 0
    in_flight: int = 0
    max_in_flight: int = 0

    def __post_init__(self) -> None:
        self._routes: dict[str, Responder] = {}
        self._responder: Responder = lambda req: "ok"
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.release = threading.Event()  # for tests that hold a reply until released
        self.release.set()

    # -- control ------------------------------------------------------------------------------

    def set_responder(self, responder: Responder) -> None:
        self._responder = responder

    def route(self, schema_title: str, responder: Responder) -> None:
        """Answer requests whose ``format`` schema has this ``title`` with ``responder``."""
        self._routes[schema_title] = responder

    def always(self, reply: Reply | str) -> None:
        self._routes.clear()
        self._responder = lambda req: reply

    @property
    def chat_calls(self) -> list[dict[str, Any]]:
        return [r for r in self.requests if r.get("_path") == "/api/chat"]

    def calls_for(self, schema_title: str) -> list[dict[str, Any]]:
        return [
            r
            for r in self.chat_calls
            if isinstance(r.get("format"), dict) and r["format"].get("title") == schema_title
        ]

    def answer(self, request: dict[str, Any]) -> Reply:
        fmt = request.get("format")
        responder = self._responder
        if isinstance(fmt, dict) and fmt.get("title") in self._routes:
            responder = self._routes[fmt["title"]]
        result = responder(request)
        return Reply(content=result) if isinstance(result, str) else result

    # -- lifecycle ----------------------------------------------------------------------------

    @property
    def url(self) -> str:
        assert self._server is not None, "FakeOllama is not started"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> FakeOllama:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # quiet
                return

            def send_response(self, code: int, message: str | None = None) -> None:
                # One request per connection: no idle keep-alive threads outlive a test.
                super().send_response(code, message)
                self.send_header("Connection", "close")
                self.close_connection = True

            def _send_json(self, status: int, body: Any) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                if self.path == "/api/version":
                    with fake._lock:
                        fake.version_calls += 1
                    self._send_json(200, {"version": "0.12.6"})
                elif self.path == "/api/tags":
                    self._send_json(200, {"models": [_tag(m) for m in fake.models]})
                else:
                    self._send_json(404, {"error": "not found"})

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                try:
                    request = json.loads(raw or b"{}")
                except ValueError:
                    self._send_json(400, {"error": "invalid JSON body"})
                    return
                request["_path"] = self.path
                with fake._lock:
                    fake.requests.append(request)
                    fake.in_flight += 1
                    fake.max_in_flight = max(fake.max_in_flight, fake.in_flight)
                try:
                    self._answer(request)
                finally:
                    with fake._lock:
                        fake.in_flight -= 1

            def _answer(self, request: dict[str, Any]) -> None:
                if self.path not in ("/api/chat", "/api/generate"):
                    self._send_json(404, {"error": f"unknown path {self.path}"})
                    return
                model = request.get("model", "")
                if model not in fake.models:
                    self._send_json(
                        404, {"error": f"model '{model}' not found, try pulling it first"}
                    )
                    return
                reply = fake.answer(request)
                fake.release.wait(30)
                if reply.delay:
                    time.sleep(reply.delay)  # the fake model thinking; not a test waiting
                if reply.drop:
                    self.close_connection = True
                    self.connection.shutdown(2)
                    return
                if reply.status >= 400:
                    self._send_json(reply.status, {"error": reply.error or "internal error"})
                    return
                if reply.raw_body is not None:
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(reply.raw_body)))
                    self.end_headers()
                    self.wfile.write(reply.raw_body)
                    return
                chat = self.path == "/api/chat"
                final = _final(model, reply.content, reply.done_reason, chat)
                if request.get("stream", True) is False:
                    self._send_json(200, final)
                    return
                self._stream(model, reply, chat)

            def _stream(self, model: str, reply: Reply, chat: bool) -> None:
                lines: list[dict[str, Any]] = []
                words = reply.content.split(" ") if reply.content else [""]
                for i, word in enumerate(words):
                    piece = word if i == 0 else " " + word
                    lines.append(_chunk(model, piece, chat))
                    if reply.stream_error and i == 0:
                        lines.append({"error": reply.stream_error})
                        break
                if not reply.stream_error:
                    lines.append(_final(model, "", reply.done_reason, chat))
                body = b"".join(json.dumps(line).encode() + b"\n" for line in lines)
                self.send_response(200)
                self.send_header("Content-Type", "application/x-ndjson")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.02},
            name="fake-ollama",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self.release.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None

    def __enter__(self) -> FakeOllama:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime())


def _chunk(model: str, piece: str, chat: bool) -> dict[str, Any]:
    body: dict[str, Any] = {"model": model, "created_at": _now(), "done": False}
    if chat:
        body["message"] = {"role": "assistant", "content": piece}
    else:
        body["response"] = piece
    return body


def _final(model: str, content: str, done_reason: str, chat: bool) -> dict[str, Any]:
    body = _chunk(model, content, chat)
    body.update(
        done=True,
        done_reason=done_reason,
        total_duration=1_000_000,
        load_duration=100_000,
        prompt_eval_count=10,
        prompt_eval_duration=200_000,
        eval_count=max(1, len(content.split())),
        eval_duration=500_000,
    )
    return body


def _tag(name: str) -> dict[str, Any]:
    return {
        "name": name,
        "model": name,
        "modified_at": "2026-01-01T00:00:00Z",
        "size": 2_000_000_000,
        "digest": "0" * 64,
        "details": {"format": "gguf", "family": "llama", "parameter_size": "3B"},
    }
