"""A fake LLM server on loopback speaking Ollama's HTTP protocol (docs/reference.md §1) and
the OpenAI-compatible one.

It is a real HTTP server, so the real ``ollama`` client (and httpx under it) is exercised end to
end. What it answers is decided by a *responder*: a function from the request JSON to a
:class:`Reply` (or a plain string, meaning a normal answer with that content). Tests install
responders per schema title (pydantic's ``model_json_schema()`` puts the model name in
``title``) with :meth:`FakeOllama.route`, or one catch-all with :meth:`FakeOllama.set_responder`.

The same server answers ``/v1/models`` and ``/v1/chat/completions`` (server-sent events, usage
and llama.cpp-style ``timings``), routing on ``response_format``'s schema title, so both
backends meet the same responders. Every reply goes out in one ``write`` with TCP_NODELAY:
headers and body in two small writes meet the client's delayed ACK (~40 ms a reply).

Failure modes a Reply can describe: an HTTP error with Ollama's ``{"error": ...}`` body, a slow
reply, a body that is not JSON, ``done_reason: "length"``, an error line in the middle of a
stream, and a dropped connection.
"""

from __future__ import annotations

import json
import socket
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
    chunk_delay: float = 0.0  # streaming: seconds between words (a model that trickles)
    #: streaming: the first word at once, the rest only once this is set (a model the test
    #: keeps writing for as long as it needs to look at what arrived so far)
    rest_after: threading.Event | None = None


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
        self._stopped = threading.Event()

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
            for r in self.requests
            if r.get("_path") in ("/api/chat", "/v1/chat/completions")
            and _schema_of(r).get("title") == schema_title
        ]

    def answer(self, request: dict[str, Any]) -> Reply:
        fmt = request.get("format")
        if fmt is None and isinstance(request.get("response_format"), dict):
            fmt = request["response_format"].get("json_schema", {}).get("schema")
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
        self._stopped.clear()

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self) -> None:
                super().setup()
                self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

            def log_message(self, format: str, *args: Any) -> None:  # quiet
                return

            def _write(self, status: int, ctype: str, body: bytes, length: bool = True) -> None:
                """Status line, headers and body in one write."""
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                if length:
                    self.send_header("Content-Length", str(len(body)))
                self._headers_buffer.append(b"\r\n")
                head = b"".join(self._headers_buffer)
                self._headers_buffer = []
                self.wfile.write(head + body)

            def send_response(self, code: int, message: str | None = None) -> None:
                # One request per connection: no idle keep-alive threads outlive a test.
                super().send_response(code, message)
                self.send_header("Connection", "close")
                self.close_connection = True

            def _send_json(self, status: int, body: Any) -> None:
                self._write(status, "application/json; charset=utf-8", json.dumps(body).encode())

            def do_GET(self) -> None:
                if self.path == "/api/version":
                    with fake._lock:
                        fake.version_calls += 1
                    self._send_json(200, {"version": "0.12.6"})
                elif self.path == "/api/tags":
                    self._send_json(200, {"models": [_tag(m) for m in fake.models]})
                elif self.path == "/v1/models":
                    with fake._lock:
                        fake.version_calls += 1
                    data = [{"id": m, "object": "model", "owned_by": "fake"} for m in fake.models]
                    self._send_json(200, {"object": "list", "data": data})
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
                if self.path == "/v1/chat/completions":
                    self._answer_openai(request)
                    return
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
                if reply.delay and fake._stopped.wait(reply.delay):  # the fake model thinking
                    return
                if reply.drop:
                    self.close_connection = True
                    self.connection.shutdown(2)
                    return
                if reply.status >= 400:
                    self._send_json(reply.status, {"error": reply.error or "internal error"})
                    return
                if reply.raw_body is not None:
                    self._write(200, "application/json", reply.raw_body)
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
                    final = _final(model, "", reply.done_reason, chat)
                    final["eval_count"] = max(1, len(reply.content.split()))
                    lines.append(final)
                self._send_lines([json.dumps(line).encode() + b"\n" for line in lines], reply)

            def _send_lines(self, lines: list[bytes], reply: Reply, sse: bool = False) -> None:
                ctype = "text/event-stream" if sse else "application/x-ndjson"
                if not reply.chunk_delay and reply.rest_after is None:
                    self._write(200, ctype, b"".join(lines))
                    return
                # A trickling model: headers and a first line at once, then one line per delay,
                # the body ending when the connection closes.
                self._write(200, ctype, lines[0], length=False)
                if reply.rest_after is not None and not reply.rest_after.wait(30):
                    return  # never released: the test failed; end the body
                for line in lines[1:]:
                    if fake._stopped.wait(reply.chunk_delay):  # the fake model generating
                        return
                    try:
                        self.wfile.write(line)
                    except OSError:
                        return  # the client gave up (its deadline): stop generating

            def _answer_openai(self, request: dict[str, Any]) -> None:
                model = request.get("model", "")
                if model not in fake.models:
                    error = {"message": f"model '{model}' not found", "code": 404}
                    self._send_json(404, {"error": error})
                    return
                reply = fake.answer(request)
                fake.release.wait(30)
                if reply.delay and fake._stopped.wait(reply.delay):  # the fake model thinking
                    return
                if reply.drop:
                    self.close_connection = True
                    self.connection.shutdown(2)
                    return
                if reply.status >= 400:
                    body = {"error": {"message": reply.error or "internal error"}}
                    self._send_json(reply.status, body)
                    return
                if reply.raw_body is not None:
                    self._write(200, "text/event-stream", reply.raw_body)
                    return
                finish = "length" if reply.done_reason == "length" else "stop"
                words = reply.content.split(" ") if reply.content else []
                events: list[dict[str, Any]] = []
                for i, word in enumerate(words):
                    piece = word if i == 0 else " " + word
                    events.append(_delta(model, {"content": piece}, None))
                    if reply.stream_error and i == 0:
                        events.append({"error": {"message": reply.stream_error}})
                        break
                if not reply.stream_error:
                    events.append(_delta(model, {}, finish))
                    events.append(_usage_event(model, reply.content))
                lines = [b"data: " + json.dumps(e).encode() + b"\n\n" for e in events]
                if not reply.stream_error:
                    lines.append(b"data: [DONE]\n\n")
                self._send_lines(lines, reply, sse=True)

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
        self._stopped.set()
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


def _schema_of(request: dict[str, Any]) -> dict[str, Any]:
    fmt = request.get("format")
    if isinstance(fmt, dict):
        return fmt
    rf = request.get("response_format")
    if isinstance(rf, dict) and isinstance(rf.get("json_schema"), dict):
        schema = rf["json_schema"].get("schema")
        return schema if isinstance(schema, dict) else {}
    return {}


def _delta(model: str, delta: dict[str, Any], finish: str | None) -> dict[str, Any]:
    return {
        "object": "chat.completion.chunk",
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }


def _usage_event(model: str, content: str) -> dict[str, Any]:
    completion = max(1, len(content.split()))
    return {
        "object": "chat.completion.chunk",
        "model": model,
        "choices": [],
        "usage": {
            "prompt_tokens": 10,
            "completion_tokens": completion,
            "total_tokens": 10 + completion,
            "prompt_tokens_details": {"cached_tokens": 4},
        },
        "timings": {"cache_n": 4, "prompt_n": 6, "prompt_ms": 0.2, "predicted_ms": 0.5},
    }


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
