"""Recovery: what a crash left behind is settled, at startup and then periodically.

Runs left ``running`` by a dead process become failed/interrupted (due again shortly), outbox
actions left ``pending`` are re-sent with their original idempotency key (the Ledger
deduplicates on it, so each lands once), and the dead holders' leases are released last. A run
or action whose thread a live process still holds (another worker, another host, or a run in
flight in this very process) is left alone.

With several hosts on one database, a host that dies mid-run leaves its lease to expire; any
other host's heartbeat loop, recovering periodically, then takes the thread's lease over
(one conditional upsert: one host wins) and settles the run and its pending actions while
holding it, so two hosts never re-send the same action at once (docs/storage.md).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from crt_loops.core.enums import RunOutcome, RunReason
from crt_loops.core.identity import owner_is_dead
from crt_loops.db import heartbeat_claims, heartbeats
from crt_loops.db.session import SessionDB
from crt_loops.heartbeat import outbox
from crt_loops.heartbeat.schedule import BACKOFF_STEPS
from crt_loops.ledger.client import LedgerClient

logger = logging.getLogger(__name__)

PREFIX = "[HEARTBEAT_LOOP]"
#: How long a recovering process holds a thread while it settles a run or re-sends an action.
SETTLE_LEASE_SECONDS = 60.0


@dataclass(frozen=True)
class RecoveryReport:
    """What recovery did: runs closed as interrupted, actions re-sent, re-sends that failed."""

    interrupted: int = 0
    resent: int = 0
    failed: int = 0

    def as_dict(self) -> dict[str, int]:
        return {"interrupted": self.interrupted, "resent": self.resent, "failed": self.failed}


def recover(
    db: SessionDB, ledger: LedgerClient | None, *, owner: str, clock: Callable[[], float]
) -> RecoveryReport:
    """Close interrupted runs, re-send pending actions, release dead leases (in that order)."""

    def take_over(thread_id: str) -> bool:
        """Hold the thread's lease to settle what its dead or expired holder left."""
        holder = heartbeat_claims.lease_owner(db, thread_id)
        if holder is not None and not owner_is_dead(holder):
            return False  # a live process (this one included) still runs it
        return heartbeat_claims.take_over_thread_lease(
            db, thread_id, owner, ttl=SETTLE_LEASE_SECONDS, from_owner=holder
        )

    interrupted = 0
    for run in heartbeats.running_runs(db):
        if not take_over(run.thread_id):
            continue
        try:
            _close_interrupted(db, run, clock)
        finally:
            heartbeat_claims.release_thread_lease(db, run.thread_id, owner)
        interrupted += 1
    resent = failed = 0
    for action in heartbeats.pending_actions(db):
        if not take_over(action.thread_id):
            continue
        try:
            sent = outbox.resend(db, ledger, action)
        finally:
            heartbeat_claims.release_thread_lease(db, action.thread_id, owner)
        if sent:
            resent += 1
        else:
            failed += 1
    # Last, so no claim can start before the dead holder's run and actions are settled.
    heartbeat_claims.release_dead_leases(db, due_by=clock() + BACKOFF_STEPS[0])
    if interrupted or resent or failed:
        logger.info(
            "%s recovery: %d interrupted run(s) closed, %d pending action(s) re-sent, "
            "%d failed again",
            PREFIX,
            interrupted,
            resent,
            failed,
        )
    return RecoveryReport(interrupted, resent, failed)


def _close_interrupted(
    db: SessionDB, run: heartbeats.RunRecord, clock: Callable[[], float]
) -> None:
    now = clock()
    run.outcome, run.reason = RunOutcome.FAILED, RunReason.INTERRUPTED
    run.error = "the service stopped while this heartbeat was running"
    run.finished_at = now
    run.duration_ms = (now - run.started_at) * 1000
    # finish_run schedules only enabled threads: due again shortly, not an interval later.
    heartbeats.finish_run(
        db,
        run,
        next_due=now + BACKOFF_STEPS[0],
        failures=None,
        context_hash=None,
        update_last=True,
    )
