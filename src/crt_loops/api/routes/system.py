"""Liveness: open to everyone, reveals nothing sensitive."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Request

from crt_loops.api.routes import responses as out

if TYPE_CHECKING:
    from crt_loops.api.services import Services

router = APIRouter(tags=["system"])

VERSION = "0.1.0"


@router.get(
    "/health",
    summary="Liveness and a coarse view of the service's parts",
    response_model=out.Health,
)
def health(request: Request) -> dict[str, Any]:
    services: Services | None = getattr(request.app.state, "services", None)
    db_ok = services is not None and not services.db.closed
    loops = services.loops if services is not None else {}
    started = services.started_at if services is not None else None
    return {
        "status": "ok" if db_ok else "starting",
        "version": VERSION,
        "uptime_seconds": round(time.time() - started, 1) if started else None,
        "db": "ok" if db_ok else "unavailable",
        "loops": {name: loop.running for name, loop in loops.items()},
    }
