"""Blocking calls that a stopping service can walk away from, all at once.

A blocking socket read cannot be cancelled from another thread, and a model or a remote Ledger
may take minutes to answer. :class:`Abandoner` runs each call on its own daemon thread while the
caller waits on an event that either the call's end or :meth:`Abandoner.abort` sets. After
``abort()`` every waiting caller gets the ``interrupted`` exception it passed at once, new calls
are refused the same way, and an abandoned call dies with the process. Used by the LLM
(:mod:`crt_loops.llm.interruptible`) and the Ledger client.
"""

from __future__ import annotations

import itertools
import logging
import queue
import threading
from collections.abc import Callable
from typing import Any, Generic, TypeVar

T = TypeVar("T")

logger = logging.getLogger(__name__)

_call_ids = itertools.count(1)
#: How long a thread whose call ended waits for the next call before it ends.
IDLE_SECONDS = 5.0


class _Call(Generic[T]):
    """One call in flight: its outcome, and the event its caller waits on."""

    def __init__(self) -> None:
        self.done = threading.Event()
        self.finished = False
        self.value: T | None = None
        self.error: BaseException | None = None


class _Worker:
    """A daemon thread running one call after another; it waits ``idle`` seconds for the
    next, then ends. ``None`` handed to it ends it at once."""

    def __init__(self, owner: Abandoner) -> None:
        self.owner = owner
        self.jobs: queue.SimpleQueue[Callable[[], None] | None] = queue.SimpleQueue()
        self.thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self) -> None:
        owner = self.owner
        while True:
            try:
                job = self.jobs.get(timeout=owner.idle_seconds)
            except queue.Empty:
                if owner._retire(self):
                    return
                job = self.jobs.get()  # a caller took this worker just as it timed out
            if job is None:
                return
            job()
            if not owner._park(self):
                return


class Abandoner:
    """Runs calls so that :meth:`abort` can release every caller still waiting on one."""

    def __init__(self, what: str, *, idle_seconds: float = IDLE_SECONDS) -> None:
        self.what = what  # "LLM", "Ledger": for thread names and the abort's log line
        self.idle_seconds = idle_seconds
        self._lock = threading.Lock()
        self._calls: set[_Call[Any]] = set()
        self._idle: list[_Worker] = []
        self._aborted = False
        #: Set by :meth:`abort`; a retry's back-off waits on it so that a stop ends the wait.
        self.stopping = threading.Event()

    @property
    def aborted(self) -> bool:
        return self._aborted

    def abort(self) -> int:
        """Stop waiting for every call in flight and refuse new ones; returns how many."""
        with self._lock:
            self._aborted = True
            calls = list(self._calls)
            idle, self._idle = self._idle, []
        self.stopping.set()
        for call in calls:
            call.done.set()
        for worker in idle:
            worker.jobs.put(None)
        if calls:
            logger.info(
                "abandoned %d %s call(s) in flight: the service is stopping", len(calls), self.what
            )
        return len(calls)

    def run(self, work: Callable[[], T], interrupted: Callable[[str], BaseException]) -> T:
        """``work()``'s result, or ``interrupted(why)`` raised once :meth:`abort` was called."""
        call: _Call[T] = _Call()
        with self._lock:
            if self._aborted:
                raise interrupted(f"the service is stopping; no {self.what} call made")
            self._calls.add(call)

        def target() -> None:
            try:
                call.value = work()
                call.finished = True
            except BaseException as exc:  # handed to the caller, who raises it
                call.error = exc
            finally:
                call.done.set()

        name = f"{self.what.lower()}-call-{next(_call_ids)}"
        try:
            self._hand(target, name)
            call.done.wait()
        finally:
            with self._lock:
                self._calls.discard(call)
        if call.error is not None:
            raise call.error
        if not call.finished:
            raise interrupted(
                f"the service stopped while the {self.what} was answering; call abandoned"
            )
        return call.value  # type: ignore[return-value]

    @property
    def idle_threads(self) -> int:
        """Threads waiting for a next call."""
        with self._lock:
            return len(self._idle)

    def _hand(self, job: Callable[[], None], name: str) -> None:
        """Run ``job`` on a waiting thread, or on a new one when none waits."""
        with self._lock:
            worker = self._idle.pop() if self._idle else None
        if worker is None:
            worker = _Worker(self)
            worker.thread.name = name
            worker.thread.start()
        else:
            worker.thread.name = name
        worker.jobs.put(job)

    def _park(self, worker: _Worker) -> bool:
        """After a call: whether ``worker`` waits for the next one (not once aborted)."""
        with self._lock:
            if self._aborted:
                return False
            worker.thread.name = f"{self.what.lower()}-idle"
            self._idle.append(worker)
            return True

    def _retire(self, worker: _Worker) -> bool:
        """Whether ``worker``, idle too long, may end: False when a caller has just taken it."""
        with self._lock:
            if worker in self._idle:
                self._idle.remove(worker)
                return True
            return False
