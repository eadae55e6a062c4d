"""The language model behind the agent: the ``LLM`` protocol, the Ollama adapter, its errors."""

from __future__ import annotations

from crt_loops.llm.client import (
    LLM,
    ChatMessage,
    DisabledLLM,
    LLMBadOutput,
    LLMError,
    LLMReply,
    LLMResponseError,
    LLMStats,
    LLMTimeout,
    LLMTruncated,
    LLMUnavailable,
    OllamaLLM,
    build_llm,
)

__all__ = [
    "LLM",
    "ChatMessage",
    "DisabledLLM",
    "LLMBadOutput",
    "LLMError",
    "LLMReply",
    "LLMResponseError",
    "LLMStats",
    "LLMTimeout",
    "LLMTruncated",
    "LLMUnavailable",
    "OllamaLLM",
    "build_llm",
]
