"""Who may call ``/api`` and ``/metrics``: the bearer token when one is set, else loopback only.

A plain ASGI middleware. As ``@app.middleware("http")`` (Starlette's ``BaseHTTPMiddleware``)
every request paid for a task and a memory stream around the rest of the app, about a fifth of
a simple GET's CPU in the profile of 20 dashboards polling (bench/scale.py); the checks and
the answers are the same.
"""

from __future__ import annotations

import hmac
import ipaddress

from fastapi.responses import JSONResponse
from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from crt_loops.settings import Settings


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


class AccessControl:
    """Answer 401 without the configured bearer token, 403 to a non-loopback client when no
    token is configured; everything else goes on to the app."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            refusal = self.refusal(Request(scope))
            if refusal is not None:
                await refusal(scope, receive, send)
                return
        await self.app(scope, receive, send)

    @staticmethod
    def refusal(request: Request) -> JSONResponse | None:
        path = request.url.path
        active: Settings | None = request.app.state.settings
        if not (path.startswith("/api") or path == "/metrics") or active is None:
            return None
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
        return None
