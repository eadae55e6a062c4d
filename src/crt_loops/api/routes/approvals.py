"""The owner's approvals: list proposed heartbeat actions, approve (optionally edited), reject.

Approving an action that is not ``proposed`` (approved, rejected, expired, sent) is a 409 whose
detail says its state; a bad edit is a 422 naming the field; the Ledger being unreachable while
the action is re-checked is a 503 and leaves the action proposed.
"""

from __future__ import annotations

from typing import Annotated, Any

import anyio
from fastapi import APIRouter, HTTPException, Path, Query, Request
from pydantic import Field

from crt_loops.api.routes.base_models import ISO, Out, _example
from crt_loops.api.routes.deps import DB, valid_thread_id
from crt_loops.api.routes.heartbeat import json_body, runner
from crt_loops.api.routes.responses import ACTION_EXAMPLE, HeartbeatAction
from crt_loops.core.enums import ActionState
from crt_loops.db import approvals as approval_records
from crt_loops.heartbeat import approvals
from crt_loops.heartbeat.approvals import (
    ApprovalConflict,
    ApprovalDesk,
    ApprovalInvalid,
    ApprovalNotFound,
    ApprovalUnavailable,
)

router = APIRouter(tags=["approvals"])


# -- response models ------------------------------------------------------------------


class DecidedAction(HeartbeatAction):
    """An action after the owner's decision: ``sent`` (or ``failed``) when approved, ``blocked``
    with the reason when no longer allowed at send time, ``rejected``."""

    model_config = _example({**ACTION_EXAMPLE, "action_id": 42, "thread_id": "default"})
    action_id: int
    thread_id: str


class Approval(HeartbeatAction):
    """A proposed action waiting for the owner, with its context."""

    model_config = _example(
        {
            **ACTION_EXAMPLE,
            "state": ActionState.PROPOSED.value,
            "ledger_id": None,
            "action_id": 42,
            "thread_id": "default",
            "run_id": "5f0c2a9e0b7d4c1f8a6e3d2b1c0f9e8d",
            "proposed_at": ISO,
            "expires_at": "2026-03-02T09:30:00Z",
            "run_summary": "a note about the new job seemed worth sharing",
        }
    )
    action_id: int
    thread_id: str
    run_id: str
    proposed_at: str | None
    expires_at: str | None = Field(description="unanswered, it becomes expired at this time")
    run_summary: str = Field(description="the agent's own summary of the run that proposed it")


class ApprovalList(Out):
    model_config = _example({"count": 0, "approvals": []})
    count: int
    approvals: list[Approval] = Field(description="the one expiring first first")


ActionId = Annotated[int, Path(ge=1, le=2**62, description="the action's id (action_id)")]


def _desk(request: Request) -> ApprovalDesk:
    return ApprovalDesk(runner(request))


def _optional_body(raw: bytes) -> bool:
    return bool(raw.strip())


async def _body(request: Request, allowed: set[str]) -> dict[str, Any]:
    """An optional JSON object with only ``allowed`` keys (no body at all is fine)."""
    if not _optional_body(await request.body()):
        return {}
    body: dict[str, Any] = await json_body(request)
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise HTTPException(
            status_code=422,
            detail=[
                {
                    "loc": ["body", key],
                    "msg": f"unknown field; use {sorted(allowed)}",
                    "type": "extra_forbidden",
                }
                for key in unknown
            ],
        )
    return body


def _decide(call: Any) -> dict[str, Any]:
    try:
        record = call()
    except ApprovalNotFound as exc:
        raise HTTPException(status_code=404, detail=str(exc)) from exc
    except ApprovalConflict as exc:
        raise HTTPException(status_code=409, detail=str(exc)) from exc
    except ApprovalInvalid as exc:
        raise HTTPException(
            status_code=422,
            detail=[{"loc": ["body", exc.field], "msg": exc.message, "type": "value_error"}],
        ) from exc
    except ApprovalUnavailable as exc:
        raise HTTPException(status_code=503, detail=str(exc)) from exc
    return {**record.as_api(), "action_id": record.id, "thread_id": record.thread_id}


@router.get(
    "/api/approvals",
    summary="Heartbeat actions waiting for the owner's approval",
    response_model=ApprovalList,
)
def list_approvals(
    db: DB,
    request: Request,
    thread_id: Annotated[str | None, Query(description="only this thread's")] = None,
) -> dict[str, Any]:
    if thread_id is not None:
        valid_thread_id(thread_id)
    approvals.expire_due(db, runner(request).clock())
    pending = approval_records.list_proposed(db, thread_id=thread_id)
    return {"count": len(pending), "approvals": [p.as_api() for p in pending]}


@router.post(
    "/api/approvals/{action_id}/approve",
    summary="Approve a proposed action (optionally with an edited title/content) and send it",
    response_model=DecidedAction,
    openapi_extra={
        "requestBody": {
            "required": False,
            "content": {
                "application/json": {
                    "schema": {
                        "type": "object",
                        "properties": {"title": {"type": "string"}, "content": {"type": "string"}},
                    },
                    "example": {"content": "A shorter, kinder version."},
                }
            },
        }
    },
)
async def approve(action_id: ActionId, request: Request) -> dict[str, Any]:
    edits = await _body(request, {"title", "content"})
    desk = _desk(request)
    return await anyio.to_thread.run_sync(
        lambda: _decide(lambda: desk.approve(action_id, edits=edits))
    )


@router.post(
    "/api/approvals/{action_id}/reject",
    summary="Reject a proposed action (optional reason, shown to the model next time)",
    response_model=DecidedAction,
    openapi_extra={
        "requestBody": {
            "required": False,
            "content": {
                "application/json": {
                    "schema": {"type": "object", "properties": {"reason": {"type": "string"}}},
                    "example": {"reason": "too salesy"},
                }
            },
        }
    },
)
async def reject(action_id: ActionId, request: Request) -> dict[str, Any]:
    body = await _body(request, {"reason"})
    desk = _desk(request)
    return await anyio.to_thread.run_sync(
        lambda: _decide(lambda: desk.reject(action_id, reason=body.get("reason")))
    )
