"""The CRT Loops service: ``create_app(settings)`` builds it, the lifespan runs it.

Startup: settings, logging, then ``Services.start`` (api/services.py: the DB, the LLM, the
Ledger, the loops), off the event loop; shutdown is ``Services.stop``, the same steps
backwards. ``uvicorn crt_api:app`` serves
the top-level ``crt_api.app = create_app()``; nothing starts at import.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import anyio
from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from crt_loops.api.routes import dashboard, insights, journal, ledger, loops, system, threads
from crt_loops.api.routes import heartbeat as heartbeat_routes
from crt_loops.api.routes import metrics as metrics_routes
from crt_loops.api.routes.deps import ERROR_RESPONSES
from crt_loops.api.services import Services
from crt_loops.settings import Settings, environment_snapshot, load_settings

logger = logging.getLogger("crt_api")

LOG_FORMAT = "%(asctime)s %(levelname)s [%(threadName)s] %(name)s: %(message)s"
# The largest request body: far above a 32,000-character message or a 64 KiB HEARTBEAT.md,
# even JSON-escaped.
MAX_REQUEST_BYTES = 1024 * 1024


def configure_logging(level: str) -> None:
    """Root logging with thread names, unless the host (uvicorn --log-config) set it up."""
    root = logging.getLogger()
    if not any(getattr(h, "_crt", False) for h in root.handlers):
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter(LOG_FORMAT))
        handler._crt = True  # type: ignore[attr-defined]
        root.addHandler(handler)
    root.setLevel(level)
    # httpx logs every request at INFO: the Ledger and Ollama calls would drown the loops' lines.
    logging.getLogger("httpx").setLevel(max(logging.WARNING, root.level))


def is_loopback(host: str | None) -> bool:
    if not host:
        return False
    if host == "localhost":
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    # A dual-stack listener (--host ::) sees local IPv4 clients as ::ffff:127.0.0.1.
    mapped = getattr(address, "ipv4_mapped", None)
    return bool((mapped or address).is_loopback)


class BodySizeLimit:
    """Refuse a request body over ``limit`` bytes with a JSON 413, declared or streamed.

    (FastAPI's own ``max_body_size`` answers a declared oversize body in plain text.)
    """

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    def _refusal(self, size: str) -> JSONResponse:
        return JSONResponse(
            {"detail": f"request body too large: {size} bytes, the limit is {self.limit} bytes"},
            status_code=413,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.limit:
            await self._refusal(declared.decode())(scope, receive, send)
            return
        received = 0
        over = responded = False

        async def limited() -> Message:
            # A chunked body has no length to check up front: past the limit the app is told
            # the client left, and whatever it answers is replaced by the 413 below.
            nonlocal received, over
            if over:
                return {"type": "http.disconnect"}
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.limit:
                over = True
                return {"type": "http.disconnect"}
            return message

        async def guarded(message: Message) -> None:
            nonlocal responded
            if not over:
                await send(message)
            elif not responded:
                responded = True
                await self._refusal(f"over {self.limit}")(scope, receive, send)

        await self.app(scope, limited, guarded)
        if over and not responded:
            await self._refusal(f"over {self.limit}")(scope, receive, send)


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the app. ``settings`` default to the environment, read when the app starts."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        active = settings or load_settings()
        configure_logging(active.log_level)
        app.state.settings = active
        logger.info(
            "starting CRT Loops (data dir %s, env %s)", active.data_dir, environment_snapshot()
        )
        services = await anyio.to_thread.run_sync(Services.start, active)
        app.state.services = services
        # The seed's names for the loops, for anyone looking in app.state.
        for name, loop in services.loops.items():
            setattr(app.state, f"{name}_loop", loop)
        try:
            yield
        finally:
            await anyio.to_thread.run_sync(services.stop)

    app = FastAPI(
        title="CRT Loops",
        version=system.VERSION,
        summary="A personal AI agent's chat threads and its four background loops.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.services = None

    @app.middleware("http")
    async def access_control(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        # /api and /metrics need the token when one is set; with none set, only loopback
        # clients are served.
        path = request.url.path
        active: Settings | None = request.app.state.settings
        if (path.startswith("/api") or path == "/metrics") and active is not None:
            token = active.api_token.get_secret_value() if active.api_token else None
            client = request.client.host if request.client else None
            if token:
                supplied = request.headers.get("authorization", "")
                scheme, _, value = supplied.partition(" ")
                ok = scheme.lower() == "bearer" and hmac.compare_digest(
                    value.strip().encode(), token.encode()
                )
                if not ok:
                    return JSONResponse(
                        {
                            "detail": "missing or wrong bearer token "
                            "(Authorization: Bearer <CRT_API_TOKEN>)"
                        },
                        status_code=401,
                        headers={"WWW-Authenticate": "Bearer"},
                    )
            elif not is_loopback(client):
                return JSONResponse(
                    {
                        "detail": "this service answers only loopback clients while "
                        "CRT_API_TOKEN is unset; set CRT_API_TOKEN and send "
                        "'Authorization: Bearer <token>' to allow remote access"
                    },
                    status_code=403,
                )
        return await call_next(request)

    # Bodies are refused with 413 while being read, before parsing: without a cap a 10 MB
    # message was read, parsed and echoed back whole in its 422 (tests/test_fuzz_api.py).
    app.add_middleware(BodySizeLimit, limit=MAX_REQUEST_BYTES)
    for module in (
        system,
        threads,
        journal,
        insights,
        loops,
        heartbeat_routes,
        ledger,
        dashboard,
        metrics_routes,
    ):
        app.include_router(module.router, responses=ERROR_RESPONSES)
    return app
