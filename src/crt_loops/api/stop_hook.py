"""Ctrl-C reaches the app the moment it is pressed, not after uvicorn's drain.

uvicorn's signal handler only sets ``should_exit``; it then waits for open requests to finish
before it runs the lifespan's shutdown. A request (or a loop) waiting on a model would hold the
whole stop for as long as the model takes. :class:`StopHook` chains onto the process's SIGINT
and SIGTERM handlers for the app's lifetime: the first signal starts ``on_stop`` on a thread
(abandoning LLM calls, so those requests answer at once) and passes the signal on to uvicorn; a
second one exits the process immediately, as people expect of a second Ctrl-C.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any

logger = logging.getLogger(__name__)

SIGNALS = (signal.SIGINT, signal.SIGTERM)
#: The exit status of a forced stop: 128 + SIGINT, what a shell reports for Ctrl-C.
FORCED_EXIT_CODE = 130

Handler = Callable[[int, FrameType | None], Any]


class StopHook:
    """Wraps the current SIGINT/SIGTERM handlers; install and uninstall from the main thread."""

    def __init__(self, on_stop: Callable[[], object], *, exit_now: Callable[[int], object]) -> None:
        self._on_stop = on_stop
        self._exit_now = exit_now
        self._previous: dict[int, Handler] = {}
        self._installed: dict[int, Handler] = {}
        self.signals_seen = 0

    def install(self) -> bool:
        """Chain onto the handlers; False (and nothing changed) off the main thread."""
        if threading.current_thread() is not threading.main_thread():
            return False
        for sig in SIGNALS:
            previous = signal.getsignal(sig)
            if not callable(previous):
                continue  # SIG_DFL / SIG_IGN: nobody is serving on this process's signals
            handler = self._make_handler(previous)
            self._previous[sig] = previous
            self._installed[sig] = handler
            signal.signal(sig, handler)
        return bool(self._installed)

    def uninstall(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        for sig, handler in self._installed.items():
            if signal.getsignal(sig) is handler:
                signal.signal(sig, self._previous[sig])
        self._installed.clear()
        self._previous.clear()

    def _make_handler(self, previous: Handler) -> Handler:
        def handler(sig: int, frame: FrameType | None) -> Any:
            self.signals_seen += 1
            if self.signals_seen > 1:
                # Not through logging: a signal handler may interrupt a thread holding its lock.
                os.write(2, b"\nSecond interrupt: exiting now without a clean stop.\n")
                self._exit_now(FORCED_EXIT_CODE)
                return None
            threading.Thread(target=self._on_stop, name="stop-hook", daemon=True).start()
            return previous(sig, frame)

        return handler


def exit_immediately(code: int) -> None:
    """Leave the process now, skipping joins of threads still waiting on a model or a socket."""
    os._exit(code)
