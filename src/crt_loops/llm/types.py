"""The values an LLM call takes and returns, and the protocol every backend implements."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

#: Called with each piece of a reply's text as the server streams it (see ``LLM.chat``).
TextSink = Callable[[str], None]


@dataclass(frozen=True)
class ChatMessage:
    role: str  # system, user or assistant
    content: str


@dataclass(frozen=True)
class LLMUsage:
    """What one call cost, as the server reported it (None: the server did not say).

    ``prompt_tokens`` is the whole prompt; ``prompt_eval_tokens`` the part the server had to
    evaluate, the rest (``cached_tokens``) coming from its prompt cache. Ollama reports only
    the evaluated count, so for it ``prompt_tokens == prompt_eval_tokens`` and the cache is
    unknown; llama.cpp's server reports all three.
    """

    prompt_tokens: int | None = None
    prompt_eval_tokens: int | None = None
    cached_tokens: int | None = None
    completion_tokens: int | None = None
    prompt_ms: float | None = None
    generation_ms: float | None = None

    def as_dict(self) -> dict[str, int | float | None]:
        return {
            "prompt_tokens": self.prompt_tokens,
            "prompt_eval_tokens": self.prompt_eval_tokens,
            "cached_tokens": self.cached_tokens,
            "completion_tokens": self.completion_tokens,
            "prompt_ms": None if self.prompt_ms is None else round(self.prompt_ms, 1),
            "generation_ms": None if self.generation_ms is None else round(self.generation_ms, 1),
        }


def add_usage(a: LLMUsage | None, b: LLMUsage | None) -> LLMUsage | None:
    """The sum of two calls' usage (a pass that made several calls); None stays unknown."""
    if a is None or b is None:
        return a or b

    def plus(x: Any, y: Any) -> Any:
        return y if x is None else x if y is None else x + y

    return LLMUsage(*(plus(getattr(a, f), getattr(b, f)) for f in LLMUsage.__dataclass_fields__))


@dataclass(frozen=True)
class LLMReply:
    content: str
    model: str
    done_reason: str | None
    prompt_chars: int
    duration_ms: float
    eval_count: int | None = None
    usage: LLMUsage = field(default_factory=LLMUsage)


@dataclass
class LLMStats:
    calls: int = 0
    failures: int = 0
    last_error: str | None = None
    prompt_tokens: int = 0
    cached_tokens: int = 0
    completion_tokens: int = 0

    def count(self, usage: LLMUsage | None) -> None:
        if usage is None:
            return
        self.prompt_tokens += usage.prompt_tokens or 0
        self.cached_tokens += usage.cached_tokens or 0
        self.completion_tokens += usage.completion_tokens or 0


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
        on_text: TextSink | None = None,
    ) -> LLMReply:
        """One chat completion; raises an ``LLMError`` subclass on any failure.

        ``on_text``, when given, is called with each piece of the reply's text as it arrives
        (a backend that cannot stream calls it once with the whole reply); the returned
        ``LLMReply`` stays the authority on what the reply was.
        """
        ...

    def models(self, *, refresh: bool = False) -> list[str] | None:
        """The model names the server has (cached), or None when it cannot be asked."""
        ...

    def status(self) -> dict[str, Any]:
        """``{host, model, available, enabled, backend, models, ...}`` for status endpoints."""
        ...
