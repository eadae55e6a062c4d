"""The heartbeat endpoints of docs/seed.md (docs/architecture.md §4), each working with its exact
curl command.

Bodies are read as JSON whatever their Content-Type: docs/seed.md's HEARTBEAT.md POST is sent by
``curl -d`` (form-encoded Content-Type) and other clients send none at all.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

import anyio
from fastapi import APIRouter, HTTPException, Path, Query, Request
from pydantic import ValidationError

from crt_loops.api.routes import responses as out
from crt_loops.api.routes.deps import (
    DB,
    ExistingThread,
    ThreadId,
    get_services,
    invalid_thread_ids,
)
from crt_loops.api.routes.ledger import with_page_urls
from crt_loops.api.routes.loops import start_loop, stop_loop
from crt_loops.core.clock import iso
from crt_loops.core.enums import RunOutcome, RunReason, Trigger
from crt_loops.db import approvals as approval_records
from crt_loops.db import heartbeat_claims, heartbeats, prompts
from crt_loops.db.availability import classify
from crt_loops.db.errors import DatabaseError
from crt_loops.db.session import THREAD_ID_RE
from crt_loops.heartbeat.config import ConfigPatch
from crt_loops.heartbeat.executor import (
    MANUAL_RETRY_AFTER_SECONDS,
    HeartbeatBusy,
    HeartbeatRunner,
    HeartbeatThreadNotFound,
)
from crt_loops.heartbeat.instructions import (
    MAX_BYTES,
    Instructions,
    InstructionsConflict,
    InstructionsError,
    InstructionsInvalid,
    InstructionsTooLarge,
    load_instructions,
    write_instructions,
)
from crt_loops.heartbeat.loop import HeartbeatLoop

router = APIRouter(tags=["heartbeat"])

MAX_BODY_BYTES = 256 * 1024


def heartbeat_loop(request: Request) -> HeartbeatLoop:
    loop = get_services(request).heartbeat_loop
    if loop is None:
        raise HTTPException(status_code=503, detail="the heartbeat loop is not built yet")
    return loop


def runner(request: Request) -> HeartbeatRunner:
    try:
        return heartbeat_loop(request).runner()
    except HTTPException:
        raise
    except Exception as exc:
        raise HTTPException(
            status_code=503, detail=f"the heartbeat executor is not available: {exc}"
        ) from exc


async def json_body(request: Request, *, max_bytes: int = MAX_BODY_BYTES) -> Any:
    """The body parsed as JSON regardless of Content-Type, or a 4xx that says what is wrong."""
    raw = await request.body()
    if len(raw) > max_bytes:
        raise HTTPException(status_code=413, detail=f"body is larger than {max_bytes} bytes")
    if not raw.strip():
        raise HTTPException(status_code=422, detail="request body is empty; send a JSON object")
    try:
        value = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise HTTPException(
            status_code=422, detail=f"request body is not valid JSON: {exc}"
        ) from exc
    except RecursionError as exc:
        # json.loads recurses per nesting level: "[[[[..." 100k deep was a 500
        # (tests/test_fuzz_api.py).
        raise HTTPException(
            status_code=422, detail="request body is not valid JSON: it nests too deeply"
        ) from exc
    if not isinstance(value, dict):
        raise HTTPException(status_code=422, detail="request body must be a JSON object")
    return value


def _errors(exc: ValidationError) -> list[dict[str, Any]]:
    return [
        {
            "loc": ["body", *[str(p) for p in e.get("loc", ())]],
            "msg": e.get("msg"),
            "type": e.get("type"),
        }
        for e in exc.errors()
    ]


# -- loop status and control -------------------------------------------------------------


def model_warning(llm: Any, model: str | None) -> str | None:
    """A sentence when ``model`` is set and the LLM server's list lacks it (it is kept: the
    model may be pulled later, and every run it fails names it)."""
    if not model or not hasattr(llm, "has_model"):
        return None
    if llm.has_model(model) is False:
        known = ", ".join((llm.models() or [])[:10]) or "none"
        return (
            f"the LLM server at {llm.host} has no model {model!r} (it has: {known}); "
            "heartbeats of this thread will fail until it does"
        )
    return None


@router.get(
    "/api/heartbeat/status",
    summary="Heartbeat loop state, schedule and run counts",
    response_model=out.HeartbeatStatus,
)
def status(request: Request, db: DB) -> dict[str, Any]:
    loop = heartbeat_loop(request)
    base = loop.status()
    due = heartbeat_claims.earliest_due(db)
    llm = get_services(request).llm
    return {
        **base,
        "threads_enabled": heartbeat_claims.count_scheduled(db),
        "next_due": {"thread_id": due[0], "at": iso(due[1])} if due else None,
        "llm": llm.status(),
        "runs_by_outcome": heartbeats.outcome_counts(db),
        "owner": owner_status(db),
    }


def owner_status(db: Any) -> dict[str, Any]:
    """The owner-in-the-loop numbers, from the session DB so every worker agrees."""
    states = approval_records.counts(db)
    return {
        "approvals_pending": states["proposed"],
        "approvals_expired": states["expired"],
        "approvals_rejected": states["rejected"],
        "owner_active_deferrals": heartbeats.count_runs_with(db, "owner_active"),
        "reply_wakes": heartbeats.count_runs_with(db, "reply"),
    }


@router.post(
    "/api/heartbeat/start",
    summary="Start the heartbeat loop (even if the env left it off)",
    response_model=out.LoopStarted,
)
def start(request: Request) -> dict[str, Any]:
    return start_loop("heartbeat", request)


@router.post(
    "/api/heartbeat/stop",
    summary="Stop the heartbeat loop; returns once it stopped",
    response_model=out.LoopStopped,
)
def stop(request: Request) -> dict[str, Any]:
    return stop_loop("heartbeat", request)


# -- per-thread config, run-now, history --------------------------------------------------


def config_view(db: Any, thread_id: str) -> dict[str, Any]:
    hb = heartbeats.get_thread_heartbeat(db, thread_id)
    if hb is None:
        raise HTTPException(status_code=404, detail=f"thread {thread_id!r} does not exist")
    return _view(hb)


def _view(hb: heartbeats.ThreadHeartbeat) -> dict[str, Any]:
    thread_id = hb.thread_id
    return {
        "thread_id": thread_id,
        "config": hb.config.model_dump(mode="json"),
        "configured": hb.configured,
        "last_run": iso(hb.last_run),
        "last_summary": hb.last_summary,
        "last_actions": hb.last_actions,
        "last_outcome": hb.last_outcome,
        "last_reason": hb.last_reason,
        "next_due_at": iso(hb.next_due),
        "consecutive_failures": hb.failures,
    }


#: Most thread ids one ``GET /api/heartbeat/configs`` takes (the dashboard lists 50).
MAX_CONFIGS = 100


@router.get(
    "/api/heartbeat/configs",
    summary="Several threads' heartbeat configs in one call (unknown ids listed as missing)",
    response_model=out.HeartbeatConfigViews,
)
def get_configs(
    db: DB,
    thread_id: Annotated[
        list[str],
        Query(
            min_length=1,
            max_length=MAX_CONFIGS,
            description=f"repeat for each thread, 1 to {MAX_CONFIGS} ids",
        ),
    ],
) -> dict[str, Any]:
    bad = [t for t in thread_id if not THREAD_ID_RE.fullmatch(t)]
    if bad:
        raise invalid_thread_ids("query", bad)
    wanted = list(dict.fromkeys(thread_id))  # each once, in the order asked
    found = {hb.thread_id: hb for hb in heartbeats.get_thread_heartbeats(db, wanted)}
    return {
        "configs": [_view(found[t]) for t in wanted if t in found],
        "missing": [t for t in wanted if t not in found],
    }


@router.get(
    "/api/threads/{thread_id}/heartbeat/config",
    summary="A thread's heartbeat config and last run (404 for an unknown thread)",
    response_model=out.HeartbeatConfigView,
)
def get_config(thread_id: ExistingThread, db: DB) -> dict[str, Any]:
    return config_view(db, thread_id)


@router.post(
    "/api/threads/{thread_id}/heartbeat/config",
    summary="Partially update a thread's heartbeat config (creates the thread if needed)",
    response_model=out.HeartbeatConfigView,
    openapi_extra={
        "requestBody": {
            "content": {
                "application/json": {
                    "schema": ConfigPatch.model_json_schema(),
                    "example": {"enabled": True, "every": 1800, "target": "none"},
                }
            }
        }
    },
)
async def post_config(thread_id: ThreadId, request: Request, db: DB) -> dict[str, Any]:
    patch = await json_body(request)

    def update() -> dict[str, Any]:
        # Off the event loop: the merge and the DB write are one transaction in a worker thread.
        try:
            runner(request).update_config(thread_id, patch)
        except ValidationError as exc:
            raise HTTPException(status_code=422, detail=_errors(exc)) from exc
        except ValueError as exc:
            raise HTTPException(status_code=422, detail=str(exc)) from exc
        view = config_view(db, thread_id)
        warning = model_warning(get_services(request).llm, view["config"].get("model"))
        if warning:
            view["warnings"] = [warning]
        return view

    return await anyio.to_thread.run_sync(update)


@router.post(
    "/api/threads/{thread_id}/heartbeat/run-now",
    summary="Run one heartbeat now, synchronously; 409 if one is already running, 429 with "
    "Retry-After when every LLM slot stays busy",
    response_model=out.HeartbeatRun,
)
async def run_now(
    thread_id: ExistingThread,
    request: Request,
    dry_run: Annotated[bool, Query(description="force a dry run: nothing is sent")] = False,
) -> dict[str, Any]:
    # Admission happens here, on the event loop: a refused run-now never holds a worker thread
    # while it waits, so any number of them leave /health, reads and the dashboard their threads.
    # (Building the runner the first time may do I/O, so it is fetched in a worker thread.)
    admission = await anyio.to_thread.run_sync(lambda: runner(request).manual_admission)
    if not admission.acquire(0):
        raise _slots_busy(
            "too many manual heartbeats are already running or waiting for the LLM; "
            f"try again in {MANUAL_RETRY_AFTER_SECONDS} s"
        )
    try:
        record = await anyio.to_thread.run_sync(
            lambda: runner(request).run(thread_id, trigger=Trigger.MANUAL, force_dry_run=dry_run)
        )
    except HeartbeatBusy as exc:
        raise HTTPException(status_code=409, detail=str(exc)) from exc
    except HeartbeatThreadNotFound as exc:
        raise HTTPException(status_code=404, detail=str(exc)) from exc
    except DatabaseError as exc:
        failure = classify(exc)
        if failure is None:
            raise
        raise HTTPException(
            status_code=503,
            detail=f"{failure.sentence()}; the run is recorded as failed/db_error once the "
            "database is writable again (see the thread's heartbeat history)",
            headers={"Retry-After": str(failure.retry_after)},
        ) from exc
    finally:
        admission.release()
    if record.outcome == RunOutcome.SKIPPED and record.reason == RunReason.BUSY:
        # The run is in the history as skipped/busy; the caller learns when to come back.
        raise _slots_busy(f"{record.summary} (run {record.run_id})")
    return with_page_urls(request, record.as_api())


def _slots_busy(detail: str) -> HTTPException:
    return HTTPException(
        status_code=429,
        detail=detail,
        headers={"Retry-After": str(MANUAL_RETRY_AFTER_SECONDS)},
    )


@router.get(
    "/api/threads/{thread_id}/heartbeat/history",
    summary="A thread's heartbeat runs, newest first",
    response_model=out.HeartbeatHistory,
)
def history(
    thread_id: ExistingThread,
    db: DB,
    request: Request,
    limit: Annotated[int, Query(ge=1, le=500)] = 20,
) -> dict[str, Any]:
    runs = heartbeats.list_runs(db, thread_id, limit=limit)
    return {"thread_id": thread_id, "runs": [with_page_urls(request, r.as_api()) for r in runs]}


@router.get(
    "/api/threads/{thread_id}/heartbeat/runs/{run_id}/prompt",
    summary="The prompt a run sent the model (secrets masked; kept for the latest runs)",
    response_model=out.HeartbeatPrompt,
    responses={404: {"description": "no such run, or its prompt is no longer kept"}},
)
def run_prompt(
    thread_id: ExistingThread,
    db: DB,
    run_id: Annotated[str, Path(pattern=r"^[0-9a-f]{1,64}$")],
) -> dict[str, Any]:
    stored = prompts.get_prompt(db, run_id)
    if stored is None or stored.thread_id != thread_id:
        raise HTTPException(
            status_code=404,
            detail=f"no prompt kept for run {run_id} of thread {thread_id!r}: runs that made "
            f"no LLM call have none, and only the latest {prompts.KEEP_PER_THREAD} are kept",
        )
    return stored.as_api()


# -- HEARTBEAT.md --------------------------------------------------------------------------


def _instructions_view(doc: Instructions) -> dict[str, Any]:
    return {**doc.as_dict(), "exists": not doc.missing, "max_bytes": MAX_BYTES}


@router.get(
    "/api/heartbeat/heartbeat.md", summary="Read HEARTBEAT.md", response_model=out.HeartbeatMd
)
def get_heartbeat_md(request: Request) -> dict[str, Any]:
    try:
        doc = load_instructions(request.app.state.settings.heartbeat_md_path)
    except InstructionsError as exc:
        raise HTTPException(status_code=500, detail=str(exc)) from exc
    return _instructions_view(doc)


@router.post(
    "/api/heartbeat/heartbeat.md",
    summary="Replace HEARTBEAT.md atomically (JSON body, any Content-Type)",
    response_model=out.HeartbeatMd,
    openapi_extra={
        "requestBody": {
            "content": {
                "application/json": {
                    "schema": {
                        "type": "object",
                        "required": ["content"],
                        "properties": {
                            "content": {"type": "string"},
                            "expected_sha256": {"type": "string"},
                        },
                    },
                    "example": {"content": "## Checklist\n- Review recent posts\n"},
                }
            }
        }
    },
)
async def post_heartbeat_md(request: Request) -> dict[str, Any]:
    body = await json_body(request, max_bytes=4 * MAX_BYTES)
    unknown = set(body) - {"content", "expected_sha256"}
    if unknown:
        raise HTTPException(status_code=422, detail=f"unknown field(s): {sorted(unknown)}")
    content = body.get("content")
    if not isinstance(content, str):
        raise HTTPException(status_code=422, detail="'content' is required and must be a string")
    expected = body.get("expected_sha256")
    if expected is not None and not isinstance(expected, str):
        raise HTTPException(status_code=422, detail="'expected_sha256' must be a string")
    path = request.app.state.settings.heartbeat_md_path

    def write() -> Any:
        return write_instructions(path, content, expected_sha256=expected)

    try:
        doc = await anyio.to_thread.run_sync(write)
    except InstructionsTooLarge as exc:
        raise HTTPException(status_code=413, detail=str(exc)) from exc
    except InstructionsConflict as exc:
        raise HTTPException(status_code=409, detail=str(exc)) from exc
    except InstructionsInvalid as exc:
        raise HTTPException(status_code=422, detail=str(exc)) from exc
    except InstructionsError as exc:
        raise HTTPException(status_code=500, detail=str(exc)) from exc
    services = getattr(request.app.state, "services", None)
    loop = services.heartbeat_loop if services is not None else None
    if loop is not None:
        loop.wake()
    return _instructions_view(doc)
