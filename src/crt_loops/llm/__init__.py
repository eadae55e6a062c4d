"""The language model behind the agent: the ``LLM`` protocol, its Ollama and OpenAI-compatible
backends, and their errors."""

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
    LLMUnknownModel,
    LLMUsage,
    OllamaLLM,
    OpenAICompatibleLLM,
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
    "LLMUnknownModel",
    "LLMUsage",
    "OllamaLLM",
    "OpenAICompatibleLLM",
    "build_llm",
]
