"""Concurrency: 100 due threads, a fake Ollama taking 0.5 s per call, max concurrency 4.

The real ``HeartbeatLoop`` from ``continuous_loops.build_loops`` (the other three loops built
but not started), started as the service starts it, ticking on its own thread; the runner is
built by the same factory ``crt_api`` uses, against the embedded Ledger on loopback. Every
thread is due when the loop starts. Elapsed time runs from ``loop.start()`` until the last of
the 100 runs is recorded; ideal = 100 x 0.5 / 4 = 12.5 s. ``fake.max_in_flight`` is the most
``/api/chat`` requests the fake ever had open at once.
"""

from __future__ import annotations

import random
import time
from typing import Any

from bench.common import (
    BenchContext,
    BenchResult,
    distribution,
    make_settings,
    seed_messages,
    seed_threads,
    service_logging,
    thread_ids,
    wait_until,
    write_heartbeat_md,
)

THREADS = 100
DELAY_S = 0.5
CONCURRENCY = 4
TARGET_RATIO = 1.15


def run(ctx: BenchContext) -> BenchResult:
    from support.fake_ollama import FakeOllama, Reply
    from support.heartbeat_scripts import install, poster

    from crt_loops.db.session import SessionDB
    from crt_loops.heartbeat.config import HeartbeatConfig
    from crt_loops.heartbeat.executor import HeartbeatRunner
    from crt_loops.ledger.embed import start_embedded_ledger
    from crt_loops.llm.client import build_llm
    from crt_loops.loops.build import build_loops

    result = BenchResult(
        "concurrency", "Concurrency: 100 due threads, 0.5 s LLM, max concurrency 4"
    )
    tmp = ctx.scratch("concurrency")
    n = 40 if ctx.quick else THREADS
    ideal = n * DELAY_S / CONCURRENCY

    def slow_poster(request: dict[str, Any]) -> Reply:
        reply = poster(request)
        reply.delay = DELAY_S
        return reply

    with service_logging(tmp / "bench.log"), FakeOllama() as fake:
        install(fake, slow_poster)
        settings = make_settings(
            tmp,
            ollama_host=fake.url,
            heartbeat_loop_enabled=True,
            heartbeat_loop_seconds=60,
            heartbeat_max_concurrency=CONCURRENCY,
            ledger_post_cooldown_seconds=0,
            ledger_requests_per_minute=1_000_000,
        )
        write_heartbeat_md(tmp)
        db = SessionDB(settings.session_db_path)
        llm = build_llm(
            enabled=True,
            host=settings.ollama_host,
            model=settings.ollama_model,
            timeout_seconds=settings.llm_timeout_seconds,
        )
        ledger = start_embedded_ledger(settings, db)
        loops: list[Any] = []
        try:
            ids = thread_ids(n, "c")
            now = time.time()
            seed_threads(
                db,
                ids,
                now=now,
                heartbeat=HeartbeatConfig(enabled=True, every_seconds=3600),
                next_due=lambda i, t: now - 60 + i * 0.01,
            )
            # An hour old: a thread whose owner wrote in the last CRT_HEARTBEAT_OWNER_QUIET_SECONDS
            # defers its scheduled heartbeat (heartbeat/owner.py).
            seed_messages(db, ids, 10, now=now - 3600, rng=random.Random(3), scored=True)

            def runner_factory() -> HeartbeatRunner:
                return HeartbeatRunner.from_app_state(
                    settings=settings, db=db, llm=llm, ledger=ledger
                )

            loops = build_loops(
                db, settings=settings, llm=llm, heartbeat_runner_factory=runner_factory
            )
            heartbeat = loops[3]
            assert heartbeat.name == "heartbeat"

            def finished() -> int:
                row = (
                    db.read()
                    .execute(
                        "SELECT COUNT(DISTINCT thread_id) FROM heartbeat_runs "
                        "WHERE outcome <> 'running' AND thread_id LIKE 'c%' "
                        "AND trigger = 'schedule'"
                    )
                    .fetchone()
                )
                return int(row[0])

            t0 = time.perf_counter()
            started_at = time.time()
            heartbeat.start()
            wait_until(lambda: finished() >= n, timeout=ideal * 3 + 30, interval=0.01)
            elapsed = time.perf_counter() - t0
            heartbeat.stop(timeout=30)
            rows = (
                db.read()
                .execute(
                    "SELECT outcome, reason, started_at, finished_at, llm_ms, duration_ms "
                    "FROM heartbeat_runs WHERE thread_id LIKE 'c%'"
                )
                .fetchall()
            )
        finally:
            for loop in loops:
                loop.stop(timeout=30)
            ledger.stop()
            db.close()
    outcomes: dict[str, int] = {}
    for r in rows:
        key = r["outcome"] + (f"/{r['reason']}" if r["reason"] else "")
        outcomes[key] = outcomes.get(key, 0) + 1
    last_finish = max(r["finished_at"] for r in rows)
    overhead = [r["duration_ms"] - (r["llm_ms"] or 0) for r in rows]
    result.add(
        "elapsed_over_ideal",
        round(elapsed / ideal, 3),
        "x",
        "<=",
        TARGET_RATIO,
        note=f"{elapsed:.2f} s for {n} runs; ideal {ideal:.1f} s",
    )
    result.add("elapsed_seconds", round(elapsed, 2), "s")
    result.add("max_llm_in_flight", fake.max_in_flight, "", "<=", CONCURRENCY)
    result.add(
        "llm_in_flight_reached",
        fake.max_in_flight,
        "",
        "==",
        CONCURRENCY,
        note="the pool was actually used at full width",
    )
    result.add("runs_recorded", len(rows), "runs", "==", n)
    result.add(
        "runs_failed",
        sum(v for k, v in outcomes.items() if k.startswith("failed")),
        "runs",
        "==",
        0,
        note="silent/rate_limited is expected: runs in flight together see each other's posts",
    )
    result.details = {
        "threads": n,
        "ideal_seconds": ideal,
        "elapsed_seconds": elapsed,
        "last_record_after_start_s": round(last_finish - started_at, 3),
        "outcomes": outcomes,
        "llm_calls": len(fake.chat_calls),
        "run_overhead_ms": distribution(overhead, 2),
    }
    return result
