"""Liveness: open to everyone, reveals nothing sensitive."""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter, Request

from crt_loops.api.routes import responses as out

router = APIRouter(tags=["system"])

VERSION = "0.1.0"


@router.get(
    "/health",
    summary="Liveness and a coarse view of the service's parts",
    response_model=out.Health,
)
def health(request: Request) -> dict[str, Any]:
    state = request.app.state
    db = getattr(state, "db", None)
    db_ok = db is not None and not db.closed
    loops = getattr(state, "loops", None) or {}
    started = getattr(state, "started_at", None)
    return {
        "status": "ok" if db_ok else "starting",
        "version": VERSION,
        "uptime_seconds": round(time.time() - started, 1) if started else None,
        "db": "ok" if db_ok else "unavailable",
        "loops": {name: loop.running for name, loop in loops.items()},
    }
