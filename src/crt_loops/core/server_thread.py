"""Serve an ASGI app with real uvicorn in a background thread (the embedded Ledger, and tests).

``start()`` returns once the socket is listening, so callers know the bound port even when they
asked for port 0; ``stop()`` is bounded and idempotent.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import threading
from typing import Any

import uvicorn

logger = logging.getLogger(__name__)


class ServerStartError(RuntimeError):
    """Raised when the server could not start listening (port taken, bad address, ...)."""


class _WakeableServer(uvicorn.Server):
    """uvicorn's server, whose main loop :meth:`wake` ends at once: uvicorn itself looks at
    ``should_exit`` every 0.1 s, which every stop (one per embedded Ledger) waited out."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._woken: asyncio.Event | None = None

    async def main_loop(self) -> None:
        # uvicorn's own loop, with its 0.1 s sleep made an event wait.
        self._loop, self._woken = asyncio.get_running_loop(), asyncio.Event()
        counter = 0
        should_exit = await self.on_tick(counter)
        while not should_exit:
            counter = (counter + 1) % 864000
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._woken.wait(), 0.1)
            should_exit = await self.on_tick(counter)

    def wake(self) -> None:
        """Have the main loop look at ``should_exit`` now (callable from any thread)."""
        loop, woken = self._loop, self._woken
        if loop is not None and woken is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile: nothing to wake
                loop.call_soon_threadsafe(woken.set)


class ServerThread:
    """A uvicorn server on its own thread and event loop."""

    def __init__(
        self, app: Any, *, host: str = "127.0.0.1", port: int = 0, name: str = "server"
    ) -> None:
        self.app = app
        self.host = host
        self.requested_port = port
        self.name = name
        self._server: _WakeableServer | None = None
        self._thread: threading.Thread | None = None
        self._sock: socket.socket | None = None
        self.port: int | None = None

    @property
    def url(self) -> str:
        if self.port is None:
            raise ServerStartError(f"{self.name} is not running")
        return f"http://{self.host}:{self.port}"

    def start(self, timeout: float = 10.0) -> ServerThread:
        # Bind here, in the caller's thread, so a taken port is an immediate, clear error.
        # IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY only on sockets whose protocol says TCP,
        # and without it every small response waited ~44 ms on Nagle's algorithm.
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self.host, self.requested_port))
        except OSError as exc:
            sock.close()
            raise ServerStartError(
                f"{self.name} cannot listen on {self.host}:{self.requested_port}: {exc}"
            ) from exc
        sock.listen(128)
        sock.set_inheritable(True)
        self._sock = sock
        self.port = sock.getsockname()[1]
        # No log_config / log_level / access_log=False here: uvicorn applies those to the global
        # "uvicorn.*" loggers, which silenced the host server's own startup and access lines
        # in the process serving the embedded Ledger (found by tests/test_workers.py).
        config = uvicorn.Config(
            self.app, log_config=None, log_level=None, lifespan="on", timeout_graceful_shutdown=1
        )
        config.access_log = False  # read per connection; set after configure_logging() ran
        server = _WakeableServer(config)
        # uvicorn installs signal handlers only on the main thread: this one leaves them alone.
        self._server = server
        self._thread = threading.Thread(
            target=server.run, kwargs={"sockets": [sock]}, name=f"{self.name}-server", daemon=True
        )
        self._thread.start()
        started = threading.Event()

        def check() -> bool:
            return bool(server.started) or not (self._thread and self._thread.is_alive())

        while not check():
            if started.wait(0.01):
                break
            timeout -= 0.01
            if timeout <= 0:
                self.stop()
                raise ServerStartError(f"{self.name} did not start in time")
        if not server.started:
            self.stop()
            raise ServerStartError(f"{self.name} failed during startup (see log)")
        logger.info("%s listening on %s", self.name, self.url)
        return self

    def stop(self, timeout: float = 5.0) -> None:
        server, thread = self._server, self._thread
        if server is not None:
            server.should_exit = True
            server.wake()
        if thread is not None:
            thread.join(timeout)
            if thread.is_alive():
                logger.warning("%s did not stop within %.1fs", self.name, timeout)
        if self._sock is not None:
            self._sock.close()
        self._server = self._thread = self._sock = None

    def __enter__(self) -> ServerThread:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
