"""Retention: what keeps the session DB bounded when the service runs for years.

Heartbeat runs are the one thing that grows without a person doing anything (a year of
30-minute heartbeats on 100 threads is 1.75 million runs), so they are pruned by default
(``CRT_HEARTBEAT_RETENTION_DAYS``, 90). Messages and journal entries are the person's own
history: kept unless ``CRT_MESSAGE_RETENTION_DAYS`` / ``CRT_JOURNAL_RETENTION_DAYS`` say
otherwise. A thread's latest heartbeat run is always kept, and so is every outbox action still
``pending`` (recovery must be able to finish it). Deletes go in batches, each its own short
transaction, so a large prune never blocks the loops' writes for long
(:mod:`crt_loops.db.retention`).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

from crt_loops.db import retention as retention_db
from crt_loops.db.session import SessionDB

logger = logging.getLogger(__name__)

DAY = 86_400.0


@dataclass(frozen=True)
class RetentionPolicy:
    heartbeat_days: float = 90
    journal_days: float = 0
    message_days: float = 0


def prune(db: SessionDB, policy: RetentionPolicy, *, now: float) -> dict[str, int]:
    """Delete what the policy says is too old; returns counts by kind."""
    counts = {"heartbeat_runs": 0, "journal_entries": 0, "messages": 0}
    if policy.heartbeat_days > 0:
        counts["heartbeat_runs"] = retention_db.prune_heartbeat_runs(
            db, now - policy.heartbeat_days * DAY
        )
    if policy.journal_days > 0:
        counts["journal_entries"] = retention_db.prune_journal_entries(
            db, now - policy.journal_days * DAY
        )
    if policy.message_days > 0:
        counts["messages"] = retention_db.prune_messages(db, now - policy.message_days * DAY)
    if any(counts.values()):
        logger.info(
            "retention: pruned %d heartbeat run(s), %d journal entr(ies), %d message(s)",
            counts["heartbeat_runs"],
            counts["journal_entries"],
            counts["messages"],
        )
    return counts


class RetentionJob:
    """Runs :func:`prune` at most once per ``every_seconds`` per process, one process at a time."""

    LEASE = "maintenance:retention"

    def __init__(
        self,
        db: SessionDB,
        policy: RetentionPolicy,
        *,
        clock: Callable[[], float],
        owner: str,
        every_seconds: float = 3600.0,
    ) -> None:
        self.db = db
        self.policy = policy
        self.clock = clock
        self.owner = owner
        self.every_seconds = every_seconds
        self.last_run_at: float | None = None
        self.last_counts: dict[str, int] | None = None
        self._lock = threading.Lock()

    def maybe_run(self) -> dict[str, int] | None:
        now = self.clock()
        with self._lock:
            if self.last_run_at is not None and now - self.last_run_at < self.every_seconds:
                return None
            self.last_run_at = now
        if not self.db.acquire_lease(self.LEASE, self.owner, 600):
            return None  # another process is pruning right now
        try:
            self.last_counts = prune(self.db, self.policy, now=now)
        finally:
            self.db.release_lease(self.LEASE, self.owner)
        return self.last_counts
