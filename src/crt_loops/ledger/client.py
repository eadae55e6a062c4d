"""LedgerClient: a typed client for a Moltbook-shaped Ledger (ours, or any with that API).

One method per endpoint, each returning a pydantic model. Every failure is one of these, raised
from the httpx error that caused it (translated in one place, :meth:`LedgerClient._send`)::

    LedgerError                   base class, never raised itself
    ├── LedgerUnavailable         no answer: connect error, timeout, 502/503/504 (after retries)
    ├── LedgerProtocolError       an answer that is not the JSON this API promises
    └── LedgerHTTPError           any other error status, e.g. 500; has .status_code .error .hint
        ├── LedgerRateLimited     429; .retry_after_seconds, .daily_remaining
        └── LedgerRejected        4xx: the request itself was refused (400, 403, 409, 413, 422)
            ├── LedgerAuthError   401: missing or unknown API key
            └── LedgerNotFound    404: no such post, comment, submolt or route

Retries (``max_retries``, exponential backoff ``backoff_base * 2**n`` capped at ``backoff_max``,
through the injectable ``sleep``): only for a request that is safe to repeat, that is a GET or a
POST carrying an ``idempotency_key``, and only when the Ledger was unavailable or answered 5xx. A
connection that could not be opened at all is retried for any request, since nothing was sent.
A 429 is never retried by default: it raises LedgerRateLimited at once. With
``rate_limit_retry_cap`` > 0, a safe request whose wait is at most that many seconds is retried
once after the wait.

The API key is sent only in the Authorization header and never logged or put in a message.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import Any, TypeVar
from urllib.parse import quote

import httpx
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from crt_loops.core import metrics

logger = logging.getLogger(__name__)

DEFAULT_TIMEOUT = httpx.Timeout(10.0, connect=3.0)
UNAVAILABLE_STATUSES = frozenset({502, 503, 504})


# -- errors -------------------------------------------------------------------------------------


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


# -- models -------------------------------------------------------------------------------------


class _Model(BaseModel):
    # Unknown fields are ignored so that the client also reads a real Moltbook's richer answers.
    model_config = ConfigDict(extra="ignore", frozen=True)


def _name_of(value: Any) -> Any:
    """Moltbook nests ``author``/``submolt`` as objects; flatten them to their name."""
    if isinstance(value, Mapping):
        return value.get("name")
    return value


class Agent(_Model):
    name: str
    description: str = ""
    karma: int = 0
    post_count: int | None = None
    comment_count: int | None = None
    created_at: str | None = None


class Registration(_Model):
    name: str
    api_key: str = Field(repr=False)
    description: str = ""


class Submolt(_Model):
    name: str
    display_name: str = ""
    description: str = ""
    post_count: int | None = None
    created_by: str | None = None
    created_at: str | None = None


class _Voted(_Model):
    upvotes: int = 0
    downvotes: int = 0
    score: int = 0

    @model_validator(mode="before")
    @classmethod
    def _score(cls, data: Any) -> Any:
        if isinstance(data, Mapping) and data.get("score") is None:
            data = {
                **data,
                "score": int(data.get("upvotes") or 0) - int(data.get("downvotes") or 0),
            }
        return data


class Post(_Voted):
    id: str
    title: str
    content: str | None = None
    url: str | None = None
    submolt: str | None = None
    author: str | None = None
    comment_count: int = 0
    created_at: str | None = None

    @field_validator("submolt", "author", mode="before")
    @classmethod
    def _flatten(cls, value: Any) -> Any:
        return _name_of(value)


class PostPage(_Model):
    posts: list[Post]
    sort: str | None = None
    has_more: bool = False
    next_cursor: str | None = None


class Comment(_Voted):
    id: str
    content: str
    post_id: str | None = None
    parent_id: str | None = None
    depth: int = 0
    author: str | None = None
    created_at: str | None = None

    @field_validator("author", mode="before")
    @classmethod
    def _flatten(cls, value: Any) -> Any:
        return _name_of(value)


class CommentList(_Model):
    comments: list[Comment]
    post_id: str | None = None
    sort: str | None = None
    count: int | None = None
    has_more: bool = False


class VoteResult(_Model):
    vote: str | None = None
    changed: bool | None = None
    score: int | None = None
    upvotes: int | None = None
    downvotes: int | None = None
    message: str | None = None


class ActivityItem(_Model):
    type: str
    post_id: str
    comment_id: str
    content: str
    author: str | None = None
    post_title: str | None = None
    parent_id: str | None = None
    created_at: str | None = None

    @field_validator("author", mode="before")
    @classmethod
    def _flatten(cls, value: Any) -> Any:
        return _name_of(value)


class HomeDigest(_Model):
    agent_name: str | None = None
    karma: int = 0
    activity: list[ActivityItem] = Field(default_factory=list)
    activity_has_more: bool = False
    latest_posts: list[Post] = Field(default_factory=list)

    @model_validator(mode="before")
    @classmethod
    def _account(cls, data: Any) -> Any:
        if isinstance(data, Mapping) and isinstance(data.get("your_account"), Mapping):
            account = data["your_account"]
            data = {**data, "agent_name": account.get("name"), "karma": account.get("karma", 0)}
        return data


class Health(_Model):
    status: str
    service: str | None = None


M = TypeVar("M", bound=BaseModel)


# -- the client ---------------------------------------------------------------------------------


class LedgerClient:
    """Typed calls to a Ledger at ``base_url`` (ending in ``/api/v1``). Thread-safe."""

    def __init__(
        self,
        base_url: str,
        api_key: str | None,
        http_client: httpx.Client | None = None,
        *,
        timeout: float | httpx.Timeout = DEFAULT_TIMEOUT,
        max_retries: int = 2,
        backoff_base: float = 0.25,
        backoff_max: float = 4.0,
        rate_limit_retry_cap: float = 0.0,
        sleep: Callable[[float], object] = time.sleep,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._api_key = api_key
        self._own_http = http_client is None
        self._http = http_client if http_client is not None else httpx.Client()
        self._timeout = timeout if isinstance(timeout, httpx.Timeout) else httpx.Timeout(timeout)
        self.max_retries = max_retries
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.rate_limit_retry_cap = rate_limit_retry_cap
        self._sleep = sleep

    def __repr__(self) -> str:
        return f"LedgerClient({self.base_url!r}, api_key={'set' if self._api_key else None})"

    @property
    def has_api_key(self) -> bool:
        return bool(self._api_key)

    def close(self) -> None:
        """Close the HTTP client if this object created it (a caller's client stays open)."""
        if self._own_http:
            self._http.close()

    def __enter__(self) -> LedgerClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- endpoints ------------------------------------------------------------------------------

    def health(self) -> Health:
        return _parse(Health, self._request("GET", "/health", auth=False))

    def register(self, name: str, description: str = "") -> Registration:
        """Register an agent; the answer holds its API key, shown only this once.

        Never retried after the request was sent: the server cannot replay a registration (it
        does not keep the key), so a repeat would only meet 409 for the now taken name.
        """
        data = self._request(
            "POST", "/agents/register", json={"name": name, "description": description}, auth=False
        )
        return _parse(Registration, data, "agent")

    def me(self) -> Agent:
        return _parse(Agent, self._request("GET", "/agents/me"), "agent")

    def list_submolts(self) -> list[Submolt]:
        data = self._request("GET", "/submolts")
        return [_parse(Submolt, item) for item in _list(data, "submolts")]

    def get_submolt(self, name: str) -> Submolt:
        return _parse(Submolt, self._request("GET", f"/submolts/{_seg(name)}"), "submolt")

    def create_submolt(
        self,
        name: str,
        display_name: str | None = None,
        description: str = "",
        *,
        idempotency_key: str | None = None,
    ) -> Submolt:
        body = {"name": name, "display_name": display_name, "description": description}
        data = self._request("POST", "/submolts", json=body, idempotency_key=idempotency_key)
        return _parse(Submolt, data, "submolt")

    def submolt_feed(
        self, name: str, *, sort: str = "hot", limit: int = 25, cursor: str | None = None
    ) -> PostPage:
        params = _params(sort=sort, limit=limit, cursor=cursor)
        return _parse(PostPage, self._request("GET", f"/submolts/{_seg(name)}/feed", params=params))

    def create_post(
        self,
        submolt: str,
        title: str,
        content: str | None = None,
        *,
        url: str | None = None,
        idempotency_key: str | None = None,
    ) -> Post:
        body: dict[str, Any] = {"submolt": submolt, "title": title}
        if content is not None:
            body["content"] = content
        if url is not None:
            body["url"] = url
        data = self._request("POST", "/posts", json=body, idempotency_key=idempotency_key)
        return _parse(Post, data, "post")

    def get_post(self, post_id: str) -> Post:
        return _parse(Post, self._request("GET", f"/posts/{_seg(post_id)}"), "post")

    def list_posts(
        self,
        *,
        sort: str = "hot",
        limit: int = 25,
        cursor: str | None = None,
        submolt: str | None = None,
    ) -> PostPage:
        params = _params(sort=sort, limit=limit, cursor=cursor, submolt=submolt)
        return _parse(PostPage, self._request("GET", "/posts", params=params))

    def delete_post(self, post_id: str) -> None:
        self._request("DELETE", f"/posts/{_seg(post_id)}")

    def create_comment(
        self,
        post_id: str,
        content: str,
        *,
        parent_id: str | None = None,
        idempotency_key: str | None = None,
    ) -> Comment:
        body: dict[str, Any] = {"content": content}
        if parent_id is not None:
            body["parent_id"] = parent_id
        data = self._request(
            "POST", f"/posts/{_seg(post_id)}/comments", json=body, idempotency_key=idempotency_key
        )
        return _parse(Comment, data, "comment")

    def list_comments(self, post_id: str, *, sort: str = "top", limit: int = 200) -> CommentList:
        params = _params(sort=sort, limit=limit)
        return _parse(
            CommentList, self._request("GET", f"/posts/{_seg(post_id)}/comments", params=params)
        )

    def upvote_post(self, post_id: str, *, idempotency_key: str | None = None) -> VoteResult:
        return self._vote(f"/posts/{_seg(post_id)}/upvote", idempotency_key)

    def downvote_post(self, post_id: str, *, idempotency_key: str | None = None) -> VoteResult:
        return self._vote(f"/posts/{_seg(post_id)}/downvote", idempotency_key)

    def upvote_comment(self, comment_id: str, *, idempotency_key: str | None = None) -> VoteResult:
        return self._vote(f"/comments/{_seg(comment_id)}/upvote", idempotency_key)

    def downvote_comment(
        self, comment_id: str, *, idempotency_key: str | None = None
    ) -> VoteResult:
        return self._vote(f"/comments/{_seg(comment_id)}/downvote", idempotency_key)

    def feed(self, *, sort: str = "hot", limit: int = 25, cursor: str | None = None) -> PostPage:
        params = _params(sort=sort, limit=limit, cursor=cursor)
        return _parse(PostPage, self._request("GET", "/feed", params=params))

    def home(self) -> HomeDigest:
        return _parse(HomeDigest, self._request("GET", "/home"))

    def _vote(self, path: str, idempotency_key: str | None) -> VoteResult:
        return _parse(VoteResult, self._request("POST", path, idempotency_key=idempotency_key))

    # -- transport ------------------------------------------------------------------------------

    def _request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Mapping[str, Any] | None = None,
        idempotency_key: str | None = None,
        auth: bool = True,
    ) -> dict[str, Any]:
        """Send with the retry policy of the module docstring; return the decoded JSON body."""
        headers = {"Accept": "application/json"}
        if auth and self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        if idempotency_key is not None:
            headers["Idempotency-Key"] = idempotency_key
        safe = method == "GET" or (method == "POST" and idempotency_key is not None)
        attempt = 0
        waited_for_rate_limit = False
        while True:
            try:
                return self._send(method, path, params=params, json=json, headers=headers)
            except LedgerRateLimited as exc:
                wait = exc.retry_after_seconds
                if (
                    not safe
                    or waited_for_rate_limit
                    or wait is None
                    or wait > self.rate_limit_retry_cap
                ):
                    raise
                waited_for_rate_limit = True
                logger.info("ledger %s %s rate limited; retrying in %.2fs", method, path, wait)
                self._sleep(wait)
                continue
            except (LedgerUnavailable, LedgerHTTPError) as exc:
                retryable = isinstance(exc, LedgerUnavailable) and exc.connect_failed
                if safe:
                    retryable = retryable or isinstance(exc, LedgerUnavailable)
                    retryable = retryable or (
                        isinstance(exc, LedgerHTTPError) and exc.status_code >= 500
                    )
                if not retryable or attempt >= self.max_retries:
                    raise
                delay = min(self.backoff_max, self.backoff_base * 2**attempt)
                attempt += 1
                logger.warning(
                    "ledger %s %s failed (%s); retry %d/%d in %.2fs",
                    method,
                    path,
                    exc,
                    attempt,
                    self.max_retries,
                    delay,
                )
                self._sleep(delay)

    def _send(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None,
        json: Mapping[str, Any] | None,
        headers: Mapping[str, str],
    ) -> dict[str, Any]:
        """One attempt. The only place httpx errors become LedgerErrors."""
        url = self.base_url + path
        if self._http.is_closed:
            # httpx would raise a bare RuntimeError; callers only ever need to catch LedgerError.
            raise LedgerUnavailable(f"{method} {path}: the Ledger client is closed")
        try:
            response = self._http.request(
                method, url, params=params, json=json, headers=headers, timeout=self._timeout
            )
            metrics.observe_ledger_request(method, response.status_code)
            response.raise_for_status()
        except httpx.HTTPStatusError as exc:
            raise _status_error(method, path, exc.response) from exc
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            metrics.observe_ledger_request(method, "error")
            raise LedgerUnavailable(
                f"{method} {path}: cannot connect to the Ledger at {self.base_url}: {exc}",
                connect_failed=True,
            ) from exc
        except httpx.TransportError as exc:
            # Timeouts, dropped connections, protocol errors: the request may have been received.
            kind = type(exc).__name__
            metrics.observe_ledger_request(method, "error")
            raise LedgerUnavailable(f"{method} {path}: no answer from the Ledger ({kind})") from exc
        logger.debug("ledger %s %s -> %d", method, path, response.status_code)
        if response.status_code == 204:
            return {"success": True}  # Moltbook's DELETE answers carry no body
        try:
            data = response.json()
        except ValueError as exc:
            raise LedgerProtocolError(f"{method} {path}: answer is not JSON") from exc
        if not isinstance(data, dict):
            raise LedgerProtocolError(f"{method} {path}: answer is not a JSON object")
        return data


def _status_error(method: str, path: str, response: httpx.Response) -> LedgerError:
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
        return LedgerRateLimited(method, path, status, body, _retry_after(body, response))
    if status == 401:
        return LedgerAuthError(method, path, status, body)
    if status == 404:
        return LedgerNotFound(method, path, status, body)
    if 400 <= status < 500:
        return LedgerRejected(method, path, status, body)
    return LedgerHTTPError(method, path, status, body)


def _retry_after(body: Mapping[str, Any], response: httpx.Response) -> float | None:
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


def _seg(value: str) -> str:
    """``value`` as one path segment: an id from an LLM or another agent must not be able to
    climb out of its route ("../agents/me"), so '/' and '.' are percent-encoded too."""
    return quote(value, safe="").replace(".", "%2E")


def _params(**values: Any) -> dict[str, Any]:
    return {key: value for key, value in values.items() if value is not None}


def _list(data: Mapping[str, Any], key: str) -> list[Any]:
    items = data.get(key)
    if not isinstance(items, list):
        raise LedgerProtocolError(f"answer has no list {key!r}")
    return items


def _parse(model: type[M], data: Any, key: str | None = None) -> M:
    """Validate ``data`` (or ``data[key]``) as ``model``, or raise LedgerProtocolError."""
    try:
        return model.model_validate(data[key] if key is not None else data)
    except (ValidationError, KeyError, TypeError) as exc:
        raise LedgerProtocolError(f"unexpected {model.__name__} shape: {exc}") from exc
