"""The LLM seam: an ``LLM`` protocol and its Ollama adapter.

Exception tree (every ``ollama``/``httpx`` error is translated here, once, ``from`` the original)::

    LLMError
    ├── LLMUnavailable     no server answering (connection refused, DNS, LLM disabled)
    ├── LLMTimeout         the server did not answer within the timeout
    ├── LLMResponseError   the server answered with an error (``status_code``: 404 unknown model,
    │                      500, 429, or -1 for an error line in the middle of a stream)
    ├── LLMTruncated       ``done_reason == "length"``: cut at ``num_predict``, never "repaired"
    └── LLMBadOutput       a reply that is not the protocol's shape, or not the JSON we asked for

The client is built lazily from settings with an explicit timeout (the ``ollama`` client's default
is none at all) and never from the module-level ``ollama.chat``, which reads ``OLLAMA_HOST`` at
import. Liveness is a cached ``GET /api/version``: a missing Ollama is known in milliseconds.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import httpx
import ollama
import pydantic

from crt_loops.core import metrics

logger = logging.getLogger(__name__)

PROBE_TTL_UP = 30.0
PROBE_TTL_DOWN = 5.0


class LLMError(Exception):
    """Base of every error raised by an LLM call."""


class LLMUnavailable(LLMError):
    """Raised when no LLM answers: connection refused, bad host, or ``CRT_LLM_ENABLED=false``."""


class LLMTimeout(LLMError):
    """Raised when the LLM did not answer within ``CRT_LLM_TIMEOUT_SECONDS``."""


class LLMResponseError(LLMError):
    """Raised when the server answered with an error status (or an error line mid-stream)."""

    def __init__(self, message: str, status_code: int) -> None:
        super().__init__(message)
        self.status_code = status_code


class LLMTruncated(LLMError):
    """Raised when the reply was cut at ``num_predict`` (``done_reason == "length"``)."""


class LLMBadOutput(LLMError):
    """Raised when the reply is malformed, or is not JSON although a schema was requested."""


@dataclass(frozen=True)
class ChatMessage:
    role: str  # system, user or assistant
    content: str


@dataclass(frozen=True)
class LLMReply:
    content: str
    model: str
    done_reason: str | None
    prompt_chars: int
    duration_ms: float
    eval_count: int | None = None


@dataclass
class LLMStats:
    calls: int = 0
    failures: int = 0
    last_error: str | None = None


class LLM(Protocol):
    """What every loop and the chat route need from a language model."""

    host: str
    model: str

    def available(self, *, refresh: bool = False) -> bool:
        """Whether a call is worth trying now (cached probe; never raises)."""
        ...

    def chat(
        self,
        messages: Sequence[ChatMessage],
        *,
        model: str | None = None,
        schema: dict[str, Any] | None = None,
        temperature: float | None = None,
        max_tokens: int | None = None,
        keep_alive: float | str | None = None,
    ) -> LLMReply:
        """One non-streaming chat completion; raises an ``LLMError`` subclass on any failure."""
        ...

    def status(self) -> dict[str, Any]:
        """``{host, model, available, enabled, ...}`` for status endpoints."""
        ...


class DisabledLLM:
    """The LLM when ``CRT_LLM_ENABLED=false``: never available, every call refused."""

    def __init__(self, host: str, model: str) -> None:
        self.host = host
        self.model = model

    def available(self, *, refresh: bool = False) -> bool:
        return False

    def chat(
        self,
        messages: Sequence[ChatMessage],
        *,
        model: str | None = None,
        schema: dict[str, Any] | None = None,
        temperature: float | None = None,
        max_tokens: int | None = None,
        keep_alive: float | str | None = None,
    ) -> LLMReply:
        raise LLMUnavailable("the LLM is disabled (CRT_LLM_ENABLED=false)")

    def status(self) -> dict[str, Any]:
        return {"host": self.host, "model": self.model, "available": False, "enabled": False}


class OllamaLLM:
    """The ``LLM`` protocol over a local Ollama server, through the ``ollama`` client."""

    def __init__(
        self,
        host: str,
        model: str,
        *,
        timeout_seconds: float = 120.0,
        clock: Callable[[], float] = time.monotonic,
        client_kwargs: dict[str, Any] | None = None,
    ) -> None:
        self.host = host.rstrip("/")
        self.model = model
        self.timeout_seconds = timeout_seconds
        self._clock = clock
        self._client_kwargs = client_kwargs or {}
        self._client: ollama.Client | None = None
        self._lock = threading.Lock()
        self._probe_at: float | None = None
        self._probe_ok = False
        self._probe_error: str | None = None
        self.stats = LLMStats()

    def _get_client(self) -> ollama.Client:
        with self._lock:
            if self._client is None:
                self._client = ollama.Client(
                    host=self.host,
                    timeout=httpx.Timeout(self.timeout_seconds, connect=2.0),
                    **self._client_kwargs,
                )
            return self._client

    # -- liveness ---------------------------------------------------------------------------

    def available(self, *, refresh: bool = False) -> bool:
        now = self._clock()
        with self._lock:
            if not refresh and self._probe_at is not None:
                ttl = PROBE_TTL_UP if self._probe_ok else PROBE_TTL_DOWN
                if now - self._probe_at < ttl:
                    return self._probe_ok
        ok, error = self._probe()
        with self._lock:
            if ok != self._probe_ok or self._probe_at is None:
                if ok:
                    logger.info("LLM at %s is available", self.host)
                else:
                    logger.warning("LLM at %s is unavailable: %s", self.host, error)
            self._probe_ok, self._probe_error, self._probe_at = ok, error, now
        return ok

    def _probe(self) -> tuple[bool, str | None]:
        try:
            resp = httpx.get(f"{self.host}/api/version", timeout=httpx.Timeout(2.0, connect=1.0))
        except httpx.HTTPError as exc:
            return False, f"{type(exc).__name__}: {exc}"
        if resp.status_code != 200:
            return False, f"GET /api/version answered {resp.status_code}"
        return True, None

    def _mark_down(self, error: str) -> None:
        with self._lock:
            self._probe_ok, self._probe_error, self._probe_at = False, error, self._clock()

    def status(self) -> dict[str, Any]:
        available = self.available()
        return {
            "host": self.host,
            "model": self.model,
            "available": available,
            "enabled": True,
            "last_error": self._probe_error if not available else self.stats.last_error,
            "calls": self.stats.calls,
            "failures": self.stats.failures,
        }

    # -- chat -------------------------------------------------------------------------------

    def chat(
        self,
        messages: Sequence[ChatMessage],
        *,
        model: str | None = None,
        schema: dict[str, Any] | None = None,
        temperature: float | None = None,
        max_tokens: int | None = None,
        keep_alive: float | str | None = None,
    ) -> LLMReply:
        use_model = model or self.model
        options: dict[str, Any] = {}
        if temperature is not None:
            options["temperature"] = temperature
        if max_tokens is not None:
            options["num_predict"] = max_tokens
        prompt_chars = sum(len(m.content) for m in messages)
        started = time.perf_counter()
        self.stats.calls += 1
        try:
            response = self._get_client().chat(
                model=use_model,
                messages=[{"role": m.role, "content": m.content} for m in messages],
                format=schema,
                options=options or None,
                keep_alive=keep_alive,
                stream=False,
            )
            content = response.message.content or ""
            done_reason = response.done_reason
        except Exception as exc:
            error = _translate(exc, self.host, use_model)
            metrics.observe_llm_call(
                metrics.llm_outcome(error), time.perf_counter() - started, prompt_chars
            )
            self.stats.failures += 1
            self.stats.last_error = str(error)
            if isinstance(error, LLMUnavailable):
                self._mark_down(str(error))
            raise error from exc
        duration_ms = (time.perf_counter() - started) * 1000
        outcome = "truncated" if done_reason == "length" else "ok"
        metrics.observe_llm_call(outcome, duration_ms / 1000, prompt_chars)
        if done_reason == "length":
            self.stats.failures += 1
            self.stats.last_error = "reply cut short at num_predict"
            raise LLMTruncated(
                f"the reply from {use_model} was cut at num_predict={max_tokens} "
                "(done_reason=length); raise max_tokens"
            )
        self.stats.last_error = None
        return LLMReply(
            content=content,
            model=use_model,
            done_reason=done_reason,
            prompt_chars=prompt_chars,
            duration_ms=duration_ms,
            eval_count=response.eval_count,
        )


def _translate(exc: BaseException, host: str, model: str) -> LLMError:
    """Map an ``ollama``/``httpx``/parsing error onto our exception tree."""
    if isinstance(exc, ollama.ResponseError):
        code = exc.status_code
        if code == 404:
            return LLMResponseError(
                f"model {model!r} is not available on {host} ({exc.error}); "
                f"try `ollama pull {model}`",
                code,
            )
        if code == -1:
            return LLMResponseError(f"Ollama reported an error mid-stream: {exc.error}", code)
        return LLMResponseError(f"Ollama answered {code}: {exc.error}", code)
    if isinstance(exc, httpx.TimeoutException):
        return LLMTimeout(f"no answer from Ollama at {host} in time ({type(exc).__name__})")
    if isinstance(exc, ConnectionError | httpx.ConnectError | httpx.NetworkError):
        return LLMUnavailable(f"cannot reach Ollama at {host}: {exc}")
    if isinstance(exc, pydantic.ValidationError | json.JSONDecodeError | ValueError):
        return LLMBadOutput(f"Ollama's reply is not in the expected shape: {exc}")
    if isinstance(exc, httpx.HTTPError):
        return LLMUnavailable(f"HTTP error talking to Ollama at {host}: {exc}")
    return LLMError(f"unexpected error from the Ollama client: {type(exc).__name__}: {exc}")


def build_llm(
    *, enabled: bool, host: str, model: str, timeout_seconds: float
) -> OllamaLLM | DisabledLLM:
    """The LLM the settings ask for."""
    if not enabled:
        return DisabledLLM(host, model)
    return OllamaLLM(host, model, timeout_seconds=timeout_seconds)
