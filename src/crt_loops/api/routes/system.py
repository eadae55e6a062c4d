"""Liveness: open to every local client, reveals nothing sensitive.

The HTTP status says whether the service can do its work: 200 when it can (or while it starts),
503 when the database cannot take writes (locked by another connection, disk full); the body
says which.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Request, Response

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
def health(request: Request, response: Response) -> dict[str, Any]:
    services: Services | None = getattr(request.app.state, "services", None)
    db = services.db if services is not None else None
    db_ok = db is not None and not db.closed
    loops = services.loops if services is not None else {}
    started = services.started_at if services is not None else None
    problem = db.availability() if db is not None and db_ok else None
    if problem is not None:
        response.status_code = 503
    return {
        "status": "degraded" if problem else "ok" if db_ok else "starting",
        "version": VERSION,
        "uptime_seconds": round(time.time() - started, 1) if started else None,
        "db": "degraded" if problem else "ok" if db_ok else "unavailable",
        "db_problem": problem.problem.value if problem else None,
        "db_error": problem.sentence() if problem else None,
        "db_pending_writes": db.deferred.pending if db is not None else 0,
        "loops": {name: loop.running for name, loop in loops.items()},
    }
