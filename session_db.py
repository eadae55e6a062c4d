"""The session DB (``SessionDB``); the code lives in ``crt_loops.db.session``."""

from __future__ import annotations

from crt_loops.db.session import (
    DEFAULT_THREAD,
    MIGRATIONS,
    THREAD_ID_RE,
    InvalidThreadId,
    MessageRow,
    SessionDB,
    ThreadNotFound,
    ThreadRow,
    check_thread_id,
    dumps,
)

__all__ = [
    "DEFAULT_THREAD",
    "MIGRATIONS",
    "THREAD_ID_RE",
    "InvalidThreadId",
    "MessageRow",
    "SessionDB",
    "ThreadNotFound",
    "ThreadRow",
    "check_thread_id",
    "dumps",
]
