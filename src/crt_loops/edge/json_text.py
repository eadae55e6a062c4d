"""Refuse JSON bodies holding text that cannot be stored, before any route sees them.

``json.loads`` turns the escape ``"\\ud800"`` into a lone surrogate, a ``str`` that UTF-8
cannot encode. Routes used to accept it and fail later: a plain-text 500 when SQLite or the
response encoder met it, or worse, a value committed first (a heartbeat config's ``model``)
that then broke every read of it. This guard reads the body (already capped by
:class:`~crt_loops.edge.body.BodySizeLimit`), and answers 422 naming the field when the body is
not UTF-8 or any string in it, keys included, holds a lone surrogate or NUL. Otherwise the body
is handed to the app unchanged.

Only bodies that could hold such an escape are parsed here (a byte scan for ``\\uD8..``-
``\\uDF..`` and ``\\u0000`` first), so an ordinary request pays one regex search.
"""

from __future__ import annotations

import json
import re

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from crt_loops.edge.origin import SAFE_METHODS, is_json_content_type
from crt_loops.edge.refusal import Refuse, detail_refusal
from crt_loops.edge.text import find_invalid_text

__all__ = ["InvalidTextGuard", "body_problem"]

_SUSPECT_RE = re.compile(r"\\u(?:[dD][89a-fA-F][0-9a-fA-F]{2}|0000)")


def body_problem(body: bytes) -> tuple[tuple[str | int, ...], str] | None:
    """(field location, sentence) when ``body`` is not storable JSON text, else None.

    Bodies that are not JSON at all are left to the route, which says so in its own words.
    """
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        return ("body",), (
            f"the request body is not valid UTF-8 (byte {exc.start}); JSON text must be UTF-8"
        )
    if _SUSPECT_RE.search(text) is None:
        return None
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        return None
    found = find_invalid_text(value, ("body",))
    if found is None:
        return None
    return found.loc, found.message()


class InvalidTextGuard:
    """422 for a state-changing JSON request whose body holds invalid text (module docstring)."""

    def __init__(self, app: ASGIApp, *, refuse: Refuse = detail_refusal) -> None:
        self.app = app
        self.refuse = refuse

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"].upper() in SAFE_METHODS:
            await self.app(scope, receive, send)
            return
        if not is_json_content_type(dict(scope["headers"]).get(b"content-type")):
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        first: Message | None = None
        while True:
            message = await receive()
            if message["type"] != "http.request":
                first = message  # the client left: let the app see it as it would have
                break
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        problem = body_problem(body) if body.strip() and first is None else None
        if problem is not None:
            loc, message_text = problem
            await self.refuse(422, message_text, loc=list(loc))(scope, receive, send)
            return
        queued: list[Message] = [{"type": "http.request", "body": body, "more_body": False}]
        if first is not None:
            queued = [*queued[: 1 if chunks else 0], first]

        async def replay() -> Message:
            if queued:
                return queued.pop(0)
            return await receive()

        await self.app(scope, replay, send)
