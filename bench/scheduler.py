"""Scheduler scale: 100,000 threads with a heartbeat config; what one wake of the loop costs.

A wake of the heartbeat loop is ``heartbeats.claim_due`` (lease up to ``limit`` due threads in
one ``BEGIN IMMEDIATE`` transaction) followed by ``heartbeats.earliest_due`` (how long to
sleep). Both are timed over a simulated half hour of wakes against a DB of 100,000 threads (90%
enabled, due times spread over the next 30 minutes, so each wake finds a few due), with the
runs' effect (next due moved an interval on, lease released) applied between wakes but not
timed. A wake with nothing due is timed too. ``EXPLAIN QUERY PLAN`` of both queries must name
the partial index ``ix_threads_hb_due`` and no full scan of ``thread_sessions``.
"""

from __future__ import annotations

import time
from typing import Any

from bench.common import (
    BenchContext,
    BenchResult,
    distribution,
    make_settings,
    seed_threads,
    thread_ids,
)

THREADS = 100_000
WAKES = 300
LIMIT = 4
TARGET_MS = 5.0

EARLIEST_SQL = (
    "SELECT thread_id, heartbeat_next_due FROM thread_sessions "
    "WHERE heartbeat_next_due IS NOT NULL ORDER BY heartbeat_next_due LIMIT 1"
)


def plan(conn: Any, sql: str, args: tuple[Any, ...] | dict[str, Any]) -> list[str]:
    return [str(row[-1]) for row in conn.execute("EXPLAIN QUERY PLAN " + sql, args)]


def uses_index(lines: list[str]) -> bool:
    text = " ".join(lines)
    return "ix_threads_hb_due" in text and "SCAN thread_sessions" not in text.replace(
        "SCAN thread_sessions USING", "INDEXED"
    )


def run(ctx: BenchContext) -> BenchResult:
    from crt_loops.db import heartbeats
    from crt_loops.db.session import SessionDB
    from crt_loops.heartbeat.config import HeartbeatConfig

    result = BenchResult("scheduler", "Scheduler scale: 100,000 threads with a heartbeat config")
    tmp = ctx.scratch("scheduler")
    n = 20_000 if ctx.quick else THREADS
    settings = make_settings(tmp)
    db = SessionDB(settings.session_db_path)
    owner = "bench:1:scheduler"
    try:
        now = time.time()
        every = 1800
        config = HeartbeatConfig(enabled=True, every_seconds=every)
        ids = thread_ids(n)
        t0 = time.perf_counter()
        # 90% enabled (due over the next half hour); 10% configured but disabled (NULL due).
        seed_threads(
            db,
            ids,
            now=now,
            heartbeat=config,
            next_due=lambda i, t: None if i % 10 == 9 else now + (i * 7919 % every),
        )
        with db.write() as tx:
            tx.execute("ANALYZE")
        seed_s = time.perf_counter() - t0
        conn = db.read()
        claim_plan = plan(
            conn,
            heartbeats.CLAIM_CANDIDATES_SQL,
            {"now": now, "prefix": heartbeats.LEASE_PREFIX, "window": LIMIT * 4},
        )
        earliest_plan = plan(conn, EARLIEST_SQL, ())
        count_plan = plan(
            conn, "SELECT COUNT(*) FROM thread_sessions WHERE heartbeat_next_due IS NOT NULL", ()
        )

        # A wake with nothing due (the loop woke early, or after a config change).
        idle: list[float] = []
        for _ in range(50):
            t = time.perf_counter()
            claimed, _busy = heartbeats.claim_due(
                db, now=now - 10, owner=owner, ttl=300, limit=LIMIT
            )
            heartbeats.earliest_due(db)
            idle.append((time.perf_counter() - t) * 1000)
            assert not claimed

        # Half an hour of wakes: each claims what is due (up to LIMIT), the "runs" finish.
        wakes: list[float] = []
        claimed_total = 0
        step = every / WAKES
        for k in range(WAKES):
            at = now + k * step
            t = time.perf_counter()
            claimed, _busy = heartbeats.claim_due(db, now=at, owner=owner, ttl=300, limit=LIMIT)
            heartbeats.earliest_due(db)
            wakes.append((time.perf_counter() - t) * 1000)
            claimed_total += len(claimed)
            with db.write() as tx:  # the runs' records: next due, lease released (not timed)
                for tid in claimed:
                    tx.execute(
                        "UPDATE thread_sessions SET heartbeat_next_due = heartbeat_next_due + ? "
                        "WHERE thread_id = ?",
                        (every, tid),
                    )
                    tx.execute("DELETE FROM leases WHERE name = ?", (heartbeats.lease_name(tid),))
        t = time.perf_counter()
        scheduled = heartbeats.count_scheduled(db)
        count_ms = (time.perf_counter() - t) * 1000
    finally:
        db.close()
    dist = distribution(wakes, 3)
    result.add(
        "wake_ms_p50",
        dist["p50"],
        "ms",
        "<=",
        TARGET_MS,
        note=f"claim_due + earliest_due, {n:,} threads",
    )
    result.add("wake_ms_p99", dist["p99"], "ms", "<=", TARGET_MS)
    result.add("wake_ms_max", dist["max"], "ms")
    result.add(
        "idle_wake_ms_p50", distribution(idle, 3)["p50"], "ms", "<=", TARGET_MS, note="nothing due"
    )
    result.add(
        "claim_uses_index", uses_index(claim_plan), "", "==", True, note=" | ".join(claim_plan)
    )
    result.add(
        "earliest_uses_index",
        uses_index(earliest_plan),
        "",
        "==",
        True,
        note=" | ".join(earliest_plan),
    )
    result.add(
        "status_count_ms",
        round(count_ms, 3),
        "ms",
        note="GET /api/heartbeat/status's threads_enabled (not per wake)",
    )
    result.details = {
        "threads": n,
        "scheduled": scheduled,
        "seed_seconds": round(seed_s, 2),
        "wakes": WAKES,
        "claimed_total": claimed_total,
        "wake_ms": dist,
        "idle_wake_ms": distribution(idle, 3),
        "plans": {
            "claim_due": claim_plan,
            "earliest_due": earliest_plan,
            "count_scheduled": count_plan,
        },
    }
    return result
