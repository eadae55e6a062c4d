"""Serve an ASGI app with real uvicorn in a background thread (the embedded Ledger, and tests).

``start()`` returns once the socket is listening, so callers know the bound port even when they
asked for port 0; ``stop()`` is bounded and idempotent.
"""

from __future__ import annotations

import logging
import socket
import threading
from typing import Any

import uvicorn

logger = logging.getLogger(__name__)


class ServerStartError(RuntimeError):
    """Raised when the server could not start listening (port taken, bad address, ...)."""


class ServerThread:
    """A uvicorn server on its own thread and event loop."""

    def __init__(
        self, app: Any, *, host: str = "127.0.0.1", port: int = 0, name: str = "server"
    ) -> None:
        self.app = app
        self.host = host
        self.requested_port = port
        self.name = name
        self._server: uvicorn.Server | None = None
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
            self.app, log_config=None, log_level=None, lifespan="on", timeout_graceful_shutdown=3
        )
        config.access_log = False  # read per connection; set after configure_logging() ran
        server = uvicorn.Server(config)
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
