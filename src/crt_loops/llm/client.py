"""The LLM the settings ask for, and the names every caller imports.

Two backends implement the ``LLM`` protocol over plain httpx: :class:`OllamaLLM` (Ollama's
``/api/chat``) and :class:`OpenAICompatibleLLM` (``/v1/chat/completions``: llama.cpp's server,
vLLM, LM Studio, LocalAI). Both keep one total deadline per call, report token usage, list the
server's models and share the error tree in ``crt_loops.llm.errors``; model text is scrubbed
of invalid code points before anyone sees it. :class:`DisabledLLM` stands in when
``CRT_LLM_ENABLED=false``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from crt_loops.llm.base import HTTPBackend
from crt_loops.llm.errors import (
    LLMBadOutput,
    LLMError,
    LLMResponseError,
    LLMTimeout,
    LLMTruncated,
    LLMUnavailable,
    LLMUnknownModel,
)
from crt_loops.llm.ollama import OllamaLLM
from crt_loops.llm.openai import OpenAICompatibleLLM
from crt_loops.llm.types import (
    LLM,
    ChatMessage,
    LLMReply,
    LLMStats,
    LLMUsage,
    TextSink,
    add_usage,
)

__all__ = [
    "LLM",
    "ChatMessage",
    "DisabledLLM",
    "HTTPBackend",
    "LLMBadOutput",
    "LLMError",
    "LLMReply",
    "LLMResponseError",
    "LLMStats",
    "LLMTimeout",
    "LLMTruncated",
    "LLMUnavailable",
    "LLMUnknownModel",
    "LLMUsage",
    "OllamaLLM",
    "OpenAICompatibleLLM",
    "TextSink",
    "add_usage",
    "build_llm",
]

Backend = Literal["ollama", "openai"]


class DisabledLLM:
    """The LLM when ``CRT_LLM_ENABLED=false``: never available, every call refused."""

    backend = "disabled"

    def __init__(self, host: str, model: str) -> None:
        self.host = host
        self.model = model

    def available(self, *, refresh: bool = False) -> bool:
        return False

    def models(self, *, refresh: bool = False) -> list[str] | None:
        return None

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
        raise LLMUnavailable("the LLM is disabled (CRT_LLM_ENABLED=false)")

    def status(self) -> dict[str, Any]:
        return {
            "backend": self.backend,
            "host": self.host,
            "model": self.model,
            "available": False,
            "enabled": False,
            "models": None,
        }


def build_llm(
    *,
    enabled: bool,
    host: str,
    model: str,
    timeout_seconds: float,
    backend: Backend = "ollama",
    api_key: str | None = None,
) -> HTTPBackend | DisabledLLM:
    """The LLM the settings ask for."""
    if not enabled:
        return DisabledLLM(host, model)
    if backend == "openai":
        return OpenAICompatibleLLM(host, model, api_key=api_key, timeout_seconds=timeout_seconds)
    return OllamaLLM(host, model, timeout_seconds=timeout_seconds)
