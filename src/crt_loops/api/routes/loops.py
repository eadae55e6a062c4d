"""The four loops: status, start/stop at run time, and one pass for one thread now."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, HTTPException, Request
from pydantic import BaseModel, ConfigDict, Field

from crt_loops.api.routes import responses as out
from crt_loops.api.routes.deps import get_services, valid_thread_id
from crt_loops.loops.runner import LOOP_NAMES, BackgroundLoop, LoopStateError

STOP_TIMEOUT_SECONDS = 30.0

router = APIRouter(prefix="/api/loops", tags=["loops"])

LoopName = Literal["reflection", "personality", "journal_self_reply", "heartbeat"]
THINKING_LOOPS: tuple[LoopName, ...] = ("reflection", "personality", "journal_self_reply")


class RunLoopsIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"thread_id": "default", "loops": ["reflection"]}]},
    )
    thread_id: str = Field("default", examples=["default"])
    loops: list[LoopName] = Field(
        default_factory=lambda: list(THINKING_LOOPS),
        description="which loops to run for this thread now, in order",
        max_length=4,
    )


def loops_by_name(request: Request) -> dict[str, BackgroundLoop]:
    return get_services(request).loops


def get_loop(request: Request, name: str) -> BackgroundLoop:
    loops = loops_by_name(request)
    if name not in loops:
        raise HTTPException(
            status_code=404,
            detail=f"unknown loop {name!r}; loops are: {', '.join(LOOP_NAMES)}",
        )
    return loops[name]


@router.get("", summary="Status of every loop", response_model=out.LoopList)
def list_loops(request: Request) -> dict[str, Any]:
    return {"loops": [loop.status() for loop in loops_by_name(request).values()]}


@router.post(
    "/{name}/start",
    summary="Start a loop (even if its env var left it off)",
    response_model=out.LoopStarted,
)
def start_loop(name: str, request: Request) -> dict[str, Any]:
    loop = get_loop(request, name)
    try:
        started = loop.start()
    except LoopStateError as exc:
        raise HTTPException(status_code=409, detail=str(exc)) from exc
    return {"started": started, **loop.status()}


@router.post(
    "/{name}/stop",
    summary="Stop a loop; returns once its thread has stopped",
    response_model=out.LoopStopped,
)
def stop_loop(name: str, request: Request) -> dict[str, Any]:
    loop = get_loop(request, name)
    # A heartbeat in flight finishes its LLM call and records it first.
    stopped = loop.stop(timeout=STOP_TIMEOUT_SECONDS)
    return {"stopped": stopped, **loop.status()}


@router.post(
    "/run",
    summary="Run the chosen loops for one thread now, synchronously",
    response_model=out.LoopsRun,
)
def run_loops(body: RunLoopsIn, request: Request) -> dict[str, Any]:
    thread_id = valid_thread_id(body.thread_id)
    db = get_services(request).db
    if not db.thread_exists(thread_id):
        raise HTTPException(status_code=404, detail=f"thread {thread_id!r} does not exist")
    loops = loops_by_name(request)
    results: dict[str, Any] = {}
    for name in body.loops:
        results[name] = loops[name].run_for_thread(thread_id)
    return {"thread_id": thread_id, "results": results}
