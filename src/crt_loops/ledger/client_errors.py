"""The errors :class:`crt_loops.ledger.client.LedgerClient` raises (the tree is drawn in that
module's docstring)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx

#: Statuses meaning "no answer from the Ledger itself" (a proxy in front of it answered).
UNAVAILABLE_STATUSES = frozenset({502, 503, 504})


class LedgerError(Exception):
    """Base of every error this client raises; never raised itself."""


class LedgerUnavailable(LedgerError):
    """Raised when no answer came: connect error, timeout, or 502/503/504, after any retries.

    ``connect_failed`` is true when the connection could not even be opened (nothing was sent).
    """

    def __init__(
        self, message: str, *, connect_failed: bool = False, status_code: int | None = None
    ) -> None:
        super().__init__(message)
        self.connect_failed = connect_failed
        self.status_code = status_code


class LedgerInterrupted(LedgerUnavailable):
    """Raised when the service began stopping before the Ledger answered (or a call was made).

    Whether a write landed is unknown: an outbox action that meets this stays ``pending``, and
    the next start's recovery sends it again with its idempotency key.
    """


class LedgerProtocolError(LedgerError):
    """Raised when a successful answer is not the JSON this API promises."""


class LedgerHTTPError(LedgerError):
    """Raised for an error status with no more specific class (e.g. 500, after any retries)."""

    def __init__(
        self, method: str, path: str, status_code: int, body: Mapping[str, Any] | None
    ) -> None:
        self.method = method
        self.path = path
        self.status_code = status_code
        self.body: dict[str, Any] = dict(body or {})
        self.error = str(self.body.get("error") or self.body.get("detail") or "")
        self.hint = str(self.body.get("hint") or "")
        hint = f" ({self.hint})" if self.hint else ""
        super().__init__(f"{method} {path}: HTTP {status_code}: {self.error or 'error'}{hint}")


class LedgerRateLimited(LedgerHTTPError):
    """Raised on 429; ``retry_after_seconds`` says when to try again (None if not told)."""

    def __init__(
        self,
        method: str,
        path: str,
        status_code: int,
        body: Mapping[str, Any] | None,
        retry_after_seconds: float | None,
    ) -> None:
        super().__init__(method, path, status_code, body)
        self.retry_after_seconds = retry_after_seconds
        remaining = self.body.get("daily_remaining")
        self.daily_remaining: int | None = remaining if isinstance(remaining, int) else None


class LedgerRejected(LedgerHTTPError):
    """Raised on a 4xx refusal (400, 403, 409, 413, 422): repeating the request will not help."""


class LedgerAuthError(LedgerRejected):
    """Raised on 401: the API key is missing, unknown or revoked."""


class LedgerNotFound(LedgerRejected):
    """Raised on 404: the post, comment, submolt or route does not exist."""


def status_error(method: str, path: str, response: httpx.Response) -> LedgerError:
    """The error an error status stands for (the tree in :mod:`crt_loops.ledger.client`)."""
    status = response.status_code
    try:
        decoded = response.json()
    except ValueError:
        decoded = None
    body = decoded if isinstance(decoded, dict) else {"error": response.text[:200]}
    if status in UNAVAILABLE_STATUSES:
        message = f"{method} {path}: Ledger unavailable (HTTP {status}): {body.get('error', '')}"
        return LedgerUnavailable(message, status_code=status)
    if status == 429:
        return LedgerRateLimited(method, path, status, body, retry_after(body, response))
    if status == 401:
        return LedgerAuthError(method, path, status, body)
    if status == 404:
        return LedgerNotFound(method, path, status, body)
    if 400 <= status < 500:
        return LedgerRejected(method, path, status, body)
    return LedgerHTTPError(method, path, status, body)


def retry_after(body: Mapping[str, Any], response: httpx.Response) -> float | None:
    """Seconds to wait, from Moltbook's body fields, else the Retry-After header."""
    seconds = body.get("retry_after_seconds")
    if isinstance(seconds, int | float) and not isinstance(seconds, bool):
        return float(seconds)
    minutes = body.get("retry_after_minutes")
    if isinstance(minutes, int | float) and not isinstance(minutes, bool):
        return float(minutes) * 60
    header = response.headers.get("Retry-After", "")
    try:
        return float(header)
    except ValueError:
        return None
