"""Abandon in-flight LLM calls when the service stops, so Ctrl-C never waits on a model.

:class:`InterruptibleLLM` wraps any ``LLM`` and runs each ``chat()`` through an
:class:`~crt_loops.core.abandon.Abandoner`: after :meth:`InterruptibleLLM.abort` every waiting
caller gets :class:`LLMInterrupted` at once (its heartbeat run is then recorded
``failed``/``interrupted``), and the abandoned call dies with the process.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from crt_loops.core.abandon import Abandoner
from crt_loops.llm.client import LLM, ChatMessage, LLMError, LLMReply, TextSink


class LLMInterrupted(LLMError):
    """Raised by ``chat()`` when the service began stopping before the model answered."""


class InterruptibleLLM:
    """An ``LLM`` whose calls in flight can all be abandoned at once by :meth:`abort`."""

    def __init__(self, inner: LLM) -> None:
        self.inner = inner
        self.host = inner.host
        self.model = inner.model
        self._calls = Abandoner("LLM")

    @property
    def aborted(self) -> bool:
        return self._calls.aborted

    def available(self, *, refresh: bool = False) -> bool:
        return not self._calls.aborted and self.inner.available(refresh=refresh)

    def status(self) -> dict[str, Any]:
        return self.inner.status()

    def __getattr__(self, name: str) -> Any:
        # Backend extras (model listing, stats) stay reachable through the wrapper.
        return getattr(self.inner, name)

    def abort(self) -> int:
        """Stop waiting for every call in flight and refuse new ones; returns how many."""
        return self._calls.abort()

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
        return self._calls.run(
            lambda: self.inner.chat(
                messages,
                model=model,
                schema=schema,
                temperature=temperature,
                max_tokens=max_tokens,
                keep_alive=keep_alive,
                on_text=on_text,
            ),
            LLMInterrupted,
        )
