"""An Ollama-API front that forwards to an OpenAI-compatible server (llama.cpp's).

No Ollama server can be installed here, so the real-model lane drives the service's Ollama
path through this: ``/api/chat`` and ``/api/generate`` become ``/v1/chat/completions`` and
``/v1/completions`` (``format`` schema -> ``response_format``, ``options.num_predict`` ->
``max_tokens``, ``finish_reason`` -> ``done_reason``, ``usage``/``timings`` -> Ollama's counts
and nanosecond durations), streamed line by line as Ollama does; ``/api/version``,
``/api/tags`` and ``/api/show`` answer from the server's model list. Models are named
``<alias>:latest``, as Ollama names them; an unknown name is Ollama's 404.

Every reply is written in one ``write`` with TCP_NODELAY set: headers and body in separate
small writes meet the client's delayed ACK and cost ~40 ms each (Nagle's algorithm).
"""

from __future__ import annotations

import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime())


class OllamaFront:
    """Start with :meth:`start`; ``url`` is what to give the service as ``CRT_OLLAMA_HOST``."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")  # e.g. http://127.0.0.1:PORT/v1
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.requests: list[dict[str, Any]] = []
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        assert self._server is not None, "OllamaFront is not started"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def models(self) -> list[str]:
        data = httpx.get(self.upstream + "/models", timeout=5).json()["data"]
        names: list[str] = []
        for entry in data:
            for alias in [*(entry.get("aliases") or []), entry["id"]]:
                if "/" not in alias and f"{alias}:latest" not in names:
                    names.append(f"{alias}:latest")
        return names

    def upstream_model(self, name: str) -> str | None:
        wanted = name if ":" in name else f"{name}:latest"
        return wanted.removesuffix(":latest") if wanted in self.models() else None

    def start(self) -> OllamaFront:
        front = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self) -> None:
                super().setup()
                self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

            def log_message(self, format: str, *args: Any) -> None:  # quiet
                return

            def _send(self, status: int, body: bytes, ctype: str, *, length: bool = True) -> None:
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Connection", "close")
                if length:
                    self.send_header("Content-Length", str(len(body)))
                self.close_connection = True
                self._headers_buffer.append(b"\r\n")
                head = b"".join(self._headers_buffer)
                self._headers_buffer = []
                self.wfile.write(head + body)

            def _json(self, status: int, obj: Any) -> None:
                self._send(status, json.dumps(obj).encode(), "application/json; charset=utf-8")

            def do_GET(self) -> None:
                if self.path == "/api/version":
                    self._json(200, {"version": "0.12.6"})
                elif self.path == "/api/tags":
                    self._json(200, {"models": [_tag(n) for n in front.models()]})
                else:
                    self._json(404, {"error": "not found"})

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                try:
                    req = json.loads(raw or b"{}")
                except ValueError:
                    self._json(400, {"error": "invalid JSON body"})
                    return
                with front._lock:
                    front.requests.append({"_path": self.path, **req})
                if self.path == "/api/show":
                    model = str(req.get("model") or req.get("name") or "")
                    if front.upstream_model(model) is None:
                        self._json(404, {"error": f"model '{model}' not found"})
                    else:
                        self._json(200, {"details": {"format": "gguf", "family": "llama"}})
                    return
                if self.path not in ("/api/chat", "/api/generate"):
                    self._json(404, {"error": f"unknown path {self.path}"})
                    return
                model = str(req.get("model") or "")
                target = front.upstream_model(model)
                if target is None:
                    self._json(404, {"error": f"model '{model}' not found, try pulling it first"})
                    return
                try:
                    self._forward(req, model, target, chat=self.path == "/api/chat")
                except (BrokenPipeError, ConnectionResetError):
                    return  # the client gave up (its deadline passed): nothing left to send

            def _forward(self, req: dict[str, Any], model: str, target: str, chat: bool) -> None:
                body = _upstream_body(req, target, chat)
                url = front.upstream + ("/chat/completions" if chat else "/completions")
                streaming = req.get("stream", True) is not False
                parts: list[str] = []
                final: dict[str, Any] = {}
                started = time.perf_counter()
                headers_sent = False
                with httpx.stream("POST", url, json=body, timeout=600) as resp:
                    if resp.status_code >= 400:
                        resp.read()
                        self._json(resp.status_code, {"error": resp.text[:500]})
                        return
                    for line in resp.iter_lines():
                        if not line.startswith("data:") or line[5:].strip() == "[DONE]":
                            continue
                        event = json.loads(line[5:])
                        for choice in event.get("choices") or []:
                            piece = (choice.get("delta") or {}).get("content")
                            if piece is None:
                                piece = choice.get("text")
                            if choice.get("finish_reason"):
                                final["finish_reason"] = choice["finish_reason"]
                            if piece:
                                parts.append(piece)
                                if streaming:
                                    chunk = _chunk(model, piece, chat)
                                    data = json.dumps(chunk).encode() + b"\n"
                                    if not headers_sent:
                                        self._send(200, data, "application/x-ndjson", length=False)
                                        headers_sent = True
                                    else:
                                        self.wfile.write(data)
                        for key in ("usage", "timings"):
                            if isinstance(event.get(key), dict):
                                final[key] = event[key]
                last = _final(model, "" if streaming else "".join(parts), final, chat, started)
                data = json.dumps(last).encode() + b"\n"
                if not streaming:
                    self._send(200, data, "application/json; charset=utf-8")
                elif not headers_sent:
                    self._send(200, data, "application/x-ndjson", length=False)
                else:
                    self.wfile.write(data)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="ollama-front",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None

    def __enter__(self) -> OllamaFront:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _upstream_body(req: dict[str, Any], target: str, chat: bool) -> dict[str, Any]:
    options = req.get("options") or {}
    body: dict[str, Any] = {
        "model": target,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    if chat:
        body["messages"] = req.get("messages") or []
    else:
        body["prompt"] = ((req.get("system") or "") + "\n\n" + (req.get("prompt") or "")).strip()
    if "num_predict" in options:
        body["max_tokens"] = options["num_predict"]
    for key in ("temperature", "top_p", "top_k", "seed"):
        if key in options:
            body[key] = options[key]
    fmt = req.get("format")
    if isinstance(fmt, dict):
        body["response_format"] = {
            "type": "json_schema",
            "json_schema": {"name": str(fmt.get("title") or "reply"), "schema": fmt},
        }
    elif fmt == "json":
        body["response_format"] = {"type": "json_object"}
    return body


def _chunk(model: str, piece: str, chat: bool) -> dict[str, Any]:
    body: dict[str, Any] = {"model": model, "created_at": _now(), "done": False}
    if chat:
        body["message"] = {"role": "assistant", "content": piece}
    else:
        body["response"] = piece
    return body


def _final(
    model: str, content: str, up: dict[str, Any], chat: bool, started: float
) -> dict[str, Any]:
    usage = up.get("usage") or {}
    timings = up.get("timings") or {}
    body = _chunk(model, content, chat)
    # Ollama counts only the prompt tokens it evaluated, as llama.cpp's prompt_n does.
    body.update(
        done=True,
        done_reason="length" if up.get("finish_reason") == "length" else "stop",
        total_duration=int((time.perf_counter() - started) * 1e9),
        load_duration=0,
        prompt_eval_count=int(timings.get("prompt_n", usage.get("prompt_tokens", 0))),
        prompt_eval_duration=int(float(timings.get("prompt_ms", 0)) * 1e6),
        eval_count=int(usage.get("completion_tokens", timings.get("predicted_n", 0))),
        eval_duration=int(float(timings.get("predicted_ms", 0)) * 1e6),
    )
    return body


def _tag(name: str) -> dict[str, Any]:
    return {
        "name": name,
        "model": name,
        "modified_at": "2026-01-01T00:00:00Z",
        "size": 100_000_000,
        "digest": "0" * 64,
        "details": {"format": "gguf", "family": "llama", "parameter_size": "135M"},
    }
