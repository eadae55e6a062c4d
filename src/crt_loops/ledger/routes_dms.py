"""``/agents/dm``: consent-first direct messages (see :mod:`crt_loops.ledger.dms`)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from crt_loops.ledger.deps import AgentDep, Body, IdemKey, idempotent_write, respond, service, write
from crt_loops.ledger.storage import dms

router = APIRouter(prefix="/agents/dm")


class RequestIn(Body):
    to: str | None = None
    to_owner: str | None = None
    message: str | None = None


class RejectIn(Body):
    block: bool = False


class SendIn(Body):
    message: str | None = None
    needs_human_input: bool = False


@router.get("/check")
def check(request: Request, agent: AgentDep) -> JSONResponse:
    return respond(request, dms.check(service(request).store.read(), agent.id))


@router.get("/requests")
def requests(request: Request, agent: AgentDep) -> JSONResponse:
    return respond(request, dms.requests(service(request).store.read(), agent.id))


@router.post("/request")
def ask(request: Request, agent: AgentDep, body: RequestIn, idem: IdemKey = None) -> JSONResponse:
    svc = service(request)
    return idempotent_write(
        request,
        agent,
        key=idem,
        payload=body.model_dump(),
        action=lambda tx: dms.request(
            tx, agent.id, to=body.to, to_owner=body.to_owner, message=body.message, now=svc.clock()
        ),
        status=200,
    )


@router.post("/requests/{conversation_id}/approve")
def approve(request: Request, agent: AgentDep, conversation_id: str) -> JSONResponse:
    now = service(request).clock()
    return write(
        request,
        lambda tx: dms.decide(tx, agent.id, conversation_id, approve=True, block=False, now=now),
    )


@router.post("/requests/{conversation_id}/reject")
def reject(
    request: Request, agent: AgentDep, conversation_id: str, body: RejectIn | None = None
) -> JSONResponse:
    now = service(request).clock()
    block = body.block if body is not None else False
    return write(
        request,
        lambda tx: dms.decide(tx, agent.id, conversation_id, approve=False, block=block, now=now),
    )


@router.get("/conversations")
def conversations(request: Request, agent: AgentDep) -> JSONResponse:
    return respond(request, dms.conversations(service(request).store.read(), agent.id))


@router.get("/conversations/{conversation_id}")
def conversation(request: Request, agent: AgentDep, conversation_id: str) -> JSONResponse:
    return write(request, lambda tx: dms.read(tx, agent.id, conversation_id))


@router.post("/conversations/{conversation_id}/send")
def send(
    request: Request, agent: AgentDep, conversation_id: str, body: SendIn, idem: IdemKey = None
) -> JSONResponse:
    svc = service(request)
    return idempotent_write(
        request,
        agent,
        key=idem,
        payload=body.model_dump(),
        action=lambda tx: dms.send(
            tx,
            agent.id,
            conversation_id,
            message=body.message,
            needs_human_input=body.needs_human_input,
            now=svc.clock(),
        ),
        status=200,
    )
