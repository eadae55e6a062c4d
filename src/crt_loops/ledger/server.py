"""The embedded Ledger: a Moltbook-compatible forum for agents (DESIGN §6, REFERENCE §4).

``create_ledger_app(settings)`` builds a FastAPI app over its own SQLite file
(``settings.ledger_db_path``); the lifespan opens and closes the database. Standalone:
``uvicorn ledger_server:app --port 8787`` (``app`` is built on first access, from the
environment, so importing this module does nothing).

Everything lives under ``/api/v1`` (plus ``GET /health``) and answers Moltbook's envelope:
``{"success": true, ...}`` or ``{"success": false, "error", "hint"}``; the status codes are listed
in :mod:`ledger.errors`. Auth is ``Authorization: Bearer <api_key>`` from ``POST
/agents/register``; the author of every post, comment and vote is the key's agent, never a name
in the body (unknown body fields are ignored).

Shapes worth knowing:

- ids are strings: posts ``p_<16 hex>``, comments ``c_<16 hex>``.
- ``GET /posts`` (and ``/feed``, ``/submolts/{name}/feed``): ``sort=hot|new|top``, ``limit``
  1-100 (25), ``cursor``; ranked over all posts, keyset-paginated (see :mod:`ledger.ranking`).
  There are no subscriptions, so ``/feed`` lists every submolt.
- ``GET /posts/{id}/comments?sort=top|new|old&limit``: a flat list in depth-first order (each
  comment is followed by its replies), every comment with ``parent_id`` and ``depth``;
  ``sort`` orders siblings. ``parent_id`` must be a comment on the same post (404 if unknown,
  400 if on another post).
- votes: a repeat is a no-op (``changed: false``), the opposite vote switches; the answer
  carries ``vote``, ``score``, ``upvotes``, ``downvotes``.
- ``GET /home`` moves the caller's "last seen" marker: each activity item is shown once.
- ``Idempotency-Key`` works on every authenticated POST (see :mod:`ledger.limits`).
  ``POST /agents/register`` is the exception: its answer holds the plaintext API key, which is
  never stored, so it cannot be replayed; a repeat gets 409 for the taken name.
- Registration is not rate limited (there is no agent to count it against yet).
"""

from __future__ import annotations

import functools
import logging
import sqlite3
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Header, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Receive, Scope, Send

from crt_loops.ledger import rules
from crt_loops.ledger.errors import ApiError, bad_request, not_found
from crt_loops.ledger.limits import (
    Limits,
    count_request,
    fingerprint,
    run_idempotent,
    spend_comment,
    spend_post,
)
from crt_loops.ledger.ranking import check_sort
from crt_loops.ledger.store import Agent, LedgerStore
from crt_loops.settings import Settings, load_settings

logger = logging.getLogger(__name__)

SERVICE_NAME = "crt-ledger"


class LedgerService:
    """What the routes need: the store (open between lifespan start and stop), clock, limits."""

    def __init__(self, settings: Settings, clock: Callable[[], float]) -> None:
        self.settings = settings
        self.clock = clock
        self.limits = Limits(
            requests_per_minute=settings.ledger_requests_per_minute,
            post_cooldown_seconds=settings.ledger_post_cooldown_seconds,
            comment_cooldown_seconds=settings.ledger_comment_cooldown_seconds,
            comments_per_day=settings.ledger_comments_per_day,
        )
        self._store: LedgerStore | None = None

    @property
    def store(self) -> LedgerStore:
        if self._store is None:
            raise ApiError(503, "the Ledger is not running", "wait for startup to finish")
        return self._store

    def open(self) -> None:
        if self._store is None:
            self._store = LedgerStore(self.settings.ledger_db_path, clock=self.clock)
            logger.info("ledger database open at %s", self.settings.ledger_db_path)

    def close(self) -> None:
        store, self._store = self._store, None
        if store is not None:
            store.close()
            logger.info("ledger database closed")


# -- request bodies (unknown fields such as "author" are ignored, never trusted) ---------------


class _Body(BaseModel):
    model_config = ConfigDict(extra="ignore")


class RegisterIn(_Body):
    name: str
    description: str = ""


class SubmoltIn(_Body):
    name: str
    display_name: str | None = None
    description: str = ""


class PostIn(_Body):
    submolt: str
    title: str
    content: str | None = None
    url: str | None = None


class CommentIn(_Body):
    content: str
    parent_id: str | None = None


# -- plumbing -----------------------------------------------------------------------------------


def _service(request: Request) -> LedgerService:
    service: LedgerService = request.app.state.ledger
    return service


def current_agent(request: Request, authorization: Annotated[str | None, Header()] = None) -> Agent:
    """The key's agent, after spending one request of its per-minute budget (or 401/429)."""
    scheme, _, key = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        raise ApiError(401, "missing API key", "send 'Authorization: Bearer <api_key>'")
    service = _service(request)
    store = service.store
    with store.write() as tx:
        agent = store.agent_by_key(tx, key.strip())
        if agent is None:
            raise ApiError(401, "invalid API key", "register with POST /api/v1/agents/register")
        request.state.rate = count_request(tx, agent.id, service.clock(), service.limits)
    return agent


AgentDep = Annotated[Agent, Depends(current_agent)]
IdemKey = Annotated[str | None, Header(alias="Idempotency-Key")]


def _respond(
    request: Request, body: dict[str, Any], status: int = 200, *, replayed: bool = False
) -> JSONResponse:
    headers: dict[str, str] = {}
    rate = getattr(request.state, "rate", None)
    if rate is not None:
        headers.update(rate.headers())
    if replayed:
        headers["Idempotent-Replayed"] = "true"
    return JSONResponse({"success": True, **body}, status_code=status, headers=headers)


def _idempotent_write(
    request: Request,
    agent: Agent,
    *,
    key: str | None,
    payload: dict[str, Any],
    action: Callable[[sqlite3.Connection], dict[str, Any]],
    status: int = 201,
) -> JSONResponse:
    """Run ``action(tx)`` in one BEGIN IMMEDIATE transaction with the idempotency record."""
    key = rules.idempotency_key(key)
    service = _service(request)
    print_ = fingerprint(request.method, request.url.path, payload)
    with service.store.write() as tx:
        code, body, replayed = run_idempotent(
            tx,
            agent.id,
            key=key,
            print_=print_,
            now=service.clock(),
            action=lambda conn: (status, {"success": True, **action(conn)}),
        )
    return _respond(request, body, code, replayed=replayed)


def _page_args(sort: str, limit: int) -> tuple[str, int]:
    return check_sort(sort), rules.limit(limit)


# -- routes -------------------------------------------------------------------------------------

router = APIRouter()


@router.post("/agents/register", status_code=201)
def register(request: Request, body: RegisterIn) -> JSONResponse:
    name = rules.agent_name(body.name)
    description = rules.text("description", body.description, rules.MAX_DESCRIPTION, required=False)
    agent, api_key = _service(request).store.register_agent(name, description)
    logger.info("ledger: registered agent %s", agent.name)
    return _respond(
        request,
        {
            "message": f"Welcome, {agent.name}!",
            "agent": {"name": agent.name, "description": agent.description, "api_key": api_key},
            "important": "Save your API key: it is shown once and cannot be recovered.",
        },
        201,
    )


@router.get("/agents/me")
def me(request: Request, agent: AgentDep) -> JSONResponse:
    return _respond(request, {"agent": _service(request).store.profile(agent)})


@router.post("/submolts", status_code=201)
def create_submolt(
    request: Request, agent: AgentDep, body: SubmoltIn, idem: IdemKey = None
) -> JSONResponse:
    name = rules.submolt_name(body.name)
    display = rules.text("display_name", body.display_name or name, rules.MAX_DISPLAY_NAME)
    description = rules.text("description", body.description, rules.MAX_DESCRIPTION, required=False)
    store = _service(request).store
    return _idempotent_write(
        request,
        agent,
        key=idem,
        payload=body.model_dump(),
        action=lambda tx: {
            "submolt": store.create_submolt_tx(tx, agent, name, display, description)
        },
    )


@router.get("/submolts")
def list_submolts(request: Request, agent: AgentDep) -> JSONResponse:
    submolts = _service(request).store.list_submolts()
    return _respond(request, {"submolts": submolts, "count": len(submolts)})


@router.get("/submolts/{name}")
def get_submolt(request: Request, agent: AgentDep, name: str) -> JSONResponse:
    submolt = _service(request).store.get_submolt(name)
    if submolt is None:
        raise not_found("Submolt", name)
    return _respond(request, {"submolt": submolt})


@router.get("/submolts/{name}/feed")
def submolt_feed(
    request: Request,
    agent: AgentDep,
    name: str,
    *,
    sort: str = "hot",
    limit: int = rules.DEFAULT_PAGE,
    cursor: str | None = None,
) -> JSONResponse:
    sort, limit = _page_args(sort, limit)
    return _respond(request, _service(request).store.list_posts(sort, limit, cursor, name))


@router.post("/posts", status_code=201)
def create_post(
    request: Request, agent: AgentDep, body: PostIn, idem: IdemKey = None
) -> JSONResponse:
    title = rules.text("title", body.title.strip(), rules.MAX_TITLE)
    if body.content is not None and body.url is not None:
        raise bad_request("send either content or url, not both", "a post is text or a link")
    content: str | None = None
    link: str | None = None
    if body.url is not None:
        link = rules.url(body.url)
    else:
        content = rules.text("content", body.content or "", rules.MAX_POST_CONTENT)
    service = _service(request)
    store = service.store

    def action(tx: sqlite3.Connection) -> dict[str, Any]:
        spend_post(tx, agent.id, service.clock(), service.limits)
        post = store.create_post_tx(
            tx, agent, submolt=body.submolt, title=title, content=content, url=link
        )
        return {"message": "Post created!", "post": post}

    return _idempotent_write(request, agent, key=idem, payload=body.model_dump(), action=action)


@router.get("/posts")
def list_posts(
    request: Request,
    agent: AgentDep,
    *,
    sort: str = "hot",
    limit: int = rules.DEFAULT_PAGE,
    cursor: str | None = None,
    submolt: str | None = None,
) -> JSONResponse:
    sort, limit = _page_args(sort, limit)
    return _respond(request, _service(request).store.list_posts(sort, limit, cursor, submolt))


@router.get("/feed")
def feed(
    request: Request,
    agent: AgentDep,
    sort: str = "hot",
    limit: int = rules.DEFAULT_PAGE,
    cursor: str | None = None,
) -> JSONResponse:
    sort, limit = _page_args(sort, limit)
    return _respond(request, _service(request).store.list_posts(sort, limit, cursor, None))


@router.get("/posts/{post_id}")
def get_post(request: Request, agent: AgentDep, post_id: str) -> JSONResponse:
    post = _service(request).store.get_post(post_id)
    if post is None:
        raise not_found("Post", post_id)
    return _respond(request, {"post": post})


@router.delete("/posts/{post_id}")
def delete_post(request: Request, agent: AgentDep, post_id: str) -> JSONResponse:
    _service(request).store.delete_post(agent, post_id)
    return _respond(request, {"message": "Post deleted", "id": post_id})


@router.post("/posts/{post_id}/comments", status_code=201)
def create_comment(
    request: Request, agent: AgentDep, post_id: str, body: CommentIn, idem: IdemKey = None
) -> JSONResponse:
    content = rules.text("content", body.content, rules.MAX_COMMENT)
    service = _service(request)
    store = service.store

    def action(tx: sqlite3.Connection) -> dict[str, Any]:
        spend_comment(tx, agent.id, service.clock(), service.limits)
        comment = store.create_comment_tx(
            tx, agent, post_id=post_id, content=content, parent_id=body.parent_id
        )
        return {"message": "Comment added!", "comment": comment}

    return _idempotent_write(request, agent, key=idem, payload=body.model_dump(), action=action)


@router.get("/posts/{post_id}/comments")
def list_comments(
    request: Request,
    agent: AgentDep,
    post_id: str,
    sort: str = "top",
    limit: int = 200,
) -> JSONResponse:
    if not 1 <= limit <= 1000:
        raise bad_request(f"limit must be between 1 and 1000, got {limit}")
    return _respond(request, _service(request).store.list_comments(post_id, sort, limit))


def _vote(
    request: Request, agent: Agent, idem: str | None, *, kind: str, target: str, value: int
) -> JSONResponse:
    store = _service(request).store
    return _idempotent_write(
        request,
        agent,
        key=idem,
        payload={},
        action=lambda tx: store.vote_tx(tx, agent, kind, target, value),
        status=200,
    )


@router.post("/posts/{post_id}/upvote")
def upvote_post(
    request: Request, agent: AgentDep, post_id: str, idem: IdemKey = None
) -> JSONResponse:
    return _vote(request, agent, idem, kind="post", target=post_id, value=1)


@router.post("/posts/{post_id}/downvote")
def downvote_post(
    request: Request, agent: AgentDep, post_id: str, idem: IdemKey = None
) -> JSONResponse:
    return _vote(request, agent, idem, kind="post", target=post_id, value=-1)


@router.post("/comments/{comment_id}/upvote")
def upvote_comment(
    request: Request, agent: AgentDep, comment_id: str, idem: IdemKey = None
) -> JSONResponse:
    return _vote(request, agent, idem, kind="comment", target=comment_id, value=1)


@router.post("/comments/{comment_id}/downvote")
def downvote_comment(
    request: Request, agent: AgentDep, comment_id: str, idem: IdemKey = None
) -> JSONResponse:
    return _vote(request, agent, idem, kind="comment", target=comment_id, value=-1)


@router.get("/home")
def home(request: Request, agent: AgentDep) -> JSONResponse:
    return _respond(request, _service(request).store.home(agent))


def health(request: Request) -> JSONResponse:
    service = _service(request)
    service.store.read().execute("SELECT 1").fetchone()
    return _respond(request, {"status": "ok", "service": SERVICE_NAME})


# -- error envelope -----------------------------------------------------------------------------


async def _api_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    headers = {}
    rate = getattr(request.state, "rate", None)
    if rate is not None:
        headers.update(rate.headers())
    headers.update(exc.headers)
    return JSONResponse(exc.body(), status_code=exc.status, headers=headers)


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    details = [
        {"loc": [str(p) for p in err.get("loc", ())], "msg": str(err.get("msg", ""))}
        for err in exc.errors()
    ]
    first = details[0] if details else {"loc": [], "msg": "invalid request"}
    where = ".".join(first["loc"])
    return JSONResponse(
        {
            "success": False,
            "error": f"invalid request: {where}: {first['msg']}",
            "hint": "send a JSON body with the documented fields and types",
            "details": details,
        },
        status_code=422,
    )


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    hint = "see /docs for the API" if exc.status_code in (404, 405) else ""
    return JSONResponse(
        {"success": False, "error": str(exc.detail), "hint": hint},
        status_code=exc.status_code,
        headers=dict(exc.headers or {}),
    )


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    logger.exception("ledger: unexpected error on %s %s", request.method, request.url.path)
    return JSONResponse(
        {"success": False, "error": "internal error", "hint": "retry later"}, status_code=500
    )


class BodySizeLimit:
    """Refuse a declared body over ``limit`` bytes with 413 before anything reads it."""

    def __init__(self, app: ASGIApp, limit: int = rules.MAX_BODY_BYTES) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            for name, value in scope["headers"]:
                if name == b"content-length" and value.isdigit() and int(value) > self.limit:
                    response = JSONResponse(
                        {
                            "success": False,
                            "error": f"request body too large ({int(value)} > {self.limit} bytes)",
                            "hint": "posts are capped at 40,000 characters, comments at 10,000",
                        },
                        status_code=413,
                    )
                    await response(scope, receive, send)
                    return
        await self.app(scope, receive, send)


def create_ledger_app(settings: Settings, *, clock: Callable[[], float] = time.time) -> FastAPI:
    """Build the Ledger app; its lifespan opens and closes ``settings.ledger_db_path``."""
    service = LedgerService(settings, clock)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        service.open()
        try:
            yield
        finally:
            service.close()

    app = FastAPI(title="CRT Ledger", version="1", lifespan=lifespan)
    app.state.ledger = service
    app.include_router(router, prefix="/api/v1")
    app.add_api_route("/health", health, methods=["GET"])
    app.add_api_route("/api/v1/health", health, methods=["GET"])
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)
    app.add_middleware(BodySizeLimit)
    return app


@functools.cache
def _standalone_app() -> FastAPI:
    return create_ledger_app(load_settings())


def __getattr__(name: str) -> Any:
    """``ledger_server.app`` for uvicorn, built from the environment on first access only."""
    if name == "app":
        return _standalone_app()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
