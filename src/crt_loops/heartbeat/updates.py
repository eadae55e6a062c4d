"""Config updates: a partial patch merged into a thread's stored config, and the thread
rescheduled for it, in one transaction (two updates at once cannot lose each other's fields)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from crt_loops.db import heartbeats
from crt_loops.db.session import SessionDB
from crt_loops.heartbeat.config import HeartbeatConfig, merge_config
from crt_loops.heartbeat.schedule import next_due


def due_for(
    config: HeartbeatConfig,
    thread_id: str,
    last_run: float | None,
    *,
    now: float,
    default_timezone: str | None,
) -> float | None:
    """When a thread with ``config`` is next due: None when disabled, else inside its window."""
    if not config.enabled:
        return None
    window = config.active_window(default_timezone)
    return next_due(last_run, config.every_seconds, now, thread_id, window=window)


def update_config(
    db: SessionDB,
    thread_id: str,
    patch: dict[str, Any],
    *,
    clock: Callable[[], float],
    default_timezone: str | None,
) -> HeartbeatConfig:
    """Merge ``patch`` into the stored config atomically and reschedule the thread.

    Raises pydantic.ValidationError (nothing written) for an invalid patch.
    """
    return heartbeats.update_config(
        db,
        thread_id,
        lambda stored: merge_config(stored, patch),
        lambda config, last_run: due_for(
            config, thread_id, last_run, now=clock(), default_timezone=default_timezone
        ),
    )
