"""The OpenAI-compatible backend: ``/chat/completions`` streamed as server-sent events.

For llama.cpp's server, vLLM, LM Studio, LocalAI and OpenAI itself. Plain httpx rather than
the ``openai`` package: that client retries twice by default and has its own timeout model,
both of which would break the single total deadline every call keeps (see ``deadline``), and
it would add a dependency for two endpoints. The schema goes in ``response_format``
(``json_schema``), the limit in ``max_tokens``; ``stream_options.include_usage`` asks for the
token counts in the last event, and llama.cpp adds ``timings`` (milliseconds, cache hits).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Sequence
from typing import Any
from urllib.parse import urlsplit

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

_NAME_RE = re.compile(r"[^A-Za-z0-9_-]")


def api_base(url: str) -> str:
    """The API root: a bare ``http://host:port`` gets ``/v1``, as every such server uses."""
    url = url.rstrip("/")
    return url + "/v1" if urlsplit(url).path in ("", "/") else url


class OpenAICompatibleLLM(HTTPBackend):
    """The ``LLM`` protocol over an OpenAI-compatible server."""

    backend = "openai"
    server_name = "the OpenAI-compatible server"

    def __init__(self, host: str, model: str, *, api_key: str | None = None, **kw: Any) -> None:
        super().__init__(api_base(host), model, **kw)
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}

    def _probe(self) -> tuple[bool, str | None]:
        try:
            resp = self._get_client().get(
                f"{self.host}/models", headers=self._headers, timeout=PROBE_TIMEOUT
            )
        except httpx.HTTPError as exc:
            return False, f"{type(exc).__name__}: {exc}"
        if resp.status_code != 200:
            return False, f"GET /models answered {resp.status_code}"
        return True, None

    def _list_models(self) -> list[str]:
        resp = self._get_client().get(
            f"{self.host}/models", headers=self._headers, timeout=PROBE_TIMEOUT
        )
        resp.raise_for_status()
        names: list[str] = []
        for entry in resp.json()["data"]:
            names.append(str(entry["id"]))
            # llama.cpp lists the --alias names beside the file path
            aliases = entry.get("aliases") or []
            for alias in [aliases] if isinstance(aliases, str) else aliases:
                if str(alias) not in names:
                    names.append(str(alias))
        return names

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
        body: dict[str, Any] = {
            "model": model,
            "messages": [{"role": m.role, "content": m.content} for m in messages],
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        if temperature is not None:
            body["temperature"] = temperature
        if max_tokens is not None:
            body["max_tokens"] = max_tokens
        if schema is not None:
            name = _NAME_RE.sub("_", str(schema.get("title") or "reply"))[:64]
            body["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": name, "schema": schema, "strict": True},
            }
        server = self.host
        try:
            with post_stream(
                self._get_client(),
                f"{self.host}/chat/completions",
                body=body,
                headers=self._headers,
                deadline=deadline,
                server=server,
            ) as resp:
                if resp.status_code >= 400:
                    raise self._http_error(resp.status_code, resp.read(), model)
                return _read_events(resp.lines(), on_text)
        except httpx.HTTPError as exc:
            raise LLMUnavailable(f"HTTP error talking to {self.host}: {exc}") from exc

    def _http_error(self, status: int, raw: bytes, model: str) -> LLMResponseError:
        detail = _error_text(raw)
        if status == 404 and "model" in detail.lower():
            names = self.models(refresh=True) or []
            return LLMUnknownModel(
                f"{unknown_model_message(model, self.host, names)}: {detail}", model, names
            )
        return LLMResponseError(f"{self.host} answered {status}: {detail}", status)


def _error_text(raw: bytes) -> str:
    try:
        body = json.loads(raw)
    except ValueError:
        return raw[:200].decode("utf-8", errors="replace")
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        return str(error.get("message") or error)
    return str(error or body)[:200]


def _events(lines: Iterator[str]) -> Iterator[dict[str, Any] | None]:
    """The JSON of each ``data:`` event; None for ``[DONE]``."""
    for line in lines:
        if not line.startswith("data:"):
            continue  # comments (":"), event: and id: lines carry nothing we use
        data = line[5:].strip()
        if data == "[DONE]":
            yield None
            return
        try:
            obj = json.loads(data)
        except ValueError as exc:
            raise LLMBadOutput(f"an event of the reply is not JSON: {data[:120]!r}") from exc
        if not isinstance(obj, dict):
            raise LLMBadOutput(f"an event of the reply is not an object: {data[:120]!r}")
        yield obj


def _read_events(lines: Iterator[str], on_text: TextSink | None = None) -> Completion:
    parts: list[str] = []
    finish: str | None = None
    usage: dict[str, Any] = {}
    timings: dict[str, Any] = {}
    done = False
    for obj in _events(lines):
        if obj is None:
            done = True
            break
        if "error" in obj:
            raise LLMResponseError(f"the server reported an error mid-stream: {obj['error']}", -1)
        for choice in obj.get("choices") or []:
            delta = choice.get("delta") or choice.get("message") or {}
            piece = delta.get("content")
            if isinstance(piece, str) and piece:
                parts.append(piece)
                if on_text is not None:
                    on_text(scrub(piece))
            if choice.get("finish_reason"):
                finish = str(choice["finish_reason"])
        if isinstance(obj.get("usage"), dict):
            usage = obj["usage"]
        if isinstance(obj.get("timings"), dict):
            timings = obj["timings"]
    if not done and finish is None:
        raise LLMBadOutput("the reply's stream ended before it finished")
    return Completion("".join(parts), finish, _usage(usage, timings))


def _usage(usage: dict[str, Any], timings: dict[str, Any]) -> LLMUsage:
    def num(source: dict[str, Any], key: str) -> Any:
        value = source.get(key)
        return value if isinstance(value, int | float) and not isinstance(value, bool) else None

    prompt = num(usage, "prompt_tokens")
    details = usage.get("prompt_tokens_details")
    cached = num(details, "cached_tokens") if isinstance(details, dict) else None
    if cached is None:
        cached = num(timings, "cache_n")
    evaluated = num(timings, "prompt_n")
    if evaluated is None and prompt is not None:
        evaluated = prompt - (cached or 0)
    return LLMUsage(
        prompt_tokens=prompt,
        prompt_eval_tokens=evaluated,
        cached_tokens=cached,
        completion_tokens=num(usage, "completion_tokens"),
        prompt_ms=num(timings, "prompt_ms"),
        generation_ms=num(timings, "predicted_ms"),
    )
