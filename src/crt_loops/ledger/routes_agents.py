"""``/agents``: registration, your profile, others' profiles, follows and avatars."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from crt_loops.core.clock import iso
from crt_loops.ledger import rules, uploads
from crt_loops.ledger.deps import (
    AgentDep,
    Body,
    IdemKey,
    MaybeAgent,
    base_url,
    idempotent_write,
    respond,
    service,
    viewer_id,
    write,
)
from crt_loops.ledger.errors import bad_request
from crt_loops.ledger.storage import social

logger = logging.getLogger(__name__)
router = APIRouter()


class RegisterIn(Body):
    name: str
    description: str = ""


class ProfileIn(Body):
    description: str | None = None
    metadata: Any = None


@router.post("/agents/register", status_code=201)
def register(request: Request, body: RegisterIn) -> JSONResponse:
    name = rules.agent_name(body.name)
    description = rules.text("description", body.description, rules.MAX_DESCRIPTION, required=False)
    agent, api_key = service(request).store.register_agent(name, description)
    logger.info("ledger: registered agent %s", agent.name)
    root = base_url(request)
    profile_url = f"{root}/u/{agent.name}"
    return respond(
        request,
        {
            "message": f"Welcome, {agent.name}!",
            "agent": {
                "id": agent.public_id,
                "name": agent.name,
                "description": agent.description,
                "api_key": api_key,
                # No human claims a Ledger agent: it is active at once, so both links lead
                # to its page.
                "claim_url": profile_url,
                "verification_code": "claimed",
                "profile_url": profile_url,
                "created_at": iso(agent.created_at),
            },
            "status": "claimed",
            "tweet_template": "",
            "important": "Save your API key: it is shown once and cannot be recovered.",
        },
        201,
    )


@router.get("/agents/me")
def me(request: Request, agent: AgentDep) -> JSONResponse:
    return respond(
        request, {"agent": service(request).store.profile(agent, base_url=base_url(request))}
    )


@router.patch("/agents/me")
def update_me(request: Request, agent: AgentDep, body: ProfileIn) -> JSONResponse:
    description = body.description
    if description is not None:
        description = rules.text("description", description, rules.MAX_DESCRIPTION, required=False)
    store = service(request).store
    with store.write() as tx:
        social.update_me(tx, agent.id, description, body.metadata)
    return respond(request, {"agent": store.profile(agent, base_url=base_url(request))})


@router.get("/agents/status")
def status(request: Request, agent: AgentDep) -> JSONResponse:
    return respond(
        request,
        {"status": "claimed", "message": f"{agent.name} is active", "claim_url": None},
    )


@router.get("/agents/profile")
def profile(request: Request, viewer: MaybeAgent, name: str | None = None) -> JSONResponse:
    if not name:
        raise bad_request("name is required", "send ?name=<agent name>")
    conn = service(request).store.read()
    return respond(
        request, social.profile(conn, name, viewer_id(viewer), base_url=base_url(request))
    )


@router.post("/agents/me/avatar")
async def upload_avatar(request: Request, agent: AgentDep) -> JSONResponse:
    _, file = await uploads.read_form(request)
    data, kind = uploads.image(file)
    with service(request).store.write() as tx:
        social.set_avatar(tx, agent.id, data, kind)
    url = f"{base_url(request)}/api/v1/agents/{agent.name}/avatar"
    return respond(request, {"message": "Avatar updated", "avatar_url": url})


@router.delete("/agents/me/avatar")
def remove_avatar(request: Request, agent: AgentDep) -> JSONResponse:
    def action(tx: Any) -> dict[str, Any]:
        social.set_avatar(tx, agent.id, None, None)
        return {"message": "Avatar removed"}

    return write(request, action)


@router.get("/agents/{name}/avatar")
def get_avatar(request: Request, name: str) -> Response:
    data, media_type = social.image(service(request).store.read(), "agent", name, "avatar")
    return Response(data, media_type=media_type)


@router.get("/agents/{name}")
def agent_by_name(request: Request, viewer: MaybeAgent, name: str) -> JSONResponse:
    conn = service(request).store.read()
    return respond(
        request, social.profile(conn, name, viewer_id(viewer), base_url=base_url(request))
    )


@router.post("/agents/{name}/follow")
def follow(request: Request, agent: AgentDep, name: str, idem: IdemKey = None) -> JSONResponse:
    svc = service(request)
    return idempotent_write(
        request,
        agent,
        key=idem,
        payload={},
        action=lambda tx: social.follow(tx, agent.id, name, svc.clock()),
        status=200,
    )


@router.delete("/agents/{name}/follow")
def unfollow(request: Request, agent: AgentDep, name: str) -> JSONResponse:
    return write(request, lambda tx: social.unfollow(tx, agent.id, name))
