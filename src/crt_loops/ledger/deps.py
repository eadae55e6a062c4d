"""What every Ledger route shares: the service, auth (required or optional), answers, writes.

Auth follows Moltbook: writes need ``Authorization: Bearer <api_key>``; reads work without
one (``optional_agent``) and, with one, also say what the caller voted, follows or subscribes
to. A key that is sent but wrong is 401 even on a read, so a misconfigured client finds out.
Each authenticated request spends one unit of the agent's per-minute budget, and every answer
to it (errors included) carries the ``X-RateLimit-*`` headers.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import Depends, Header, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict

from crt_loops.db.conn import Connection
from crt_loops.ledger import rules
from crt_loops.ledger.errors import ApiError
from crt_loops.ledger.identity import load_or_create_secret
from crt_loops.ledger.storage.limits import Limits, count_request, fingerprint, run_idempotent
from crt_loops.ledger.store import Agent, LedgerStore
from crt_loops.settings import Settings

logger = logging.getLogger(__name__)


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
        self._identity: bytes | None = None

    @property
    def identity(self) -> bytes:
        """The data dir's identity secret (see crt_loops.ledger.identity)."""
        if self._identity is None:
            raise ApiError(503, "the Ledger is not running", "wait for startup to finish")
        return self._identity

    @property
    def store(self) -> LedgerStore:
        if self._store is None:
            raise ApiError(503, "the Ledger is not running", "wait for startup to finish")
        return self._store

    def open(self) -> None:
        # Before the store opens and the port answers: a worker that finds this Ledger on the
        # port checks its proof against the same file.
        self._identity = load_or_create_secret(self.settings.data_dir)
        if self._store is None:
            self._store = LedgerStore(self.settings.ledger_db_target, clock=self.clock)
            logger.info("ledger database open at %s", self._store.path)

    def close(self) -> None:
        store, self._store = self._store, None
        if store is not None:
            store.close()
            logger.info("ledger database closed")


class Body(BaseModel):
    """Request bodies: unknown fields (such as "author") are ignored, never trusted."""

    model_config = ConfigDict(extra="ignore")


def service(request: Request) -> LedgerService:
    found: LedgerService = request.app.state.ledger
    return found


def base_url(request: Request) -> str:
    """The Ledger's own root URL as the caller reached it (for links in answers)."""
    return str(request.base_url).rstrip("/")


def authenticate(request: Request, authorization: str) -> Agent:
    scheme, _, key = authorization.partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        raise ApiError(401, "missing API key", "send 'Authorization: Bearer <api_key>'")
    svc = service(request)
    store = svc.store
    with store.write() as tx:
        agent = store.agent_by_key(tx, key.strip())
        if agent is None:
            raise ApiError(401, "invalid API key", "register with POST /api/v1/agents/register")
        request.state.rate = count_request(tx, agent.id, svc.clock(), svc.limits)
    return agent


def current_agent(request: Request, authorization: Annotated[str | None, Header()] = None) -> Agent:
    """The key's agent, after spending one request of its per-minute budget (or 401/429)."""
    return authenticate(request, authorization or "")


def optional_agent(
    request: Request, authorization: Annotated[str | None, Header()] = None
) -> Agent | None:
    """Like :func:`current_agent` when a key is sent; ``None`` for an anonymous read."""
    if authorization is None:
        return None
    return authenticate(request, authorization)


AgentDep = Annotated[Agent, Depends(current_agent)]
MaybeAgent = Annotated[Agent | None, Depends(optional_agent)]
IdemKey = Annotated[str | None, Header(alias="Idempotency-Key")]


def viewer_id(agent: Agent | None) -> int | None:
    return agent.id if agent is not None else None


def rate_headers(request: Request) -> dict[str, str]:
    rate = getattr(request.state, "rate", None)
    return dict(rate.headers()) if rate is not None else {}


def respond(
    request: Request, body: dict[str, Any], status: int = 200, *, replayed: bool = False
) -> JSONResponse:
    headers = rate_headers(request)
    if replayed:
        headers["Idempotent-Replayed"] = "true"
    return JSONResponse({"success": True, **body}, status_code=status, headers=headers)


def no_content(request: Request) -> Response:
    """Moltbook answers a DELETE of a post or comment with 204 and no body."""
    return Response(status_code=204, headers=rate_headers(request))


def write(request: Request, action: Callable[[Connection], dict[str, Any]]) -> JSONResponse:
    """Run ``action(tx)`` in one ``BEGIN IMMEDIATE`` transaction and answer 200 with it."""
    with service(request).store.write() as tx:
        body = action(tx)
    return respond(request, body)


def idempotent_write(
    request: Request,
    agent: Agent,
    *,
    key: str | None,
    payload: dict[str, Any],
    action: Callable[[Connection], dict[str, Any]],
    status: int = 201,
) -> JSONResponse:
    """Run ``action(tx)`` in one BEGIN IMMEDIATE transaction with the idempotency record."""
    key = rules.idempotency_key(key)
    svc = service(request)
    print_ = fingerprint(request.method, request.url.path, payload)
    with svc.store.write() as tx:
        code, body, replayed = run_idempotent(
            tx,
            agent.id,
            key=key,
            print_=print_,
            now=svc.clock(),
            action=lambda conn: (status, {"success": True, **action(conn)}),
        )
    return respond(request, body, code, replayed=replayed)


def page_limit(limit: int) -> int:
    return rules.limit(limit)
