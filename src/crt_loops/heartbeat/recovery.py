"""Startup recovery: what a crash left behind is settled before the first claim.

Runs left ``running`` by a dead process become failed/interrupted (due again shortly), outbox
actions left ``pending`` are re-sent with their original idempotency key (the Ledger
deduplicates on it, so each lands once), and the dead holders' leases are released last. A run
or action whose thread a live process (another worker) still holds is left alone.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from crt_loops.core.enums import RunOutcome, RunReason
from crt_loops.core.identity import owner_is_dead
from crt_loops.db import heartbeats
from crt_loops.db.session import SessionDB
from crt_loops.heartbeat import outbox
from crt_loops.heartbeat.schedule import BACKOFF_STEPS
from crt_loops.ledger.client import LedgerClient

logger = logging.getLogger(__name__)

PREFIX = "[HEARTBEAT_LOOP]"


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

    def held_by_another_live_process(thread_id: str) -> bool:
        holder = heartbeats.lease_owner(db, thread_id)
        return holder is not None and holder != owner and not owner_is_dead(holder)

    interrupted = 0
    for run in heartbeats.running_runs(db):
        if held_by_another_live_process(run.thread_id):
            continue  # another worker is still running it
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
        interrupted += 1
    resent = failed = 0
    for action in heartbeats.pending_actions(db):
        if held_by_another_live_process(action.thread_id):
            continue
        if outbox.resend(db, ledger, action):
            resent += 1
        else:
            failed += 1
    # Last, so no claim can start before the dead holder's run and actions are settled.
    heartbeats.release_dead_leases(db, due_by=clock() + BACKOFF_STEPS[0])
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
