"""Dependencies shared by the routers: the app's services and thread-id checking."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import Depends, HTTPException, Path, Request
from pydantic import AfterValidator, BaseModel, ConfigDict

from crt_loops.db.session import THREAD_ID_RE, SessionDB
from crt_loops.edge.text import is_blank

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


def _visible(value: str) -> str:
    # "\u3000" (ideographic space), "\u2800" (braille blank) or zero-width characters passed a
    # plain min_length check and were stored as text that shows nothing.
    if is_blank(value):
        raise ValueError("must not be empty or only invisible characters (spaces, zero-width)")
    return value


def _blank_is_none(value: str | None) -> str | None:
    return None if value is None or is_blank(value) else value


#: Required text a person must be able to see: blank or invisible-only text is a 422.
VisibleText = Annotated[str, AfterValidator(_visible)]
#: Optional text where blank or invisible-only means "not given".
OptionalText = Annotated[str | None, AfterValidator(_blank_is_none)]


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
        raise invalid_thread_ids("path", [thread_id])
    return thread_id


def invalid_thread_ids(where: str, thread_ids: Sequence[str]) -> HTTPException:
    """The 422 for thread ids that break the rule, one error per id (the first ten)."""
    return HTTPException(
        status_code=422,
        detail=[
            {
                "loc": [where, "thread_id"],
                "msg": THREAD_ID_RULE,
                "type": "value_error.thread_id",
                "input": thread_id[:80],
            }
            for thread_id in thread_ids[:10]
        ],
    )


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
