"""Every error an LLM call can raise, whichever backend answered.

The tree (each ``httpx`` or parsing error is translated once, at the backend, ``from`` the
original)::

    LLMError
    ├── LLMUnavailable     no server answering (connection refused, DNS, LLM disabled)
    ├── LLMTimeout         the call did not finish within its total deadline
    ├── LLMResponseError   the server answered with an error (``status_code``: 404, 500, 429,
    │   │                  or -1 for an error in the middle of a stream)
    │   └── LLMUnknownModel  the server does not have the model asked for (``model``, ``known``)
    ├── LLMTruncated       the reply was cut at the token limit; ``partial`` is what came
    └── LLMBadOutput       a reply that is not the protocol's shape, or not the JSON we asked for
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from crt_loops.llm.types import LLMUsage


class LLMError(Exception):
    """Base of every error raised by an LLM call."""


class LLMUnavailable(LLMError):
    """Raised when no LLM answers: connection refused, bad host, or ``CRT_LLM_ENABLED=false``."""


class LLMTimeout(LLMError):
    """Raised when a call (connect, waiting, streaming and parsing together) outlives
    ``CRT_LLM_TIMEOUT_SECONDS``."""


class LLMResponseError(LLMError):
    """Raised when the server answered with an error status (or an error mid-stream)."""

    def __init__(self, message: str, status_code: int) -> None:
        super().__init__(message)
        self.status_code = status_code


class LLMUnknownModel(LLMResponseError):
    """Raised when the server lacks the model: it said so (404), or its model list has no such
    name. ``known`` is what the server has, when it told us."""

    def __init__(self, message: str, model: str, known: Sequence[str] = ()) -> None:
        super().__init__(message, 404)
        self.model = model
        self.known = tuple(known)


class LLMTruncated(LLMError):
    """Raised when the reply was cut at the token limit (Ollama's ``done_reason == "length"``,
    OpenAI's ``finish_reason == "length"``). ``partial`` holds the text that did come, so what
    was cut can be recorded; it is never "repaired" into an answer."""

    def __init__(
        self,
        message: str,
        *,
        partial: str = "",
        max_tokens: int | None = None,
        usage: LLMUsage | None = None,
    ) -> None:
        super().__init__(message)
        self.partial = partial
        self.max_tokens = max_tokens
        self.usage = usage


class LLMBadOutput(LLMError):
    """Raised when the reply is malformed, or is not JSON although a schema was requested."""
