"""What every HTTP backend shares: the lazy client, the cached probe and model list, the
total deadline, stats and metrics, and the text scrub. A backend adds only its protocol:
:meth:`HTTPBackend._complete`, :meth:`HTTPBackend._probe` and :meth:`HTTPBackend._list_models`.
"""

from __future__ import annotations

import abc
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from crt_loops.core import metrics
from crt_loops.core.http_client import new_client
from crt_loops.llm.deadline import Deadline
from crt_loops.llm.errors import LLMError, LLMTruncated, LLMUnavailable, LLMUnknownModel
from crt_loops.llm.text import scrub
from crt_loops.llm.types import ChatMessage, LLMReply, LLMStats, LLMUsage, TextSink

logger = logging.getLogger(__name__)

PROBE_TTL_UP = 30.0
PROBE_TTL_DOWN = 5.0
PROBE_TIMEOUT = httpx.Timeout(2.0, connect=1.0)


@dataclass(frozen=True)
class Completion:
    """What a backend's protocol produced for one call, before the shared checks."""

    content: str
    done_reason: str | None
    usage: LLMUsage


class HTTPBackend(abc.ABC):
    """The ``LLM`` protocol over an HTTP server; subclasses speak one protocol."""

    backend = "http"
    server_name = "the LLM server"

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
        self._client: httpx.Client | None = None
        self._lock = threading.Lock()
        self._probe_at: float | None = None
        self._probe_ok = False
        self._probe_error: str | None = None
        self._models: list[str] | None = None
        self._models_at: float | None = None
        self.stats = LLMStats()

    def _get_client(self) -> httpx.Client:
        with self._lock:
            if self._client is None:
                self._client = new_client(**self._client_kwargs)
            return self._client

    def close(self) -> None:
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            client.close()

    # -- liveness and models ----------------------------------------------------------------

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

    @abc.abstractmethod
    def _probe(self) -> tuple[bool, str | None]:
        """Whether the server answers, and why not when it does not."""

    @abc.abstractmethod
    def _list_models(self) -> list[str]:
        """The server's model names; raises httpx errors or ValueError."""

    def models(self, *, refresh: bool = False) -> list[str] | None:
        now = self._clock()
        with self._lock:
            if not refresh and self._models_at is not None and now - self._models_at < PROBE_TTL_UP:
                return self._models
        try:
            names: list[str] | None = self._list_models()
        except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
            logger.info("could not list the models at %s: %s", self.host, exc)
            names = None
        with self._lock:
            self._models, self._models_at = names, now
        return names

    def has_model(self, name: str) -> bool | None:
        """Whether the server lists ``name`` (None: it cannot tell)."""
        names = self.models()
        if names is None:
            return None
        return model_listed(name, names)

    def _mark_down(self, error: str) -> None:
        with self._lock:
            self._probe_ok, self._probe_error, self._probe_at = False, error, self._clock()

    def status(self) -> dict[str, Any]:
        available = self.available()
        return {
            "backend": self.backend,
            "host": self.host,
            "model": self.model,
            "available": available,
            "enabled": True,
            "models": self.models() if available else None,
            "last_error": self._probe_error if not available else self.stats.last_error,
            "calls": self.stats.calls,
            "failures": self.stats.failures,
            "prompt_tokens": self.stats.prompt_tokens,
            "cached_tokens": self.stats.cached_tokens,
            "completion_tokens": self.stats.completion_tokens,
        }

    # -- chat -------------------------------------------------------------------------------

    @abc.abstractmethod
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
        """One call to the server within ``deadline``; its reply and usage.

        ``on_text`` gets each streamed piece of the reply's text as it is read.
        """

    def chat(
        self,
        messages: Sequence[ChatMessage],
        *,
        model: str | None = None,
        schema: dict[str, Any] | None = None,
        temperature: float | None = None,
        max_tokens: int | None = None,
        keep_alive: float | str | None = None,
        on_text: TextSink | None = None,
    ) -> LLMReply:
        use_model = model or self.model
        prompt_chars = sum(len(m.content) for m in messages)
        started = time.perf_counter()
        deadline = Deadline(self.timeout_seconds)
        self.stats.calls += 1
        try:
            self._check_model(use_model)
            done = self._complete(
                messages,
                model=use_model,
                schema=schema,
                temperature=temperature,
                max_tokens=max_tokens,
                keep_alive=keep_alive,
                deadline=deadline,
                on_text=on_text,
            )
            content = scrub(done.content)
            if done.done_reason == "length":
                raise LLMTruncated(
                    f"the reply from {use_model} was cut at max_tokens={max_tokens} after "
                    f"{done.usage.completion_tokens or '?'} tokens ({len(content)} characters "
                    f"came); the schema or the limit needs changing",
                    partial=content,
                    max_tokens=max_tokens,
                    usage=done.usage,
                )
        except LLMError as error:
            seconds = time.perf_counter() - started
            metrics.observe_llm_call(metrics.llm_outcome(error), seconds, prompt_chars)
            usage = error.usage if isinstance(error, LLMTruncated) else None
            metrics.observe_llm_tokens(self.backend, usage)
            self.stats.count(usage)
            self.stats.failures += 1
            self.stats.last_error = str(error)
            if isinstance(error, LLMUnavailable):
                self._mark_down(str(error))
            raise
        duration_ms = (time.perf_counter() - started) * 1000
        metrics.observe_llm_call("ok", duration_ms / 1000, prompt_chars)
        metrics.observe_llm_tokens(self.backend, done.usage)
        self.stats.count(done.usage)
        self.stats.last_error = None
        return LLMReply(
            content=content,
            model=use_model,
            done_reason=done.done_reason,
            prompt_chars=prompt_chars,
            duration_ms=duration_ms,
            eval_count=done.usage.completion_tokens,
            usage=done.usage,
        )

    def _check_model(self, name: str) -> None:
        # Some servers (llama.cpp's among them) answer for any model name with the one they
        # loaded; asking their list first turns a typo into a run failure naming the model.
        names = self.models()
        if names is not None and not model_listed(name, names):
            raise LLMUnknownModel(self._unknown_model_message(name, names), name, names)

    def _unknown_model_message(self, name: str, names: Sequence[str]) -> str:
        return unknown_model_message(name, self.host, names)


def model_listed(name: str, names: Sequence[str]) -> bool:
    """Whether ``name`` is in ``names``, Ollama-style: no tag means ``:latest``."""

    def norm(n: str) -> str:
        return n if ":" in n.rsplit("/", 1)[-1] else f"{n}:latest"

    wanted = norm(name)
    return any(norm(n) == wanted for n in names)


def unknown_model_message(name: str, host: str, names: Sequence[str]) -> str:
    shown = ", ".join(names[:10]) or "none"
    return f"model {name!r} is not on the server at {host} (it has: {shown})"
