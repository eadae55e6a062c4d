"""``crt serve`` (what ``make run`` runs): settings checked first, one log format, the banner.

A bad environment variable is one sentence and exit status 2, before anything starts. The
server is uvicorn's, with its own logging configuration off (the service's applies to every
line) and a short drain at shutdown, so a request waiting on something slow cannot hold Ctrl-C.
Once the socket listens the banner says where the dashboard is and what works.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from typing import Any, NoReturn

import uvicorn

from crt_loops.api.banner import banner_lines
from crt_loops.core.logs import configure_logging
from crt_loops.settings import Settings, SettingsError, load_settings

logger = logging.getLogger("crt_loops")

#: Seconds uvicorn waits for open requests once stopping; the lifespan's own stop is bounded too.
DRAIN_SECONDS = 1
EXIT_SETTINGS = 2
EXIT_STARTUP = 3


class BannerServer(uvicorn.Server):
    """uvicorn's server, printing the banner once it listens."""

    def __init__(self, config: uvicorn.Config, app_state: Any) -> None:
        super().__init__(config)
        self.app_state = app_state

    async def startup(self, sockets: Any = None) -> None:
        await super().startup(sockets=sockets)
        if self.should_exit or not self.servers:
            return
        host, port = self.servers[0].sockets[0].getsockname()[:2]
        shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host  # noqa: S104 (display only)
        for line in ready_banner(self.app_state, f"http://{shown}:{port}"):
            logger.info("%s", line)


def ready_banner(state: Any, url: str) -> list[str]:
    """The banner from the running app's services (set by the lifespan's startup)."""
    services = getattr(state, "services", None)
    ledger = getattr(services, "ledger", None)
    llm = getattr(services, "llm", None)
    loops = getattr(services, "loops", None) or {}
    ledger_info = {
        "url": getattr(ledger, "base_url", None),
        "embedded": getattr(ledger, "embedded", False),
        "agent": getattr(ledger, "agent_name", None),
        "error": getattr(services, "ledger_error", None),
    }
    return banner_lines(
        url=url,
        llm=llm.status() if llm is not None else {"available": False},
        ledger=ledger_info,
        loops=[(name, loop.running) for name, loop in loops.items()],
    )


def serve(*, host: str, port: int, workers: int = 1, log_level: str | None = None) -> int:
    """Run the service in the foreground until Ctrl-C; returns the exit status."""
    try:
        settings: Settings = load_settings()
    except SettingsError as exc:
        print(f"crt serve: {exc}", file=sys.stderr)
        return EXIT_SETTINGS
    if log_level:
        settings = settings.model_copy(update={"log_level": log_level.upper()})
    configure_logging(settings.log_level, settings.access_log)
    if workers > 1:
        # Several processes need an import string; each worker configures itself the same way.
        uvicorn.run(
            "crt_api:app",
            host=host,
            port=port,
            workers=workers,
            log_config=None,
            timeout_graceful_shutdown=DRAIN_SECONDS,
        )
        return 0
    from crt_loops.api.app import create_app

    app = create_app(settings)
    config = uvicorn.Config(
        app, host=host, port=port, log_config=None, timeout_graceful_shutdown=DRAIN_SECONDS
    )
    server = BannerServer(config, app.state)
    # uvicorn re-raises the Ctrl-C it handled once it has stopped; by then the stop is done.
    with contextlib.suppress(KeyboardInterrupt):
        server.run()
    return 0 if server.started else EXIT_STARTUP


def exit_now(code: int) -> NoReturn:
    """End ``crt serve`` once the service has stopped: every part is stopped and the DB closed,
    so the interpreter's teardown of its modules is skipped (it took 1-2 s of a Ctrl-C on a busy
    machine), and so are joins of threads a stop abandoned mid-call."""
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
