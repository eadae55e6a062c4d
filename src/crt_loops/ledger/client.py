"""LedgerClient: a typed client for a Moltbook-shaped Ledger (ours, or any with that API).

One method per endpoint, each returning a pydantic model. Every failure is one of these, raised
from the httpx error that caused it (translated in one place, :meth:`LedgerClient._send`)::

    LedgerError                   base class, never raised itself
    ├── LedgerUnavailable         no answer: connect error, timeout, 502/503/504 (after retries)
    │   └── LedgerInterrupted     the service began stopping first (see ``abort``); not retried
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

:meth:`LedgerClient.abort` (the service's first step of a stop) releases every caller still
waiting on the Ledger with LedgerInterrupted and refuses new calls, so a slow Ledger never holds
a Ctrl-C.

The API key is sent only in the Authorization header and never logged or put in a message.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any, TypeVar
from urllib.parse import quote

import httpx
from pydantic import BaseModel, ValidationError

from crt_loops.core import metrics
from crt_loops.core.abandon import Abandoner
from crt_loops.core.http_client import new_client
from crt_loops.edge.text import strip_bidi
from crt_loops.ledger.client_errors import (
    LedgerAuthError,
    LedgerError,
    LedgerHTTPError,
    LedgerInterrupted,
    LedgerNotFound,
    LedgerProtocolError,
    LedgerRateLimited,
    LedgerRejected,
    LedgerUnavailable,
    status_error,
)
from crt_loops.ledger.models import (
    ActivityItem,
    Agent,
    Change,
    Comment,
    CommentList,
    Conversation,
    DMCheck,
    DMRequestResult,
    Health,
    HomeDigest,
    Message,
    Notification,
    NotificationPage,
    Post,
    PostActivity,
    PostPage,
    Profile,
    Registration,
    SearchResult,
    SearchResults,
    Submolt,
    Verification,
    VerifyResult,
    VoteResult,
)

__all__ = [
    "ActivityItem",
    "Agent",
    "Change",
    "Comment",
    "CommentList",
    "Conversation",
    "DMCheck",
    "DMRequestResult",
    "Health",
    "HomeDigest",
    "LedgerAuthError",
    "LedgerClient",
    "LedgerError",
    "LedgerHTTPError",
    "LedgerInterrupted",
    "LedgerNotFound",
    "LedgerProtocolError",
    "LedgerRateLimited",
    "LedgerRejected",
    "LedgerUnavailable",
    "Message",
    "Notification",
    "NotificationPage",
    "Post",
    "PostActivity",
    "PostPage",
    "Profile",
    "Registration",
    "SearchResult",
    "SearchResults",
    "Submolt",
    "Verification",
    "VerifyResult",
    "VoteResult",
]

logger = logging.getLogger(__name__)

DEFAULT_TIMEOUT = httpx.Timeout(10.0, connect=3.0)
#: Parsed request URLs kept per client (path and query); the whole set is dropped when full.
URL_CACHE_SIZE = 256


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
        sleep: Callable[[float], object] | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._api_key = api_key
        self._own_http = http_client is None
        self._http = http_client if http_client is not None else new_client()
        self._timeout = timeout if isinstance(timeout, httpx.Timeout) else httpx.Timeout(timeout)
        self.max_retries = max_retries
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.rate_limit_retry_cap = rate_limit_retry_cap
        # Each call runs on its own thread so that a stopping service can walk away from it
        # (abort()); a retry's back-off ends early for the same reason.
        self._calls = Abandoner("Ledger")
        self._sleep: Callable[[float], object] = sleep or self._calls.stopping.wait
        self._urls: dict[tuple[str, tuple[tuple[str, Any], ...]], httpx.URL] = {}

    def __repr__(self) -> str:
        return f"LedgerClient({self.base_url!r}, api_key={'set' if self._api_key else None})"

    @property
    def has_api_key(self) -> bool:
        return bool(self._api_key)

    def abort(self) -> int:
        """Release every caller waiting on the Ledger (they get LedgerInterrupted) and refuse
        new calls: the first step of a stop. Returns how many calls were in flight."""
        return self._calls.abort()

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
        # Bidi overrides would let a post display in another order than it reads to the
        # agent; they never leave this client (any Ledger, not only ours). Both names: the
        # newest Moltbook docs say submolt_name, older servers read submolt.
        body: dict[str, Any] = {
            "submolt_name": submolt,
            "submolt": submolt,
            "title": strip_bidi(title),
        }
        if content is not None:
            body["content"] = strip_bidi(content)
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
        offset: int | None = None,
        time: str | None = None,
    ) -> PostPage:
        params = _params(
            sort=sort, limit=limit, cursor=cursor, submolt=submolt, offset=offset, time=time
        )
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
        body: dict[str, Any] = {"content": strip_bidi(content)}
        if parent_id is not None:
            body["parent_id"] = parent_id
        data = self._request(
            "POST", f"/posts/{_seg(post_id)}/comments", json=body, idempotency_key=idempotency_key
        )
        return _parse(Comment, data, "comment")

    def list_comments(
        self, post_id: str, *, sort: str = "top", limit: int = 200, cursor: str | None = None
    ) -> CommentList:
        params = _params(sort=sort, limit=limit, cursor=cursor)
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

    def feed(
        self,
        *,
        sort: str = "hot",
        limit: int = 25,
        cursor: str | None = None,
        following_only: bool = False,
    ) -> PostPage:
        params = _params(
            sort=sort, limit=limit, cursor=cursor, filter="following" if following_only else None
        )
        return _parse(PostPage, self._request("GET", "/feed", params=params))

    def home(self) -> HomeDigest:
        return _parse(HomeDigest, self._request("GET", "/home"))

    def page_url(self, post_id: str) -> str:
        """The post's page for people: ``/post/{id}`` beside the API, as on Moltbook."""
        return page_url(self.base_url, post_id)

    # -- profiles, follows and subscriptions -----------------------------------------------------

    def update_me(self, *, description: str | None = None) -> Agent:
        data = self._request("PATCH", "/agents/me", json=_params(description=description))
        return _parse(Agent, data, "agent")

    def profile(self, name: str) -> Profile:
        return _parse(Profile, self._request("GET", "/agents/profile", params={"name": name}))

    def follow(self, name: str, *, idempotency_key: str | None = None) -> Change:
        path = f"/agents/{_seg(name)}/follow"
        return _parse(Change, self._request("POST", path, idempotency_key=idempotency_key))

    def unfollow(self, name: str) -> Change:
        return _parse(Change, self._request("DELETE", f"/agents/{_seg(name)}/follow"))

    def subscribe(self, submolt: str, *, idempotency_key: str | None = None) -> Change:
        path = f"/submolts/{_seg(submolt)}/subscribe"
        return _parse(Change, self._request("POST", path, idempotency_key=idempotency_key))

    def unsubscribe(self, submolt: str) -> Change:
        return _parse(Change, self._request("DELETE", f"/submolts/{_seg(submolt)}/subscribe"))

    # -- comments, votes, search, notifications, verification ------------------------------------

    def get_comment(self, comment_id: str) -> Comment:
        return _parse(Comment, self._request("GET", f"/comments/{_seg(comment_id)}"), "comment")

    def delete_comment(self, comment_id: str) -> None:
        self._request("DELETE", f"/comments/{_seg(comment_id)}")

    def remove_post_vote(self, post_id: str) -> VoteResult:
        return _parse(VoteResult, self._request("DELETE", f"/posts/{_seg(post_id)}/vote"))

    def search(self, query: str, *, kind: str = "all", limit: int = 20) -> SearchResults:
        params = {"q": query, "type": kind, "limit": limit}
        return _parse(SearchResults, self._request("GET", "/search", params=params))

    def notifications(
        self, *, limit: int = 20, cursor: str | None = None, unread_only: bool = False
    ) -> NotificationPage:
        params = _params(limit=limit, cursor=cursor, unread="true" if unread_only else None)
        return _parse(NotificationPage, self._request("GET", "/notifications", params=params))

    def mark_notifications_read(self, post_id: str | None = None) -> Change:
        path = "/notifications/read-all"
        if post_id is not None:
            path = f"/notifications/read-by-post/{_seg(post_id)}"
        return _parse(Change, self._request("POST", path))

    def verify(self, verification_code: str, answer: str) -> VerifyResult:
        body = {"verification_code": verification_code, "answer": answer}
        return _parse(VerifyResult, self._request("POST", "/verify", json=body))

    # -- direct messages -------------------------------------------------------------------------

    def dm_check(self) -> DMCheck:
        return _parse(DMCheck, self._request("GET", "/agents/dm/check"))

    def dm_request(self, to: str, message: str) -> DMRequestResult:
        body = {"to": to, "message": message}
        return _parse(DMRequestResult, self._request("POST", "/agents/dm/request", json=body))

    def dm_requests(self) -> list[Conversation]:
        data = self._request("GET", "/agents/dm/requests")
        return [_parse(Conversation, item) for item in _list(data, "requests")]

    def dm_answer(self, conversation_id: str, *, approve: bool, block: bool = False) -> Change:
        verb = "approve" if approve else "reject"
        path = f"/agents/dm/requests/{_seg(conversation_id)}/{verb}"
        return _parse(
            Change, self._request("POST", path, json=None if approve else {"block": block})
        )

    def dm_conversations(self) -> list[Conversation]:
        data = self._request("GET", "/agents/dm/conversations")
        box = data.get("conversations")
        items = box.get("items", []) if isinstance(box, Mapping) else box or []
        return [_parse(Conversation, item) for item in items]

    def dm_messages(self, conversation_id: str) -> list[Message]:
        data = self._request("GET", f"/agents/dm/conversations/{_seg(conversation_id)}")
        return [_parse(Message, item) for item in _list(data, "messages")]

    def dm_send(self, conversation_id: str, message: str) -> Change:
        path = f"/agents/dm/conversations/{_seg(conversation_id)}/send"
        return _parse(Change, self._request("POST", path, json={"message": message}))

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
                return self._calls.run(
                    lambda: self._send(method, path, params=params, json=json, headers=headers),
                    LedgerInterrupted,
                )
            except LedgerInterrupted:
                raise
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
                self._check_stopping(method, path, exc)
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
                self._check_stopping(method, path, exc)
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
                self._check_stopping(method, path, exc)

    def _check_stopping(self, method: str, path: str, exc: LedgerError) -> None:
        """No retry once the service is stopping: the caller learns at once."""
        if self._calls.aborted:
            raise LedgerInterrupted(
                f"{method} {path}: the service is stopping; not retried after: {exc}"
            ) from exc

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
        if self._http.is_closed:
            # httpx would raise a bare RuntimeError; callers only ever need to catch LedgerError.
            raise LedgerUnavailable(f"{method} {path}: the Ledger client is closed")
        try:
            response = self._http.request(
                method, self._url(path, params), json=json, headers=headers, timeout=self._timeout
            )
            metrics.observe_ledger_request(method, response.status_code)
            response.raise_for_status()
        except httpx.HTTPStatusError as exc:
            raise status_error(method, path, exc.response) from exc
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

    def _url(self, path: str, params: Mapping[str, Any] | None) -> httpx.URL:
        """The URL of ``path`` with ``params`` as its query, parsed once and then reused.

        httpx parses a URL given as text two or three times per request, 0.2 ms of pure Python
        each time (its IPv4 check of 127.0.0.1 included), and a heartbeat asks for the same few
        each run (bench/heartbeat.py); given an ``httpx.URL`` and no params it parses nothing.
        The query is the one httpx would build from ``params``.
        """
        try:
            key = (path, tuple(params.items()) if params else ())
            url = self._urls.get(key)
        except TypeError:  # a value that cannot be a key (none of ours): no reuse
            return httpx.URL(self.base_url + path, params=params or None)
        if url is None:
            url = httpx.URL(self.base_url + path, params=params or None)
            if len(self._urls) >= URL_CACHE_SIZE:
                self._urls.clear()
            self._urls[key] = url
        return url


def page_url(base_url: str, post_id: str, comment_id: str | None = None) -> str:
    """The page for people of a post (or of a comment on it) of the Ledger at ``base_url``.

    Moltbook's web paths: ``<root>/post/<id>``, the root being the API URL without ``/api/v1``.
    """
    root = base_url.rstrip("/").removesuffix("/api/v1")
    url = f"{root}/post/{quote(post_id, safe='')}"
    return f"{url}#{quote(comment_id, safe='')}" if comment_id else url


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
