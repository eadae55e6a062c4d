"""Threads, messages and chat."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Response
from pydantic import BaseModel, ConfigDict, Field

from crt_loops.api.routes import responses as out
from crt_loops.api.routes.deps import (
    DB,
    MAX_SQL_INT,
    ExistingThread,
    ThreadId,
    get_llm,
    get_settings,
)
from crt_loops.core.clock import iso
from crt_loops.db.session import DEFAULT_THREAD, THREAD_ID_RE, MessageRow, ThreadRow
from crt_loops.llm.client import LLM
from crt_loops.mind.chat import ChatModelNotFound, ChatUnavailable, chat
from crt_loops.settings import Settings

router = APIRouter(prefix="/api/threads", tags=["threads"])

MAX_MESSAGE_CHARS = 32_000


class ThreadCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"thread_id": "work-notes", "title": "Work notes"}]},
    )
    thread_id: str = Field(pattern=THREAD_ID_RE.pattern, examples=["work-notes"])
    title: str | None = Field(None, max_length=200)


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
    content: str = Field(min_length=1, max_length=MAX_MESSAGE_CHARS)


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
    message: str = Field(min_length=1, max_length=MAX_MESSAGE_CHARS, examples=["How was my week?"])
    model: str | None = Field(None, description="override CRT_OLLAMA_MODEL for this message")


class ChatOut(BaseModel):
    model_config = out.examples(out.CHAT_EXAMPLE)
    thread_id: str
    reply: str
    user_message: MessageOut
    assistant_message: MessageOut
    model: str
    duration_ms: float


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
) -> dict[str, Any]:
    rows = db.list_messages(thread_id, after_id=after_id, limit=limit)
    return {"thread_id": thread_id, "messages": [message_out(m) for m in rows]}


@router.post(
    "/{thread_id}/chat",
    summary="Chat with the agent; 503 (message kept) when the LLM is unreachable",
    responses={503: {"description": "LLM unreachable; the person's message was stored"}},
)
def post_chat(
    thread_id: ThreadId,
    body: ChatIn,
    db: DB,
    llm: Annotated[LLM, Depends(get_llm)],
    settings: Annotated[Settings, Depends(get_settings)],
) -> ChatOut:
    db.ensure_thread(thread_id)
    try:
        result = chat(
            db, llm, thread_id, body.message, window=settings.loop_window, model=body.model
        )
    except ChatModelNotFound as exc:
        # The client's own model choice is a request error; CRT_OLLAMA_MODEL missing is ours.
        status = 422 if body.model else 503
        raise HTTPException(status_code=status, detail=str(exc)) from exc
    except ChatUnavailable as exc:
        raise HTTPException(status_code=503, detail=str(exc)) from exc
    return ChatOut(
        thread_id=thread_id,
        reply=result.reply.content,
        user_message=message_out(result.user_message),
        assistant_message=message_out(result.reply),
        model=result.model,
        duration_ms=round(result.duration_ms, 1),
    )
