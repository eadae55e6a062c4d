"""``GET /api/dashboard/poll``: everything one dashboard tick reads, in one request.

A tab used to send seven GETs every 3 s (twelve on every fifth tick). Each paid the framework
and a threadpool hop of its own, and under 20 open tabs they queued behind each other on one
process's GIL (bench/scale.py): most of a thread page's time was that, not its query. This
route answers the same GETs in one request and one worker thread. Each part names the GET it
stands for, with that GET's status and exactly its JSON (its own response model serializes
it), so the dashboard hands each view the answer it would have fetched (dashboard/api.js) and
a view the poll did not cover still fetches its own. The Ledger's status and feed are not
here: they wait on the Ledger, and one slow Ledger must not hold up the rest. The thread list
and its threads' configs are the same for every tab and are read once for all of them
(api/snapshots.py).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request
from pydantic import BaseModel, Field

from crt_loops.api.routes import approvals, heartbeat, insights, journal, loops, threads
from crt_loops.api.routes import responses as out
from crt_loops.api.routes.base_models import Out, _example
from crt_loops.api.routes.deps import DB, existing_thread, get_services, invalid_thread_ids
from crt_loops.db.session import THREAD_ID_RE, SessionDB

router = APIRouter(tags=["dashboard"])

#: The dashboard's own sizes (dashboard/*.js); the defaults are what it asks for.
THREADS_LIMIT, MESSAGES_LIMIT, HISTORY_LIMIT, JOURNAL_LIMIT, CONFIGS_LIMIT = 100, 30, 20, 10, 50


class PollPart(BaseModel):
    path: str = Field(description="the GET this part answers, as the dashboard asks it")
    status: int = Field(description="that GET's status code")
    body: dict[str, Any] = Field(
        description="that GET's JSON answer (its own response model), or its error's detail"
    )


class DashboardPoll(Out):
    model_config = _example(
        {
            "parts": [
                {"path": "/api/approvals", "status": 200, "body": {"count": 0, "approvals": []}},
                {
                    "path": "/api/threads/ghost/heartbeat/config",
                    "status": 404,
                    "body": {"detail": "thread 'ghost' does not exist"},
                },
            ]
        }
    )
    parts: list[PollPart] = Field(description="one per GET, in the order the dashboard reads")


def _part(path: str, model: type[BaseModel], answer: Callable[[], Any]) -> PollPart:
    try:
        body = model.model_validate(answer()).model_dump(mode="json", by_alias=True)
    except HTTPException as exc:
        # What that GET would answer; errors outside HTTPException fail the whole poll, as
        # they would fail the GET (a locked database is the app's 503).
        return PollPart(path=path, status=exc.status_code, body={"detail": exc.detail})
    return PollPart(path=path, status=200, body=body)


@router.get(
    "/api/dashboard/poll",
    summary="One dashboard tick's reads in one request: loops, status, threads, approvals, and "
    "the selected thread's views",
    response_model=DashboardPoll,
)
def poll(
    request: Request,
    db: DB,
    *,
    thread_id: Annotated[
        str | None,
        Query(description="the selected thread: its messages, config and history are included"),
    ] = None,
    slow: Annotated[
        bool,
        Query(
            description="also the slow tick's reads: the thread's journal and profile, the "
            "listed threads' configs, HEARTBEAT.md"
        ),
    ] = False,
    threads_limit: Annotated[int, Query(ge=1, le=1000)] = THREADS_LIMIT,
    messages_limit: Annotated[int, Query(ge=1, le=1000)] = MESSAGES_LIMIT,
    history_limit: Annotated[int, Query(ge=1, le=500)] = HISTORY_LIMIT,
    journal_limit: Annotated[int, Query(ge=1, le=200)] = JOURNAL_LIMIT,
    configs_limit: Annotated[
        int,
        Query(ge=0, le=heartbeat.MAX_CONFIGS, description="how many listed threads' configs"),
    ] = CONFIGS_LIMIT,
) -> DashboardPoll:
    if thread_id is not None and not THREAD_ID_RE.fullmatch(thread_id):
        raise invalid_thread_ids("query", [thread_id])
    thread_list = f"/api/threads?limit={threads_limit}"

    def build_thread_list() -> tuple[PollPart, list[str]]:
        listed: list[str] = []

        def answer() -> dict[str, Any]:
            page = threads.list_threads(db, limit=threads_limit, offset=0)
            listed.extend(t.thread_id for t in page["threads"])
            return page

        return _part(thread_list, threads.ThreadList, answer), listed

    # The same for every tab: read once for all of them (api/snapshots.py says how long).
    snapshots = get_services(request).snapshots
    threads_part, listed = snapshots.get(thread_list, lambda: db.writes_ended, build_thread_list)
    parts = [
        _part("/api/loops", out.LoopList, lambda: loops.list_loops(request)),
        _part("/api/heartbeat/status", out.HeartbeatStatus, lambda: heartbeat.status(request, db)),
        threads_part,
        _part(
            "/api/approvals",
            approvals.ApprovalList,
            lambda: approvals.list_approvals(db, request, thread_id=None),
        ),
    ]
    if thread_id is not None:
        missing = _missing(db, thread_id)
        parts += _thread_parts(
            request,
            db,
            thread_id,
            missing,
            messages_limit=messages_limit,
            history_limit=history_limit,
        )
        if slow:
            parts += _slow_thread_parts(db, thread_id, missing, journal_limit)
    if slow and listed and configs_limit:
        wanted = listed[:configs_limit]
        configs = "/api/heartbeat/configs?" + "&".join(f"thread_id={t}" for t in wanted)
        # The listed threads are every tab's, so are their configs.
        parts.append(
            snapshots.get(
                configs,
                lambda: db.writes_ended,
                lambda: _part(
                    configs,
                    out.HeartbeatConfigViews,
                    lambda: heartbeat.get_configs(db, thread_id=wanted),
                ),
            )
        )
    if slow:
        parts.append(
            _part(
                "/api/heartbeat/heartbeat.md",
                out.HeartbeatMd,
                lambda: heartbeat.get_heartbeat_md(request),
            )
        )
    return DashboardPoll(parts=parts)


def _missing(db: SessionDB, thread_id: str) -> HTTPException | None:
    """The 404 the thread's own GETs answer when it does not exist (checked once, not once a
    part)."""
    try:
        existing_thread(thread_id, db)
    except HTTPException as exc:
        return exc
    return None


def _existing(missing: HTTPException | None, answer: Callable[[], Any]) -> Callable[[], Any]:
    """``answer``, or that 404."""

    def checked() -> Any:
        if missing is not None:
            raise missing
        return answer()

    return checked


def _thread_parts(
    request: Request,
    db: SessionDB,
    thread_id: str,
    missing: HTTPException | None,
    *,
    messages_limit: int,
    history_limit: int,
) -> list[PollPart]:
    base = f"/api/threads/{thread_id}"
    return [
        _part(
            f"{base}/messages?limit={messages_limit}&newest=true",
            threads.MessageList,
            _existing(
                missing,
                lambda: threads.list_messages(
                    thread_id, db, limit=messages_limit, after_id=0, newest=True
                ),
            ),
        ),
        _part(
            f"{base}/heartbeat/config",
            out.HeartbeatConfigView,
            _existing(missing, lambda: heartbeat.get_config(thread_id, db)),
        ),
        _part(
            f"{base}/heartbeat/history?limit={history_limit}",
            out.HeartbeatHistory,
            _existing(
                missing,
                lambda: heartbeat.history(thread_id, db, request, limit=history_limit),
            ),
        ),
    ]


def _slow_thread_parts(
    db: SessionDB, thread_id: str, missing: HTTPException | None, journal_limit: int
) -> list[PollPart]:
    base = f"/api/threads/{thread_id}"
    return [
        _part(
            f"{base}/journal?limit={journal_limit}",
            out.JournalList,
            _existing(
                missing,
                lambda: journal.list_journal(thread_id, db, limit=journal_limit, before=None),
            ),
        ),
        _part(
            f"{base}/personality",
            out.PersonalityView,
            _existing(missing, lambda: insights.get_personality(thread_id, db)),
        ),
    ]
