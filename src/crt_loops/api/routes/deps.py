"""Dependencies shared by the routers: the app's services and thread-id checking."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

from fastapi import Depends, HTTPException, Path, Request
from pydantic import BaseModel, ConfigDict

from crt_loops.db.session import THREAD_ID_RE, SessionDB

if TYPE_CHECKING:
    from crt_loops.api.services import Services
    from crt_loops.llm.client import LLM
    from crt_loops.settings import Settings

#: SQLite's largest INTEGER: bigger ids, offsets or cursors overflowed into a 500 (found by
#: tests/test_fuzz_api.py), so integer parameters that reach SQL are capped here.
MAX_SQL_INT = 2**63 - 1

THREAD_ID_RULE = (
    "thread_id must be 1-64 characters of letters, digits, '_' or '-' (^[A-Za-z0-9_-]{1,64}$)"
)


def get_services(request: Request) -> Services:
    """The running service's parts, or a 503 while it is still starting."""
    services: Services | None = getattr(request.app.state, "services", None)
    if services is None:
        raise HTTPException(status_code=503, detail="the service is still starting")
    return services


def get_db(request: Request) -> SessionDB:
    return get_services(request).db


def get_settings(request: Request) -> Settings:
    return get_services(request).settings


def get_llm(request: Request) -> LLM:
    return get_services(request).llm


def valid_thread_id(
    thread_id: Annotated[
        str, Path(description="thread id: " + THREAD_ID_RULE, examples=["default"])
    ],
) -> str:
    """The path's thread id, or a 422 that states the rule (ids are never silently rewritten)."""
    if not THREAD_ID_RE.fullmatch(thread_id):
        raise HTTPException(
            status_code=422,
            detail=[
                {
                    "loc": ["path", "thread_id"],
                    "msg": THREAD_ID_RULE,
                    "type": "value_error.thread_id",
                    "input": thread_id[:80],
                }
            ],
        )
    return thread_id


ThreadId = Annotated[str, Depends(valid_thread_id)]
DB = Annotated[SessionDB, Depends(get_db)]


def existing_thread(thread_id: ThreadId, db: DB) -> str:
    """A thread id that exists, or 404."""
    if not db.thread_exists(thread_id):
        raise HTTPException(status_code=404, detail=f"thread {thread_id!r} does not exist")
    return thread_id


ExistingThread = Annotated[str, Depends(existing_thread)]


class ErrorItem(BaseModel):
    """One problem with a request: where (``loc``, e.g. ["body", "every_seconds"]) and what."""

    model_config = ConfigDict(extra="allow")
    loc: list[str | int]
    msg: str
    type: str


class ErrorResponse(BaseModel):
    """Every 4xx answer (docs/architecture.md §4): ``detail`` is a sentence naming the problem, or
    a list of
    field errors (FastAPI's validation shape)."""

    detail: str | list[ErrorItem] | dict[str, Any]


#: Documented on every route (crt_api includes each router with it). A "4XX" entry also stops
#: FastAPI from documenting 422 as its list-only shape, which our string details broke
#: (found by tests/test_fuzz_api.py: 401/403/404/409/413 were undocumented, 422 mismatched).
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    "4XX": {"model": ErrorResponse, "description": "the request was refused; detail says why"}
}
