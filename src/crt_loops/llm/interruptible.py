"""Abandon in-flight LLM calls when the service stops, so Ctrl-C never waits on a model.

A blocking HTTP read cannot be cancelled from another thread, and a model may take minutes to
answer. :class:`InterruptibleLLM` wraps any ``LLM``: each ``chat()`` runs on its own daemon
thread while the caller waits on an event that either the answer or :meth:`abort` sets. After
``abort()`` every waiting caller gets :class:`LLMInterrupted` at once (its heartbeat run is then
recorded ``failed``/``interrupted``), and the abandoned call dies with the process.
"""

from __future__ import annotations

import itertools
import logging
import threading
from collections.abc import Sequence
from typing import Any

from crt_loops.llm.client import LLM, ChatMessage, LLMError, LLMReply, TextSink

logger = logging.getLogger(__name__)

_call_ids = itertools.count(1)


class LLMInterrupted(LLMError):
    """Raised by ``chat()`` when the service began stopping before the model answered."""


class _Call:
    """One chat call in flight: its outcome, and the event its caller waits on."""

    def __init__(self) -> None:
        self.done = threading.Event()
        self.reply: LLMReply | None = None
        self.error: BaseException | None = None


class InterruptibleLLM:
    """An ``LLM`` whose calls in flight can all be abandoned at once by :meth:`abort`."""

    def __init__(self, inner: LLM) -> None:
        self.inner = inner
        self.host = inner.host
        self.model = inner.model
        self._lock = threading.Lock()
        self._calls: set[_Call] = set()
        self._aborted = False

    @property
    def aborted(self) -> bool:
        return self._aborted

    def available(self, *, refresh: bool = False) -> bool:
        return not self._aborted and self.inner.available(refresh=refresh)

    def status(self) -> dict[str, Any]:
        return self.inner.status()

    def __getattr__(self, name: str) -> Any:
        # Backend extras (model listing, stats) stay reachable through the wrapper.
        return getattr(self.inner, name)

    def abort(self) -> int:
        """Stop waiting for every call in flight and refuse new ones; returns how many."""
        with self._lock:
            self._aborted = True
            calls = list(self._calls)
        for call in calls:
            call.done.set()
        if calls:
            logger.info("abandoned %d LLM call(s) in flight: the service is stopping", len(calls))
        return len(calls)

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
        call = _Call()
        with self._lock:
            if self._aborted:
                raise LLMInterrupted("the service is stopping; no LLM call made")
            self._calls.add(call)

        def work() -> None:
            try:
                call.reply = self.inner.chat(
                    messages,
                    model=model,
                    schema=schema,
                    temperature=temperature,
                    max_tokens=max_tokens,
                    keep_alive=keep_alive,
                    on_text=on_text,
                )
            except BaseException as exc:  # handed to the caller, who raises it
                call.error = exc
            finally:
                call.done.set()

        worker = threading.Thread(target=work, name=f"llm-call-{next(_call_ids)}", daemon=True)
        try:
            worker.start()
            call.done.wait()
        finally:
            with self._lock:
                self._calls.discard(call)
        if call.error is not None:
            raise call.error
        if call.reply is None:
            raise LLMInterrupted("the service stopped while the LLM was answering; call abandoned")
        return call.reply
