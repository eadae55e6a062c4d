"""Request body limits, declared or streamed, answered with a JSON 413 on every route.

A declared ``Content-Length`` over the limit is refused before anything reads the body. A
chunked body has no length up front, so the byte count is kept while the app reads: past the
limit the read raises :class:`RequestBodyTooLarge`, an ``HTTPException`` (413), which the
app's own error handler renders in its JSON shape (FastAPI passes an ``HTTPException`` raised
while it reads a body through unchanged). Nothing past the limit is buffered, so a 400 MiB
chunked upload costs at most one chunk of memory: uvicorn stops reading the socket until the
app asks for more, and closes the connection once the 413 is sent.

(Feeding the app an ``http.disconnect`` instead, as this guard once did, ended in a
``ClientDisconnect`` traceback and a 500 on the routes that read the body themselves.)
"""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from crt_loops.edge.refusal import Refuse, detail_refusal

__all__ = ["BodySizeLimit", "RequestBodyTooLarge"]


class RequestBodyTooLarge(HTTPException):
    """Raised from ``receive()`` when a streamed body passes the limit (a 413)."""

    def __init__(self, limit: int) -> None:
        super().__init__(
            status_code=413,
            detail=f"request body too large: more than {limit} bytes arrived, the limit is "
            f"{limit} bytes",
        )
        self.limit = limit


class BodySizeLimit:
    """Refuse a request body over ``limit`` bytes with a JSON 413, declared or streamed."""

    def __init__(
        self, app: ASGIApp, *, limit: int, refuse: Refuse = detail_refusal, hint: str = ""
    ) -> None:
        self.app = app
        self.limit = limit
        self.refuse = refuse
        self.hint = hint

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.limit:
            response = self.refuse(
                413,
                f"request body too large: {int(declared)} bytes, the limit is {self.limit} bytes",
                hint=self.hint,
            )
            await response(scope, receive, send)
            return
        received = 0
        started = False

        async def limited() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    raise RequestBodyTooLarge(self.limit)
            return message

        async def tracked(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited, tracked)
        except RequestBodyTooLarge as exc:
            # Read by a middleware, outside the app's error handlers: answer here.
            if started:
                raise
            response = self.refuse(413, str(exc.detail), hint=self.hint)
            await response(scope, receive, send)
