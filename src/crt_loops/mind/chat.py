"""Chat: a person's message in, the agent's reply out, shaped by the thread's profile.

The person's message is stored before the LLM is asked, so nothing they wrote is lost when the
LLM is down: the caller gets :class:`ChatUnavailable` (a 503 at the API) and the message stays.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from crt_loops.db.session import MessageRow, SessionDB
from crt_loops.llm.client import (
    LLM,
    ChatMessage,
    LLMError,
    LLMResponseError,
    LLMTimeout,
    LLMUnavailable,
)
from crt_loops.mind.personality import get_profile, style_instructions
from crt_loops.mind.reflection import latest_reflection

logger = logging.getLogger(__name__)

BASE_PROMPT = (
    "You are the user's personal AI agent, talking with them in a private chat thread. "
    "Be honest and helpful; say so when you do not know."
)
MAX_REFLECTION_CHARS = 1500


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
    db: SessionDB, llm: LLM, thread_id: str, text: str, *, window: int, model: str | None = None
) -> ChatResult:
    """Store ``text``, ask the LLM with the recent window, store and return the reply."""
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
    try:
        reply = llm.chat(messages, model=model, temperature=0.7)
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
    )


def _failed(exc: LLMError, thread_id: str, user_message: MessageRow) -> ChatUnavailable:
    logger.warning("chat in thread %s failed: %s", thread_id, exc)
    return ChatUnavailable(
        f"the LLM failed to answer: {exc}; your message was saved (id {user_message.id})",
        user_message,
    )
