"""Journal endpoints: a thread's entries, a person's comment on one, and journal settings."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Path, Query
from pydantic import BaseModel, ConfigDict, Field

from crt_loops.api.routes import responses as out
from crt_loops.api.routes.deps import DB, MAX_SQL_INT, ExistingThread, get_settings
from crt_loops.mind import journal
from crt_loops.settings import Settings

router = APIRouter(prefix="/api/threads/{thread_id}/journal", tags=["journal"])

AppSettings = Annotated[Settings, Depends(get_settings)]


class CommentIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"content": "Was it really the deadline?"}]},
    )
    content: str = Field(
        min_length=1,
        max_length=journal.MAX_COMMENT_CHARS,
        description="the person's comment on the entry",
        examples=["Interesting, but I think the real reason was the deadline."],
    )


class JournalSettingsIn(BaseModel):
    """Partial update: omitted fields keep their value."""

    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"self_reply": "on"}]}
    )
    self_reply: Literal["default", "on", "off"] | None = Field(
        None,
        description="default: the configured chance; on: chance 1 (the minimum gap still "
        "holds); off: no self-replies and no answers to comments in this thread",
    )


@router.get(
    "", summary="The thread's journal entries, newest first", response_model=out.JournalList
)
def list_journal(
    thread_id: ExistingThread,
    db: DB,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    before: Annotated[
        int | None, Query(ge=1, le=MAX_SQL_INT, description="entries with a smaller id")
    ] = None,
) -> dict[str, Any]:
    entries = journal.list_entries(db, thread_id, limit=limit, before_id=before)
    return {
        "thread_id": thread_id,
        "entries": [e.as_dict() for e in entries],
        "next_before": entries[-1].id if len(entries) == limit else None,
    }


@router.post(
    "/{entry_id}/reply",
    status_code=201,
    summary="A person's comment on a journal entry (the agent answers it on its next pass)",
    response_model=out.JournalEntry,
)
def reply_to_entry(
    thread_id: ExistingThread,
    entry_id: Annotated[int, Path(ge=1, le=MAX_SQL_INT)],
    body: CommentIn,
    db: DB,
) -> dict[str, Any]:
    if not body.content.strip():
        raise HTTPException(
            status_code=422,
            detail=[
                {
                    "loc": ["body", "content"],
                    "msg": "content must not be blank",
                    "type": "value_error",
                }
            ],
        )
    try:
        entry = journal.add_comment(db, thread_id, entry_id, body.content)
    except journal.EntryNotFound as exc:
        raise HTTPException(status_code=404, detail=str(exc)) from exc
    return entry.as_dict()


@router.get(
    "/settings",
    summary="The thread's journal settings and the policy they result in",
    response_model=out.JournalSettings,
)
def get_journal_settings(
    thread_id: ExistingThread, db: DB, settings: AppSettings
) -> dict[str, Any]:
    return journal.get_settings(
        db,
        thread_id,
        chance=settings.journal_self_reply_chance,
        min_seconds=settings.journal_self_reply_min_seconds,
    )


@router.post(
    "/settings",
    summary="Change the thread's journal settings (partial update)",
    response_model=out.JournalSettings,
)
def set_journal_settings(
    thread_id: ExistingThread, body: JournalSettingsIn, db: DB, settings: AppSettings
) -> dict[str, Any]:
    return journal.set_settings(
        db,
        thread_id,
        self_reply=body.self_reply,
        chance=settings.journal_self_reply_chance,
        min_seconds=settings.journal_self_reply_min_seconds,
    )
