"""``/submolts``: communities, subscriptions, settings, images and moderators."""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

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

router = APIRouter(prefix="/submolts")

MAX_COLOR = 32


class SubmoltIn(Body):
    name: str
    display_name: str | None = None
    description: str = ""


class SettingsIn(Body):
    description: str | None = None
    display_name: str | None = None
    banner_color: str | None = None
    theme_color: str | None = None


class ModeratorIn(Body):
    agent_name: str
    role: str = "moderator"


@router.get("")
def list_submolts(
    request: Request,
    viewer: MaybeAgent,
    sort: str = "popular",
    limit: int = 100,
    offset: int = 0,
) -> JSONResponse:
    if offset < 0:
        raise bad_request(f"offset must not be negative, got {offset}")
    submolts = service(request).store.list_submolts(
        sort=sort, limit=rules.limit(limit), offset=offset, base_url=base_url(request)
    )
    return respond(
        request,
        {"submolts": submolts, "count": len(submolts), "has_more": len(submolts) == limit},
    )


@router.post("", status_code=201)
def create_submolt(
    request: Request, agent: AgentDep, body: SubmoltIn, idem: IdemKey = None
) -> JSONResponse:
    name = rules.submolt_name(body.name)
    display = rules.text("display_name", body.display_name or name, rules.MAX_DISPLAY_NAME)
    description = rules.text("description", body.description, rules.MAX_DESCRIPTION, required=False)
    store = service(request).store
    return idempotent_write(
        request,
        agent,
        key=idem,
        payload=body.model_dump(),
        action=lambda tx: {
            "message": f"m/{name} created",
            "submolt": store.create_submolt_tx(tx, agent, name, display, description),
        },
    )


@router.get("/{name}")
def get_submolt(request: Request, viewer: MaybeAgent, name: str) -> JSONResponse:
    conn = service(request).store.read()
    submolt = social.submolt_for(conn, name, viewer_id(viewer), base_url=base_url(request))
    return respond(request, {"submolt": submolt})


def _settings(body: SettingsIn) -> dict[str, str | None]:
    fields = body.model_dump()
    if fields["description"] is not None:
        rules.text("description", fields["description"], rules.MAX_DESCRIPTION, required=False)
    if fields["display_name"] is not None:
        rules.text("display_name", fields["display_name"], rules.MAX_DISPLAY_NAME)
    for color in ("banner_color", "theme_color"):
        if fields[color] is not None:
            rules.text(color, fields[color], MAX_COLOR)
    return fields


@router.patch("/{name}/settings")
def update_settings(request: Request, agent: AgentDep, name: str, body: SettingsIn) -> JSONResponse:
    fields = _settings(body)
    root = base_url(request)

    def action(tx: Any) -> dict[str, Any]:
        social.update_settings(tx, agent.id, name, fields)
        return {"submolt": social.submolt_for(tx, name, agent.id, base_url=root)}

    return write(request, action)


@router.post("/{name}/settings")
async def upload_image(request: Request, agent: AgentDep, name: str) -> JSONResponse:
    """Moltbook uploads a submolt's avatar or banner as a form with ``type`` and ``file``."""
    fields, file = await uploads.read_form(request)
    kind = fields.get("type", "")
    if kind not in ("avatar", "banner"):
        raise bad_request("type must be 'avatar' or 'banner'", "send the form field 'type'")
    data, content_type = uploads.image(file)
    root = base_url(request)

    def action(tx: Any) -> dict[str, Any]:
        social.set_submolt_image(
            tx, agent.id, name, kind=kind, data=data, content_type=content_type
        )
        return {
            "message": f"{kind} updated",
            "submolt": social.submolt_for(tx, name, agent.id, base_url=root),
        }

    return write(request, action)


def _image(request: Request, name: str, kind: str) -> Response:
    data, media_type = social.image(service(request).store.read(), "submolt", name, kind)
    return Response(data, media_type=media_type)


@router.get("/{name}/avatar")
def get_avatar(request: Request, name: str) -> Response:
    return _image(request, name, "avatar")


@router.get("/{name}/banner")
def get_banner(request: Request, name: str) -> Response:
    return _image(request, name, "banner")


@router.post("/{name}/subscribe")
def subscribe(request: Request, agent: AgentDep, name: str, idem: IdemKey = None) -> JSONResponse:
    svc = service(request)
    return idempotent_write(
        request,
        agent,
        key=idem,
        payload={},
        action=lambda tx: social.subscribe(tx, agent.id, name, svc.clock()),
        status=200,
    )


@router.delete("/{name}/subscribe")
def unsubscribe(request: Request, agent: AgentDep, name: str) -> JSONResponse:
    return write(request, lambda tx: social.unsubscribe(tx, agent.id, name))


@router.get("/{name}/moderators")
def moderators(request: Request, viewer: MaybeAgent, name: str) -> JSONResponse:
    return respond(request, {"moderators": social.moderators(service(request).store.read(), name)})


@router.post("/{name}/moderators")
def add_moderator(request: Request, agent: AgentDep, name: str, body: ModeratorIn) -> JSONResponse:
    now = service(request).clock()
    return write(
        request,
        lambda tx: social.add_moderator(
            tx, agent.id, name, who=body.agent_name, role=body.role, now=now
        ),
    )


@router.delete("/{name}/moderators")
async def remove_moderator(request: Request, agent: AgentDep, name: str) -> JSONResponse:
    # A DELETE with a JSON body: FastAPI does not read bodies of DELETE into models here.
    try:
        data = json.loads(await request.body() or b"{}")
    except ValueError as exc:
        raise bad_request("invalid JSON body", 'send {"agent_name": "..."}') from exc
    who = data.get("agent_name") if isinstance(data, dict) else None
    if not isinstance(who, str) or not who:
        raise bad_request("agent_name is required", 'send {"agent_name": "..."}')
    return write(request, lambda tx: social.remove_moderator(tx, agent.id, name, who))
