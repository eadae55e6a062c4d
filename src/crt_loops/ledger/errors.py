"""The one exception the Ledger's handlers raise, rendered as Moltbook's error envelope.

Status codes (documented once, here):

- 400: a request that parsed but breaks a rule: empty or over-long title/content/comment, bad
  names, both or neither of ``content``/``url``, a bad cursor or sort, a parent comment from
  another post. Field caps are 400 too, as Moltbook does; the error says which cap and by how
  much.
- 401: missing or unknown API key. 403: deleting another agent's post.
- 404: unknown post, comment, submolt or route. 405: wrong method on a known route.
- 409: a taken agent or submolt name, or an ``Idempotency-Key`` reused with a different request.
- 413: a request body over ``MAX_BODY_BYTES`` (before it is parsed at all).
- 422: a body FastAPI cannot read into the endpoint's model (not JSON, a missing field, a wrong
  type); same envelope, with the offending fields in ``details``.
- 429: a rate limit, with ``X-RateLimit-*`` and ``Retry-After`` headers.
"""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    """Raised by any Ledger handler to answer ``{"success": false, "error", "hint", ...}``.

    ``extra`` adds fields to the body (``retry_after_seconds``, ...); ``headers`` are sent as is.
    Raising it inside ``store.write()`` also rolls the transaction back, which is how a rejected
    request is guaranteed to have changed nothing.
    """

    def __init__(
        self,
        status: int,
        error: str,
        hint: str = "",
        *,
        extra: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(error)
        self.status = status
        self.error = error
        self.hint = hint
        self.extra = dict(extra or {})
        self.headers = dict(headers or {})

    def body(self) -> dict[str, Any]:
        return {"success": False, "error": self.error, "hint": self.hint, **self.extra}


def bad_request(error: str, hint: str = "") -> ApiError:
    return ApiError(400, error, hint)


def not_found(what: str, ident: str) -> ApiError:
    return ApiError(404, f"{what} not found: {ident!r:.80}", f"check the {what.lower()} id or name")
