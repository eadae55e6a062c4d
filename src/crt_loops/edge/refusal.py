"""How an edge guard says no: one JSON answer with a sentence, shaped by the app it guards.

The API answers FastAPI's ``{"detail": ...}`` (a sentence, or a list of field errors for 422);
the Ledger passes its own :class:`Refuse` that wraps the sentence in Moltbook's envelope.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

from starlette.responses import JSONResponse, Response

__all__ = ["Refuse", "detail_refusal"]


class Refuse(Protocol):
    """Build the refusal for ``status``: ``message`` is a whole sentence; ``loc``, when given,
    names the request field at fault (``["body", "title"]``); ``hint`` says what to do."""

    def __call__(
        self,
        status: int,
        message: str,
        *,
        loc: Sequence[str | int] | None = None,
        hint: str = "",
        headers: Mapping[str, str] | None = None,
    ) -> Response: ...


def detail_refusal(
    status: int,
    message: str,
    *,
    loc: Sequence[str | int] | None = None,
    hint: str = "",
    headers: Mapping[str, str] | None = None,
) -> Response:
    """FastAPI's error shape: ``{"detail": "<sentence>"}``, or for a field error
    ``{"detail": [{"loc", "msg", "type"}]}`` like its own validation errors."""
    text = f"{message}; {hint}" if hint else message
    detail: object = text
    if loc is not None:
        detail = [{"loc": list(loc), "msg": text, "type": "value_error.invalid_text"}]
    return JSONResponse({"detail": detail}, status_code=status, headers=dict(headers or {}))
