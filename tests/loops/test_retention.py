"""Retention keeps the DB bounded: old runs go (never the latest per thread, never one with a
pending action), and messages/journal are kept unless asked."""

from __future__ import annotations

from pathlib import Path

from support.clock import FakeClock

from crt_loops.core.enums import ActionState
from crt_loops.db import heartbeats
from crt_loops.db.heartbeats import OutboxRow
from crt_loops.db.session import SessionDB
from crt_loops.loops.retention import DAY, RetentionJob, RetentionPolicy, prune


def add_run(db: SessionDB, run_id: str, thread: str, at: float, *, pending: bool = False) -> None:
    heartbeats.start_run(
        db, run_id=run_id, thread_id=thread, trigger="schedule", dry_run=False, now=at
    )
    with db.write() as tx:
        tx.execute("UPDATE heartbeat_runs SET outcome='silent' WHERE run_id=?", (run_id,))
    if pending:
        heartbeats.add_actions(
            db,
            run_id,
            thread,
            [
                OutboxRow(
                    seq=0,
                    type="vote",
                    payload={"post_id": "p", "direction": "up"},
                    state=ActionState.PENDING,
                    idempotency_key=f"k-{run_id}",
                )
            ],
        )


def count(db: SessionDB, table: str) -> int:
    return int(db.read().execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])


def test_prune_old_runs_but_keep_latest_and_pending(db: SessionDB, clock: FakeClock) -> None:
    db.ensure_thread("quiet")
    now = clock.now
    add_run(db, "old-1", "default", now - 200 * DAY)
    add_run(db, "old-pending", "default", now - 150 * DAY, pending=True)
    add_run(db, "recent", "default", now - 1 * DAY)
    add_run(db, "quiet-latest", "quiet", now - 300 * DAY)  # the only run of its thread
    db.add_message("default", "user", "keep me")
    counts = prune(db, RetentionPolicy(heartbeat_days=90), now=now)
    assert counts == {"heartbeat_runs": 1, "journal_entries": 0, "messages": 0}
    left = {r[0] for r in db.read().execute("SELECT run_id FROM heartbeat_runs")}
    assert left == {"old-pending", "recent", "quiet-latest"}
    assert count(db, "messages") == 1


def test_messages_and_journal_only_when_asked(db: SessionDB, clock: FakeClock) -> None:
    db.add_message("default", "user", "ancient")
    clock.advance(40 * DAY)
    db.add_message("default", "user", "fresh")
    assert prune(db, RetentionPolicy(), now=clock.now)["messages"] == 0
    counts = prune(db, RetentionPolicy(message_days=30), now=clock.now)
    assert counts["messages"] == 1
    assert [m.content for m in db.list_messages("default")] == ["fresh"]


def test_job_runs_at_most_hourly_and_one_process_at_a_time(db: SessionDB, clock: FakeClock) -> None:
    job = RetentionJob(db, RetentionPolicy(), clock=clock, owner="a")
    assert job.maybe_run() is not None
    assert job.maybe_run() is None
    clock.advance(3601)
    assert db.acquire_lease(RetentionJob.LEASE, "b", 600)
    assert job.maybe_run() is None  # someone else is pruning
    clock.advance(3601)
    assert job.maybe_run() is not None


def test_a_simulated_year_stays_bounded(tmp_path: Path) -> None:
    """10 threads x a heartbeat every 30 min for a year, pruned daily at 90 days."""
    clock = FakeClock()
    db = SessionDB(tmp_path / "year.db", clock=clock)
    try:
        threads = [f"t{i}" for i in range(10)]
        for t in threads:
            db.ensure_thread(t)
        per_day = 48
        for day in range(365):
            with db.write() as tx:
                tx.executemany(
                    "INSERT INTO heartbeat_runs (run_id, thread_id, trigger, outcome, started_at, "
                    "finished_at, summary) VALUES (?, ?, 'schedule', 'silent', ?, ?, ?)",
                    [
                        (
                            f"{day}-{t}-{k}",
                            t,
                            clock.now + k * 1800,
                            clock.now + k * 1800,
                            "nothing new worth saying",
                        )
                        for t in threads
                        for k in range(per_day)
                    ],
                )
            clock.advance(DAY)
            prune(db, RetentionPolicy(heartbeat_days=90), now=clock.now)
        runs = count(db, "heartbeat_runs")
        assert runs <= 91 * per_day * len(threads)
        assert runs >= 89 * per_day * len(threads)
    finally:
        db.close()
