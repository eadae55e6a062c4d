"""A database that cannot take a write answers JSON 503 with Retry-After, on both apps.

Before, a write with the database locked past the busy timeout (or a full disk) ended as a
plain-text 500. The apps register :func:`database_error_handler` for the storage layer's
``DatabaseError``: a passing problem (see :mod:`crt_loops.db.availability`) is a 503 with
``Retry-After``; any other database error is a bug, logged with its traceback and answered as a
JSON 500.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response

from crt_loops.db.availability import classify
from crt_loops.db.errors import DatabaseError
from crt_loops.edge.refusal import Refuse, detail_refusal

__all__ = ["database_error_handler"]

logger = logging.getLogger(__name__)


def database_error_handler(
    refuse: Refuse = detail_refusal,
) -> Callable[[Request, Exception], Awaitable[Response]]:
    """An exception handler for database errors answering in ``refuse``'s shape."""

    async def handle(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, DatabaseError)
        failure = classify(exc)
        if failure is None:
            logger.error("database error on %s %s", request.method, request.url.path, exc_info=exc)
            return refuse(500, f"internal database error: {exc}", hint="see the service log")
        logger.warning("%s %s: 503, %s", request.method, request.url.path, failure.sentence())
        return refuse(
            503,
            failure.sentence(),
            hint=f"send the request again in {failure.retry_after} s",
            headers={"Retry-After": str(failure.retry_after)},
        )

    return handle
