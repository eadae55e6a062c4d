"""Chat: a person's message in, the agent's reply out, shaped by the thread's profile.

The person's message is stored before the LLM is asked, so nothing they wrote is lost when the
LLM is down: the caller gets :class:`ChatUnavailable` (a 503 at the API) and the message stays.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

from crt_loops.db.session import MessageRow, SessionDB
from crt_loops.llm.client import (
    LLM,
    ChatMessage,
    LLMError,
    LLMResponseError,
    LLMTimeout,
    LLMTruncated,
    LLMUnavailable,
    LLMUsage,
    TextSink,
)
from crt_loops.mind.personality import get_profile, style_instructions
from crt_loops.mind.reflection import latest_reflection

logger = logging.getLogger(__name__)

BASE_PROMPT = (
    "You are the user's personal AI agent, talking with them in a private chat thread. "
    "Be honest and helpful; say so when you do not know."
)
MAX_REFLECTION_CHARS = 1500
# A chat reply's token limit: a few paragraphs. Without one a server cuts at its own default
# and the cut reply came back to the person as a 503; a reply cut here is kept, marked cut.
CHAT_MAX_TOKENS = 512
CUT_MARK = " [… cut at the reply length limit]"


class ChatUnavailable(Exception):
    """Raised when the LLM cannot answer a chat message (down, timed out, or erroring).

    The person's message has already been stored when this is raised.
    """

    def __init__(self, message: str, user_message: MessageRow) -> None:
        super().__init__(message)
        self.user_message = user_message


class ChatModelNotFound(ChatUnavailable):
    """Raised when Ollama does not have the model asked for (its 404); the message is stored."""


@dataclass(frozen=True)
class ChatResult:
    user_message: MessageRow
    reply: MessageRow
    model: str
    duration_ms: float
    system_prompt_chars: int
    usage: LLMUsage = field(default_factory=LLMUsage)
    truncated: bool = False


def system_prompt(db: SessionDB, thread_id: str) -> str:
    """The base prompt, the thread's style profile, and its latest reflection."""
    parts = [BASE_PROMPT]
    profile = get_profile(db, thread_id)
    if profile:
        style = style_instructions(profile)
        if style:
            parts.append("How this person likes replies: " + style)
    reflection = latest_reflection(db, thread_id)
    if reflection is not None:
        parts.append(
            "Your latest private reflection on this conversation (context, not a script):\n"
            + reflection.body[:MAX_REFLECTION_CHARS]
        )
    return "\n\n".join(parts)


def chat(
    db: SessionDB,
    llm: LLM,
    thread_id: str,
    text: str,
    *,
    window: int,
    model: str | None = None,
    on_text: TextSink | None = None,
) -> ChatResult:
    """Store ``text``, ask the LLM with the recent window, store and return the reply.

    ``on_text`` receives the reply's text piece by piece while the model writes it (see
    :func:`chat_events`); the stored reply is what the returned result holds.
    """
    user_message = db.add_message(thread_id, "user", text)
    prompt = system_prompt(db, thread_id)
    history = db.list_messages(thread_id, limit=window, newest=True)
    messages = [ChatMessage("system", prompt)] + [ChatMessage(m.role, m.content) for m in history]
    if not llm.available():
        raise ChatUnavailable(
            f"the LLM at {llm.host} is not reachable; your message was saved "
            f"(id {user_message.id}). Start Ollama (`ollama serve`) and "
            f"`ollama pull {model or llm.model}`, then try again.",
            user_message,
        )
    started = time.perf_counter()
    try:
        reply = llm.chat(
            messages, model=model, temperature=0.7, max_tokens=CHAT_MAX_TOKENS, on_text=on_text
        )
    except LLMTruncated as exc:
        # The person asked and the model answered at length: what came is theirs to read.
        logger.info("chat in thread %s: reply cut at %d tokens", thread_id, CHAT_MAX_TOKENS)
        stored = db.add_message(thread_id, "assistant", exc.partial.rstrip() + CUT_MARK)
        return ChatResult(
            user_message=user_message,
            reply=stored,
            model=model or llm.model,
            duration_ms=(time.perf_counter() - started) * 1000,
            system_prompt_chars=len(prompt),
            usage=exc.usage or LLMUsage(),
            truncated=True,
        )
    except (LLMUnavailable, LLMTimeout) as exc:
        raise ChatUnavailable(
            f"the LLM did not answer: {exc}; your message was saved (id {user_message.id})",
            user_message,
        ) from exc
    except LLMResponseError as exc:
        if exc.status_code != 404:
            raise _failed(exc, thread_id, user_message) from exc
        raise ChatModelNotFound(
            f"{exc}; your message was saved (id {user_message.id})", user_message
        ) from exc
    except LLMError as exc:
        raise _failed(exc, thread_id, user_message) from exc
    content = reply.content.strip() or "(the model returned an empty reply)"
    stored = db.add_message(thread_id, "assistant", content)
    return ChatResult(
        user_message=user_message,
        reply=stored,
        model=reply.model,
        duration_ms=reply.duration_ms,
        system_prompt_chars=len(prompt),
        usage=reply.usage,
    )


def _failed(exc: LLMError, thread_id: str, user_message: MessageRow) -> ChatUnavailable:
    logger.warning("chat in thread %s failed: %s", thread_id, exc)
    return ChatUnavailable(
        f"the LLM failed to answer: {exc}; your message was saved (id {user_message.id})",
        user_message,
    )


@dataclass(frozen=True)
class ChatText:
    """A piece of the reply's text, as the model wrote it."""

    text: str


@dataclass(frozen=True)
class ChatFailed:
    """The chat ended without a reply; ``error`` says why (the person's message is kept)."""

    error: Exception


ChatEvent = ChatText | ChatResult | ChatFailed


def chat_events(
    db: SessionDB,
    llm: LLM,
    thread_id: str,
    text: str,
    *,
    window: int,
    model: str | None = None,
) -> Iterator[ChatEvent]:
    """:func:`chat` as a stream: pieces of text while the model writes, then the result.

    The call runs on its own thread, so a reader that stops early (a client that hung up)
    does not stop it: the reply is still stored. The last event is always a ``ChatResult`` or
    a ``ChatFailed``.
    """
    events: queue.SimpleQueue[ChatEvent] = queue.SimpleQueue()

    def run() -> None:
        try:
            result = chat(
                db,
                llm,
                thread_id,
                text,
                window=window,
                model=model,
                on_text=lambda piece: events.put(ChatText(piece)),
            )
        except Exception as exc:  # every failure ends the stream as an event the reader sees
            if not isinstance(exc, ChatUnavailable):
                logger.exception("chat in thread %s failed", thread_id)
            events.put(ChatFailed(exc))
        else:
            events.put(result)

    threading.Thread(target=run, name=f"chat-{thread_id}", daemon=True).start()
    while True:
        event = events.get()
        yield event
        if not isinstance(event, ChatText):
            return
