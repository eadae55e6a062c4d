"""Threads, messages and chat."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Response
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from crt_loops.api.routes import responses as out
from crt_loops.api.routes.deps import (
    DB,
    MAX_SQL_INT,
    ExistingThread,
    OptionalText,
    ThreadId,
    VisibleText,
    get_llm,
    get_settings,
)
from crt_loops.core.clock import iso
from crt_loops.db.session import DEFAULT_THREAD, THREAD_ID_RE, MessageRow, ThreadRow
from crt_loops.llm.client import LLM
from crt_loops.mind.chat import (
    ChatEvent,
    ChatModelNotFound,
    ChatResult,
    ChatText,
    ChatUnavailable,
    chat,
    chat_events,
)
from crt_loops.settings import Settings

router = APIRouter(prefix="/api/threads", tags=["threads"])

MAX_MESSAGE_CHARS = 32_000
NDJSON = "application/x-ndjson"


class ThreadCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"thread_id": "work-notes", "title": "Work notes"}]},
    )
    thread_id: str = Field(pattern=THREAD_ID_RE.pattern, examples=["work-notes"])
    title: OptionalText = Field(None, max_length=200)


class ThreadOut(BaseModel):
    model_config = out.examples(out.THREAD_EXAMPLE)
    thread_id: str
    title: str
    created_at: str | None
    updated_at: str | None
    created: bool | None = None


class MessageIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"role": "user", "content": "I started a new job today"}]},
    )
    role: Literal["user", "assistant"] = "user"
    content: VisibleText = Field(min_length=1, max_length=MAX_MESSAGE_CHARS)


class MessageOut(BaseModel):
    model_config = out.examples(out.USER_MESSAGE_EXAMPLE)
    id: int
    thread_id: str
    role: str
    content: str
    created_at: str | None
    importance: int | None
    importance_reason: str | None
    scored_by: str | None


class ThreadList(BaseModel):
    model_config = out.examples({"threads": [out.THREAD_EXAMPLE], "total": 1})
    threads: list[ThreadOut]
    total: int


class MessageList(BaseModel):
    model_config = out.examples(
        {"thread_id": "default", "messages": [out.USER_MESSAGE_EXAMPLE, out.REPLY_EXAMPLE]}
    )
    thread_id: str
    messages: list[MessageOut]


class ChatIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"message": "How was my week?"}]}
    )
    message: VisibleText = Field(
        min_length=1, max_length=MAX_MESSAGE_CHARS, examples=["How was my week?"]
    )
    model: str | None = Field(None, description="override CRT_OLLAMA_MODEL for this message")
    stream: bool = Field(
        False,
        description="answer as NDJSON lines while the model writes: "
        '`{"event": "text", "text": ...}` for each piece, then one `{"event": "done", ...}` '
        'holding this route\'s usual answer, or `{"event": "error", "status": ..., "detail": ...}`',
    )


class ChatOut(BaseModel):
    model_config = out.examples(out.CHAT_EXAMPLE)
    thread_id: str
    reply: str
    user_message: MessageOut
    assistant_message: MessageOut
    model: str
    duration_ms: float
    tokens: dict[str, int | float | None] | None = Field(
        None, description="the call's token counts, as the LLM server reported them"
    )
    truncated: bool = Field(False, description="the reply was cut at the length limit")


def thread_out(row: ThreadRow, created: bool | None = None) -> ThreadOut:
    return ThreadOut(
        thread_id=row.thread_id,
        title=row.title,
        created_at=iso(row.created_at),
        updated_at=iso(row.updated_at),
        created=created,
    )


def message_out(m: MessageRow) -> MessageOut:
    return MessageOut(
        id=m.id,
        thread_id=m.thread_id,
        role=m.role,
        content=m.content,
        created_at=iso(m.created_at),
        importance=m.importance,
        importance_reason=m.importance_reason,
        scored_by=m.scored_by,
    )


@router.post(
    "",
    summary="Create a thread (200 if it already exists)",
    status_code=201,
    responses={200: {"model": ThreadOut, "description": "the thread already existed"}},
)
def create_thread(body: ThreadCreate, db: DB, response: Response) -> ThreadOut:
    created = db.ensure_thread(body.thread_id, body.title)
    if not created:
        response.status_code = 200
    return thread_out(db.require_thread(body.thread_id), created)


@router.get("", summary="List threads, most recently active first", response_model=ThreadList)
def list_threads(
    db: DB,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=MAX_SQL_INT)] = 0,
) -> dict[str, Any]:
    rows = db.list_threads(limit=limit, offset=offset)
    return {"threads": [thread_out(r) for r in rows], "total": db.count_threads()}


@router.get("/{thread_id}", summary="One thread")
def get_thread(thread_id: ExistingThread, db: DB) -> ThreadOut:
    return thread_out(db.require_thread(thread_id))


@router.delete("/{thread_id}", summary="Delete a thread and everything in it", status_code=204)
def delete_thread(thread_id: ThreadId, db: DB) -> Response:
    if thread_id == DEFAULT_THREAD:
        raise HTTPException(status_code=409, detail="the default thread cannot be deleted")
    if not db.delete_thread(thread_id):
        raise HTTPException(status_code=404, detail=f"thread {thread_id!r} does not exist")
    return Response(status_code=204)


@router.post(
    "/{thread_id}/messages",
    summary="Append a message (creates the thread if needed)",
    status_code=201,
)
def add_message(thread_id: ThreadId, body: MessageIn, db: DB) -> MessageOut:
    db.ensure_thread(thread_id)
    return message_out(db.add_message(thread_id, body.role, body.content))


@router.get("/{thread_id}/messages", summary="Messages, oldest first", response_model=MessageList)
def list_messages(
    thread_id: ExistingThread,
    db: DB,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    after_id: Annotated[
        int, Query(ge=0, le=MAX_SQL_INT, description="only messages with a larger id")
    ] = 0,
    newest: Annotated[
        bool, Query(description="the last `limit` messages (still oldest first)")
    ] = False,
) -> dict[str, Any]:
    rows = db.list_messages(thread_id, after_id=after_id, limit=limit, newest=newest)
    return {"thread_id": thread_id, "messages": [message_out(m) for m in rows]}


@router.post(
    "/{thread_id}/chat",
    summary="Chat with the agent; 503 (message kept) when the LLM is unreachable",
    response_model=ChatOut,
    responses={
        200: {
            "content": {NDJSON: {}},
            "description": "the reply; with `stream: true`, NDJSON events as it is written",
        },
        503: {"description": "LLM unreachable; the person's message was stored"},
    },
)
def post_chat(
    thread_id: ThreadId,
    body: ChatIn,
    db: DB,
    llm: Annotated[LLM, Depends(get_llm)],
    settings: Annotated[Settings, Depends(get_settings)],
) -> ChatOut | StreamingResponse:
    db.ensure_thread(thread_id)
    if body.stream and llm.available():
        events = chat_events(
            db, llm, thread_id, body.message, window=settings.loop_window, model=body.model
        )
        return StreamingResponse(_ndjson(thread_id, body, events), media_type=NDJSON)
    # Unstreamed, or the LLM is known to be down: then chat() stores the message and the
    # answer is a plain 503 that says so, streamed or not.
    try:
        result = chat(
            db, llm, thread_id, body.message, window=settings.loop_window, model=body.model
        )
    except ChatUnavailable as exc:
        raise HTTPException(status_code=_failure_status(exc, body), detail=str(exc)) from exc
    return _chat_out(thread_id, result)


def _failure_status(exc: Exception, body: ChatIn) -> int:
    if isinstance(exc, ChatModelNotFound):
        # The client's own model choice is a request error; CRT_OLLAMA_MODEL missing is ours.
        return 422 if body.model else 503
    return 503 if isinstance(exc, ChatUnavailable) else 500


def _chat_out(thread_id: str, result: ChatResult) -> ChatOut:
    return ChatOut(
        thread_id=thread_id,
        reply=result.reply.content,
        user_message=message_out(result.user_message),
        assistant_message=message_out(result.reply),
        model=result.model,
        duration_ms=round(result.duration_ms, 1),
        tokens=result.usage.as_dict(),
        truncated=result.truncated,
    )


def _ndjson(thread_id: str, body: ChatIn, events: Iterator[ChatEvent]) -> Iterator[bytes]:
    for event in events:
        if isinstance(event, ChatText):
            line: dict[str, Any] = {"event": "text", "text": event.text}
        elif isinstance(event, ChatResult):
            line = {"event": "done", **_chat_out(thread_id, event).model_dump(mode="json")}
        else:
            error = event.error
            detail = str(error) if isinstance(error, ChatUnavailable) else "internal error"
            line = {"event": "error", "status": _failure_status(error, body), "detail": detail}
        yield json.dumps(line, ensure_ascii=False).encode() + b"\n"
