"""The CRT Loops service: ``create_app(settings)`` builds it, the lifespan runs it.

Startup: settings, logging, then ``Services.start`` (api/services.py: the DB, the LLM, the
Ledger, the loops), off the event loop, then what it built is frozen out of the garbage
collector's passes (core/heap.py); shutdown is ``Services.stop``, the same steps backwards.
``uvicorn crt_api:app`` serves the top-level ``crt_api.app = create_app()``; nothing starts at
import.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
from fastapi import FastAPI

from crt_loops.api.access import AccessControl
from crt_loops.api.docs import install_docs
from crt_loops.api.routes import (
    approvals,
    dashboard,
    insights,
    journal,
    ledger,
    loops,
    pickers,
    poll,
    system,
    threads,
)
from crt_loops.api.routes import heartbeat as heartbeat_routes
from crt_loops.api.routes import metrics as metrics_routes
from crt_loops.api.routes.deps import ERROR_RESPONSES
from crt_loops.api.services import Services
from crt_loops.api.stop_hook import StopHook, exit_immediately
from crt_loops.core import heap
from crt_loops.core.logs import configure_logging
from crt_loops.db.errors import DatabaseError
from crt_loops.edge.stack import add_body_guards, add_browser_guards
from crt_loops.edge.unavailable import database_error_handler
from crt_loops.settings import Settings, environment_snapshot, load_settings

logger = logging.getLogger("crt_api")

# The largest request body: far above a 32,000-character message or a 64 KiB HEARTBEAT.md,
# even JSON-escaped.
MAX_REQUEST_BYTES = 1024 * 1024


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the app. ``settings`` default to the environment, read when the app starts."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        active = settings or load_settings()
        configure_logging(active.log_level, active.access_log)
        app.state.settings = active
        logger.info(
            "starting CRT Loops (data dir %s, env %s)", active.data_dir, environment_snapshot()
        )
        # Ctrl-C reaches the services before uvicorn drains its requests (see stop_hook).
        hook = StopHook(lambda: _begin_stop(app), exit_now=exit_immediately)
        hook.install()
        try:
            services = await anyio.to_thread.run_sync(Services.start, active)
        except BaseException:
            hook.uninstall()
            raise
        app.state.services = services
        # The seed's names for the loops, for anyone looking in app.state.
        for name, loop in services.loops.items():
            setattr(app.state, f"{name}_loop", loop)
        heap.freeze_startup_objects()
        try:
            yield
        finally:
            heap.unfreeze()
            await anyio.to_thread.run_sync(services.stop)
            hook.uninstall()

    app = FastAPI(
        title="CRT Loops",
        version=system.VERSION,
        summary="A personal AI agent's chat threads and its four background loops.",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )
    install_docs(app)
    app.state.settings = settings
    app.state.services = None

    # Bodies are refused with 413 while being read, before parsing: without a cap a 10 MB
    # message was read, parsed and echoed back whole in its 422 (tests/api/test_fuzz_api.py).
    # Then 422 for text that cannot be stored: a lone surrogate in a config's model was
    # committed, and every later read of that config was a 500.
    add_body_guards(app, limit=MAX_REQUEST_BYTES)

    # /api and /metrics need the token when one is set; with none set, only loopback
    # clients are served.
    app.add_middleware(AccessControl)

    def host_names() -> tuple[str, ...]:
        active: Settings | None = app.state.settings
        return active.host_names if active is not None else ()

    # Outermost: the Host allow-list (DNS rebinding), then the browser-origin checks (CSRF).
    add_browser_guards(app, host_names=host_names)
    # A locked or full database is a JSON 503 with Retry-After, not a plain-text 500.
    app.add_exception_handler(DatabaseError, database_error_handler())
    for module in (
        system,
        threads,
        journal,
        insights,
        loops,
        heartbeat_routes,
        approvals,
        ledger,
        pickers,
        poll,
        dashboard,
        metrics_routes,
    ):
        app.include_router(module.router, responses=ERROR_RESPONSES)
    return app


def _begin_stop(app: FastAPI) -> None:
    services: Services | None = getattr(app.state, "services", None)
    if services is not None:
        services.begin_stop()
