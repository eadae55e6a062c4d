"""The errors :class:`crt_loops.ledger.client.LedgerClient` raises (the tree is drawn in that
module's docstring)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


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
