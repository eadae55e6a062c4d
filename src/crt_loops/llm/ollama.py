"""The Ollama backend: ``/api/chat`` streamed as NDJSON, over plain httpx.

Streamed so the call's total deadline can be kept chunk by chunk (see ``deadline``); the
``ollama`` client hides the response, so the watchdog could not reach its socket. The reply's
schema goes in ``format`` (a grammar), the token limit in ``options.num_predict``; the final
line carries ``done_reason`` and the counts (``prompt_eval_count``, ``eval_count``, durations
in nanoseconds). Liveness is a cached ``GET /api/version``; models come from ``/api/tags``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import httpx

from crt_loops.llm.base import PROBE_TIMEOUT, Completion, HTTPBackend, unknown_model_message
from crt_loops.llm.deadline import Deadline, post_stream
from crt_loops.llm.errors import (
    LLMBadOutput,
    LLMResponseError,
    LLMUnavailable,
    LLMUnknownModel,
)
from crt_loops.llm.text import scrub
from crt_loops.llm.types import ChatMessage, LLMUsage, TextSink


class OllamaLLM(HTTPBackend):
    """The ``LLM`` protocol over an Ollama server (or anything speaking its ``/api``)."""

    backend = "ollama"
    server_name = "Ollama"

    def _probe(self) -> tuple[bool, str | None]:
        try:
            resp = self._get_client().get(f"{self.host}/api/version", timeout=PROBE_TIMEOUT)
        except httpx.HTTPError as exc:
            return False, f"{type(exc).__name__}: {exc}"
        if resp.status_code != 200:
            return False, f"GET /api/version answered {resp.status_code}"
        return True, None

    def _list_models(self) -> list[str]:
        resp = self._get_client().get(f"{self.host}/api/tags", timeout=PROBE_TIMEOUT)
        resp.raise_for_status()
        return [str(m.get("name") or m["model"]) for m in resp.json()["models"]]

    def _complete(
        self,
        messages: Sequence[ChatMessage],
        *,
        model: str,
        schema: dict[str, Any] | None,
        temperature: float | None,
        max_tokens: int | None,
        keep_alive: float | str | None,
        deadline: Deadline,
        on_text: TextSink | None,
    ) -> Completion:
        options: dict[str, Any] = {}
        if temperature is not None:
            options["temperature"] = temperature
        if max_tokens is not None:
            options["num_predict"] = max_tokens
        body: dict[str, Any] = {
            "model": model,
            "messages": [{"role": m.role, "content": m.content} for m in messages],
            "stream": True,
        }
        if schema is not None:
            body["format"] = schema
        if options:
            body["options"] = options
        if keep_alive is not None:
            body["keep_alive"] = keep_alive
        server = f"Ollama at {self.host}"
        try:
            with post_stream(
                self._get_client(),
                f"{self.host}/api/chat",
                body=body,
                headers=None,
                deadline=deadline,
                server=server,
            ) as resp:
                if resp.status_code >= 400:
                    raise self._http_error(resp.status_code, resp.read(), model)
                return _read_stream(resp.lines(), on_text)
        except httpx.HTTPError as exc:
            raise LLMUnavailable(f"HTTP error talking to Ollama at {self.host}: {exc}") from exc

    def _unknown_model_message(self, name: str, names: Sequence[str]) -> str:
        return f"{unknown_model_message(name, self.host, names)}; try `ollama pull {name}`"

    def _http_error(self, status: int, raw: bytes, model: str) -> LLMResponseError:
        try:
            detail = str(json.loads(raw).get("error") or raw[:200])
        except (ValueError, AttributeError):
            detail = raw[:200].decode("utf-8", errors="replace")
        if status == 404:
            names = self.models(refresh=True) or []
            return LLMUnknownModel(
                f"{self._unknown_model_message(model, names)} ({detail})", model, names
            )
        return LLMResponseError(f"Ollama answered {status}: {detail}", status)


def _read_stream(lines: Any, on_text: TextSink | None = None) -> Completion:
    parts: list[str] = []
    for line in lines:
        try:
            obj = json.loads(line)
        except ValueError as exc:
            raise LLMBadOutput(f"Ollama's reply is not NDJSON: {line[:120]!r}") from exc
        if not isinstance(obj, dict):
            raise LLMBadOutput(f"Ollama's reply line is not an object: {line[:120]!r}")
        if "error" in obj:
            raise LLMResponseError(f"Ollama reported an error mid-stream: {obj['error']}", -1)
        message = obj.get("message")
        piece = message.get("content") if isinstance(message, dict) else obj.get("response")
        if isinstance(piece, str) and piece:
            parts.append(piece)
            if on_text is not None:
                on_text(scrub(piece))
        if obj.get("done"):
            return Completion("".join(parts), obj.get("done_reason"), _usage(obj))
    raise LLMBadOutput("Ollama's stream ended without its final (done) line")


def _usage(final: dict[str, Any]) -> LLMUsage:
    def count(key: str) -> int | None:
        value = final.get(key)
        return value if isinstance(value, int) else None

    def ms(key: str) -> float | None:
        value = final.get(key)
        return value / 1e6 if isinstance(value, int | float) else None

    evaluated = count("prompt_eval_count")
    return LLMUsage(
        prompt_tokens=evaluated,
        prompt_eval_tokens=evaluated,
        cached_tokens=None,
        completion_tokens=count("eval_count"),
        prompt_ms=ms("prompt_eval_duration"),
        generation_ms=ms("eval_duration"),
    )
