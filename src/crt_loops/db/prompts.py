"""The prompts heartbeat runs sent: what the agent saw, viewable on demand.

Each run that called the LLM keeps its prompt messages with every secret masked, capped at
``MAX_PROMPT_CHARS`` in all, and only for the latest ``KEEP_PER_THREAD`` runs of its thread (older
ones are deleted in the same write), so the table stays small whatever the number of runs.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from crt_loops.core.clock import iso
from crt_loops.db.session import SessionDB

KEEP_PER_THREAD = 20
MAX_PROMPT_CHARS = 64_000
_CUT = "\n[... cut: the stored prompt is capped at {cap} characters]"


@dataclass(frozen=True)
class StoredPrompt:
    run_id: str
    thread_id: str
    created_at: float
    chars: int  # the prompt's full size, before the cap
    truncated: bool
    messages: list[dict[str, str]]

    def as_api(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "thread_id": self.thread_id,
            "created_at": iso(self.created_at),
            "chars": self.chars,
            "truncated": self.truncated,
            "messages": self.messages,
        }


def capped(
    messages: Sequence[tuple[str, str]], cap: int = MAX_PROMPT_CHARS
) -> tuple[list[dict[str, str]], bool]:
    """The messages as ``{role, content}``, cut so their contents total at most ``cap``."""
    out: list[dict[str, str]] = []
    left = cap
    truncated = False
    for role, full in messages:
        content = full
        if len(content) > left:
            content = content[: max(0, left)] + _CUT.format(cap=cap)
            truncated = True
        out.append({"role": role, "content": content})
        left -= len(content)
        if truncated:
            break
    return out, truncated


def save_prompt(
    db: SessionDB,
    *,
    run_id: str,
    thread_id: str,
    messages: Sequence[tuple[str, str]],
    now: float,
    keep: int = KEEP_PER_THREAD,
) -> None:
    """Store a run's (already masked) prompt and drop the thread's older ones beyond ``keep``."""
    stored, truncated = capped(messages)
    with db.write() as tx:
        tx.execute(
            "INSERT INTO heartbeat_prompts "
            "(run_id, thread_id, created_at, chars, truncated, messages_json) "
            "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(run_id) DO UPDATE SET "
            "thread_id = excluded.thread_id, created_at = excluded.created_at, "
            "chars = excluded.chars, truncated = excluded.truncated, "
            "messages_json = excluded.messages_json",
            (
                run_id,
                thread_id,
                now,
                sum(len(c) for _, c in messages),
                int(truncated),
                json.dumps(stored, ensure_ascii=False),
            ),
        )
        tx.execute(
            "DELETE FROM heartbeat_prompts WHERE thread_id = ? AND run_id NOT IN ("
            "  SELECT run_id FROM heartbeat_prompts WHERE thread_id = ? "
            "  ORDER BY created_at DESC, rowid DESC LIMIT ?)",
            (thread_id, thread_id, keep),
        )


def get_prompt(db: SessionDB, run_id: str) -> StoredPrompt | None:
    row = (
        db.read()
        .execute(
            "SELECT run_id, thread_id, created_at, chars, truncated, messages_json "
            "FROM heartbeat_prompts WHERE run_id = ?",
            (run_id,),
        )
        .fetchone()
    )
    if row is None:
        return None
    return StoredPrompt(
        run_id=str(row[0]),
        thread_id=str(row[1]),
        created_at=float(row[2]),
        chars=int(row[3]),
        truncated=bool(row[4]),
        messages=json.loads(row[5]),
    )
