"""One streamed HTTP call with a total deadline: connect, waiting, streaming and parsing.

httpx's timeouts bound each read, not the call: a model that sends one chunk a second never
trips a 120 s read timeout, and kept a heartbeat run ``running`` (and its LLM slot taken) for
minutes. Here the whole call gets ``seconds``: until the response headers arrive, httpx's
timeouts are set to what is left of it; once they have arrived, a watchdog timer shuts the
socket down at the deadline, which wakes a read blocked on a silent server at once. Every
chunk read also checks the deadline, so a trickle ends on time even without the watchdog.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx

from crt_loops.llm.errors import LLMError, LLMTimeout, LLMUnavailable

logger = logging.getLogger(__name__)

CONNECT_SECONDS = 2.0  # a local server that does not accept in 2 s is not there


class Deadline:
    """A point in time on ``clock``; ``remaining()`` never goes below zero."""

    def __init__(self, seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.seconds = seconds
        self._clock = clock
        self.at = clock() + seconds

    def remaining(self) -> float:
        return max(0.0, self.at - self._clock())

    def expired(self) -> bool:
        return self._clock() >= self.at

    def timeout_error(self, server: str) -> LLMTimeout:
        return LLMTimeout(
            f"the call to {server} did not finish within {self.seconds:g} s "
            "(CRT_LLM_TIMEOUT_SECONDS)"
        )


class _Watchdog:
    """Shuts a response's socket down when the deadline passes (one timer thread per call)."""

    def __init__(self, deadline: Deadline) -> None:
        self._deadline = deadline
        self._lock = threading.Lock()
        self._response: httpx.Response | None = None
        self.fired = False
        self._timer = threading.Timer(deadline.remaining(), self._fire)
        self._timer.name = "llm-deadline"
        self._timer.daemon = True

    def start(self) -> None:
        self._timer.start()

    def watch(self, response: httpx.Response) -> None:
        with self._lock:
            self._response = response
            fired = self.fired
        if fired:
            self._cut(response)

    def _fire(self) -> None:
        with self._lock:
            self.fired = True
            response = self._response
        if response is not None:
            self._cut(response)

    @staticmethod
    def _cut(response: httpx.Response) -> None:
        stream = response.extensions.get("network_stream")
        sock = stream.get_extra_info("socket") if stream is not None else None
        if isinstance(sock, socket.socket):
            try:
                # shutdown, not close: it wakes a recv() blocked in the reading thread.
                sock.shutdown(socket.SHUT_RDWR)
            except OSError as exc:  # already closed by the other side: nothing left to cut
                logger.debug("LLM deadline: socket already gone (%s)", exc)
            return
        response.close()  # a transport without a socket (tests' MockTransport)

    def stop(self) -> None:
        self._timer.cancel()
        if self._timer.is_alive() and self._timer is not threading.current_thread():
            self._timer.join(1.0)


class DeadlineResponse:
    """A streamed response whose reads keep to the call's deadline."""

    def __init__(self, response: httpx.Response, deadline: Deadline, server: str) -> None:
        self.response = response
        self.status_code = response.status_code
        self._deadline = deadline
        self._server = server

    def read(self) -> bytes:
        return b"".join(self._chunks())

    def _chunks(self) -> Iterator[bytes]:
        for chunk in self.response.iter_bytes():
            if self._deadline.expired():
                raise self._deadline.timeout_error(self._server)
            yield chunk

    def lines(self) -> Iterator[str]:
        """Each non-empty line, decoded as UTF-8 with invalid bytes replaced (U+FFFD)."""
        pending = b""
        for chunk in self._chunks():
            pending += chunk
            *complete, pending = pending.split(b"\n")
            for raw in complete:
                line = raw.decode("utf-8", errors="replace").strip()
                if line:
                    yield line
        tail = pending.decode("utf-8", errors="replace").strip()
        if tail:
            yield tail


@contextmanager
def post_stream(
    client: httpx.Client,
    url: str,
    *,
    body: dict[str, Any],
    headers: dict[str, str] | None,
    deadline: Deadline,
    server: str,
) -> Iterator[DeadlineResponse]:
    """POST ``body`` as JSON and stream the answer, all of it within ``deadline``.

    Raises LLMTimeout at the deadline and LLMUnavailable when nothing answers; any other
    ``httpx`` error is left to the caller, which knows the protocol.
    """
    left = deadline.remaining()
    if left <= 0:
        raise deadline.timeout_error(server)
    timeout = httpx.Timeout(left, connect=min(CONNECT_SECONDS, left))
    watchdog = _Watchdog(deadline)
    watchdog.start()
    try:
        with client.stream("POST", url, json=body, headers=headers, timeout=timeout) as response:
            watchdog.watch(response)
            yield DeadlineResponse(response, deadline, server)
            if watchdog.fired:
                raise deadline.timeout_error(server)
    except httpx.TimeoutException as exc:
        if isinstance(exc, httpx.ConnectTimeout) and not deadline.expired():
            raise LLMUnavailable(
                f"cannot reach {server}: no connection within {CONNECT_SECONDS:g} s"
            ) from exc
        raise deadline.timeout_error(server) from exc
    except (httpx.ConnectError, ConnectionError) as exc:
        raise LLMUnavailable(f"cannot reach {server}: {exc}") from exc
    except httpx.HTTPError as exc:
        if watchdog.fired or deadline.expired():
            raise deadline.timeout_error(server) from exc
        raise
    except LLMError as exc:
        # A stream the watchdog cut looks like a reply that ended early; it was the deadline.
        if watchdog.fired and not isinstance(exc, LLMTimeout):
            raise deadline.timeout_error(server) from exc
        raise
    finally:
        watchdog.stop()
