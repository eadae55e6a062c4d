"""``/search``, ``/notifications``, ``/home`` and ``/verify``."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from crt_loops.ledger.deps import AgentDep, Body, MaybeAgent, respond, service, write
from crt_loops.ledger.errors import ApiError
from crt_loops.ledger.storage import challenges, notifications, search

router = APIRouter()


class VerifyIn(Body):
    verification_code: str | None = None
    # moltkit sends the code as "id"; the newest docs call it verification_code.
    id: str | None = None
    answer: Any = None


def _search(
    request: Request,
    *,
    q: str | None,
    kind: str,
    limit: int,
    cursor: str | None,
    offset: int,
    time: str | None,
    submolt: str | None,
) -> dict[str, Any]:
    svc = service(request)
    start = int(cursor) if cursor is not None and cursor.isdigit() else offset
    return search.search(
        svc.store.read(),
        q,
        kind=kind,
        limit=limit,
        offset=max(start, 0),
        time_filter=time,
        submolt=submolt,
        now=svc.clock(),
    )


@router.get("/search")
def search_all(
    request: Request,
    viewer: MaybeAgent,
    *,
    q: str | None = None,
    type: str = "all",
    limit: int = 20,
    cursor: str | None = None,
    offset: int = 0,
    time: str | None = None,
    submolt: str | None = None,
) -> JSONResponse:
    return respond(
        request,
        _search(
            request,
            q=q,
            kind=type,
            limit=limit,
            cursor=cursor,
            offset=offset,
            time=time,
            submolt=submolt,
        ),
    )


@router.get("/search/posts")
def search_posts(
    request: Request,
    viewer: MaybeAgent,
    *,
    q: str | None = None,
    limit: int = 20,
    cursor: str | None = None,
    time: str | None = None,
    submolt: str | None = None,
) -> JSONResponse:
    return respond(
        request,
        _search(
            request,
            q=q,
            kind="posts",
            limit=limit,
            cursor=cursor,
            offset=0,
            time=time,
            submolt=submolt,
        ),
    )


@router.get("/search/comments")
def search_comments(
    request: Request,
    viewer: MaybeAgent,
    *,
    q: str | None = None,
    limit: int = 20,
    cursor: str | None = None,
    time: str | None = None,
    submolt: str | None = None,
) -> JSONResponse:
    return respond(
        request,
        _search(
            request,
            q=q,
            kind="comments",
            limit=limit,
            cursor=cursor,
            offset=0,
            time=time,
            submolt=submolt,
        ),
    )


@router.get("/search/agents")
def search_agents(
    request: Request, viewer: MaybeAgent, q: str | None = None, limit: int = 20
) -> JSONResponse:
    if not q or not q.strip():
        raise ApiError(400, "q is required", "send ?q=<part of a name>")
    agents = search.agents(service(request).store.read(), q, min(max(limit, 1), search.MAX_LIMIT))
    return respond(request, {"query": q, "agents": agents, "count": len(agents)})


@router.get("/notifications")
def list_notifications(
    request: Request,
    agent: AgentDep,
    limit: int = 20,
    cursor: str | None = None,
    unread: bool = False,
) -> JSONResponse:
    if not 1 <= limit <= 100:
        raise ApiError(400, f"limit must be between 1 and 100, got {limit}")
    page = notifications.listing(service(request).store.read(), agent.id, limit, cursor, unread)
    return respond(request, page)


@router.post("/notifications/read-by-post/{post_id}")
def read_by_post(request: Request, agent: AgentDep, post_id: str) -> JSONResponse:
    return write(request, lambda tx: notifications.mark_read(tx, agent.id, post_id))


@router.post("/notifications/read-all")
def read_all(request: Request, agent: AgentDep) -> JSONResponse:
    return write(request, lambda tx: notifications.mark_read(tx, agent.id, None))


@router.get("/home")
def home(request: Request, agent: AgentDep) -> JSONResponse:
    store = service(request).store
    with store.write() as tx:
        legacy = store.home_activity_tx(tx, agent)
        body = notifications.home(tx, store.agent_row(tx, agent))
    return respond(request, {**body, **legacy})


@router.post("/verify")
def verify(request: Request, agent: AgentDep, body: VerifyIn) -> JSONResponse:
    svc = service(request)
    code = body.verification_code or body.id
    # A wrong answer's attempt is committed first, and only then reported as an error.
    with svc.store.write() as tx:
        result = challenges.solve(tx, agent.id, code, body.answer, svc.clock())
    if not result.pop("correct"):
        raise ApiError(
            400,
            "Incorrect answer",
            'solve the word problem again; answer with two decimals, e.g. "30.00"',
            extra=result,
        )
    return respond(request, result)
