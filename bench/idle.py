"""Idle cost: 1,000 threads with processed history, four loops at 1 s, heartbeat on but not due.

Two measurements:

1. **CPU share** of the real service (``uvicorn crt_api:app`` subprocess, embedded Ledger, the
   fake Ollama up so the LLM counts as available) over a 30 s window after a warm-up, from
   ``/proc/<pid>/stat`` (utime + stime of every thread). Every loop runs at a 1 s interval and
   the heartbeat loop is on with every thread enabled but due in an hour. LLM calls (requests to
   the fake's ``/api/chat``) must be 0; the loops' tick counters, read before and after the
   window, show they really ran about once a second.
2. **Queries per pass**: in-process, the same seeded DB at 100 and at 1,000 threads; each loop's
   ``tick()`` (plus the heartbeat loop's ``next_delay()``) runs on this thread with a
   ``set_trace_callback`` on its connection, so every statement is counted. Idle passes must
   cost the same number of statements whatever the thread count.
"""

from __future__ import annotations

import random
import time
from typing import Any

import httpx

from bench.common import (
    BenchContext,
    BenchResult,
    QueryCounter,
    make_settings,
    proc_cpu_seconds,
    seed_messages,
    seed_processed_history,
    seed_threads,
    service_logging,
    split_statements,
    thread_ids,
    write_heartbeat_md,
)

THREADS = 1_000
SMALL = 100
MESSAGES_PER_THREAD = 20
WINDOW_S = 30.0
WARMUP_S = 5.0
TARGET_CPU_PCT = 1.0


def seed(db: Any, n: int, now: float) -> list[str]:
    from crt_loops.heartbeat.config import HeartbeatConfig

    ids = thread_ids(n)
    rng = random.Random(n)
    config = HeartbeatConfig(enabled=True, every_seconds=3600)
    seed_threads(
        db,
        ids,
        now=now,
        heartbeat=config,
        last_run=now,
        # Due in an hour, spread like the per-thread phase spreads them: none due in the window.
        next_due=lambda i, t: now + 3600 + (i * 7.3) % 1800,
    )
    seed_messages(db, ids, MESSAGES_PER_THREAD, now=now - 3600, rng=rng, scored=True)
    seed_processed_history(db, ids, now=now)
    return ids


def check_processed(db: Any) -> dict[str, bool]:
    """The seeded state is what the loops leave: nothing for any of them to do."""
    from crt_loops.llm.client import DisabledLLM
    from crt_loops.mind.journal import SelfReplyService
    from crt_loops.mind.personality import PersonalityService
    from crt_loops.mind.reflection import ReflectionService

    llm = DisabledLLM("http://127.0.0.1:9", "m")
    return {
        "reflection": ReflectionService(
            db, llm, window=20, threshold=40, clock=time.time
        ).has_work(),
        "personality": PersonalityService(db, llm, window=20, clock=time.time).has_work(),
        "journal_self_reply": SelfReplyService(
            db, llm, chance=0.25, min_seconds=1800, window=20, rng=random.Random(1), clock=time.time
        ).has_work(),
    }


def queries_per_pass(ctx: BenchContext, n: int) -> dict[str, Any]:
    """Statements each loop's idle pass runs, with ``n`` seeded threads."""
    from crt_loops.db.session import SessionDB
    from crt_loops.heartbeat.executor import HeartbeatRunner
    from crt_loops.llm.client import DisabledLLM
    from crt_loops.loops.build import build_loops

    tmp = ctx.scratch(f"idle-q{n}")
    settings = make_settings(tmp)
    write_heartbeat_md(tmp)
    db = SessionDB(settings.session_db_path)
    try:
        seed(db, n, time.time())
        llm = DisabledLLM(settings.ollama_host, settings.ollama_model)

        def runner_factory() -> HeartbeatRunner:
            return HeartbeatRunner.from_app_state(settings=settings, db=db, llm=llm, ledger=None)

        loops = build_loops(db, settings=settings, llm=llm, heartbeat_runner_factory=runner_factory)
        counter = QueryCounter()
        counter.attach(db.conn())
        for loop in loops:  # first pass: lazy setup (runner built, statements cached)
            loop.tick()
        out: dict[str, Any] = {}
        for loop in loops:
            with counter.counting() as stmts:
                t0 = time.perf_counter()
                for _ in range(5):
                    loop.tick()
                    if loop.name == "heartbeat":
                        loop.next_delay()
                dt = (time.perf_counter() - t0) / 5
            out[loop.name] = {
                "statements": len(stmts) / 5,
                "kinds": {k: v / 5 for k, v in split_statements(stmts).items()},
                "ms": round(dt * 1000, 3),
                "sample": sorted(set(" ".join(s.split())[:110] for s in stmts))[:8],
            }
        out["processed_check_has_work"] = check_processed(db)
        return out
    finally:
        db.close()


def waiting_chains(ctx: BenchContext, n: int) -> dict[str, Any]:
    """Not idle in the strict sense, reported for information: ``n`` threads whose self-reply
    chain is waiting on the minimum gap stay pending, and each pass looks at every one again."""
    from crt_loops.db.session import SessionDB
    from crt_loops.llm.client import DisabledLLM
    from crt_loops.mind.journal import SelfReplyService

    db = SessionDB(ctx.scratch(f"idle-chains{n}") / "crt.db")
    try:
        now = time.time()
        ids = thread_ids(n)
        seed_threads(db, ids, now=now)
        with db.write() as tx:
            for tid in ids:
                parent = tx.execute(
                    "INSERT INTO journal_entries (thread_id, entry_type, title, body, created_at) "
                    "VALUES (?, 'reflection', 'R', 'b', ?) RETURNING id",
                    (tid, now - 120),
                ).fetchone()[0]
                tx.execute(
                    "INSERT INTO journal_entries (thread_id, entry_type, title, body, created_at, "
                    "reply_to) VALUES (?, 'self_reply', 'Re: R', 'b', ?, ?)",
                    (tid, now - 60, parent),
                )
                tx.execute(
                    "UPDATE thread_sessions SET last_self_reply_at = ? WHERE thread_id = ?",
                    (now - 60, tid),
                )
        service = SelfReplyService(
            db,
            DisabledLLM("http://127.0.0.1:9", "m"),
            chance=0.25,
            min_seconds=1800,
            window=20,
            rng=random.Random(1),
            clock=time.time,
        )
        service.run_pass()
        counter = QueryCounter()
        counter.attach(db.conn())
        with counter.counting() as stmts:
            c0 = time.process_time()
            service.run_pass()
            cpu = time.process_time() - c0
        return {"threads": n, "statements": len(stmts), "cpu_ms": round(cpu * 1000, 2)}
    finally:
        db.close()


def cpu_share(ctx: BenchContext, window: float) -> dict[str, Any]:
    from support.fake_ollama import FakeOllama
    from support.service import Service

    tmp = ctx.scratch("idle-svc")
    write_heartbeat_md(tmp)
    from crt_loops.db.session import SessionDB

    db = SessionDB(tmp / "data" / "crt.db")
    try:
        seed(db, THREADS, time.time())
        db.conn().execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        db.close()
    with FakeOllama() as fake:
        env = {
            "CRT_OLLAMA_HOST": fake.url,
            "CRT_REFLECTION_LOOP_SECONDS": "1",
            "CRT_PERSONALITY_LOOP_SECONDS": "1",
            "CRT_JOURNAL_SELF_REPLY_LOOP_SECONDS": "1",
            "CRT_JOURNAL_SELF_REPLY_MIN_SECONDS": "1800",
            "CRT_HEARTBEAT_LOOP_ENABLED": "true",
            "CRT_HEARTBEAT_LOOP_SECONDS": "1",
            "CRT_HEARTBEAT_MAX_CONCURRENCY": "4",
        }
        with Service(tmp, env) as svc:
            assert svc.proc is not None
            pid = svc.proc.pid
            client = httpx.Client(base_url=svc.url, timeout=10)
            threads_enabled = client.get("/api/heartbeat/status").json().get("threads_enabled")
            time.sleep(WARMUP_S)  # startup work and the first passes are not idle cost
            before_loops = client.get("/api/loops").json()
            chat_before = len(fake.chat_calls)
            probes_before = fake.version_calls
            cpu0, t0 = proc_cpu_seconds(pid), time.monotonic()
            time.sleep(window)  # the service is left alone: this is the idle being measured
            cpu1, t1 = proc_cpu_seconds(pid), time.monotonic()
            chat_calls = len(fake.chat_calls) - chat_before
            probes = fake.version_calls - probes_before
            after_loops = client.get("/api/loops").json()
            client.close()
            log_lines = svc.log().count("\n")
    ticks = {}
    for name, after in _loops(after_loops).items():
        before = _loops(before_loops).get(name, {})
        ticks[name] = int(after.get("ticks", 0)) - int(before.get("ticks", 0))
    return {
        "cpu_seconds": cpu1 - cpu0,
        "wall_seconds": t1 - t0,
        "cpu_pct": 100 * (cpu1 - cpu0) / (t1 - t0),
        "llm_chat_calls": chat_calls,
        "llm_version_probes": probes,
        "ticks_in_window": ticks,
        "threads_enabled": threads_enabled,
        "service_log_lines": log_lines,
    }


def _loops(payload: Any) -> dict[str, dict[str, Any]]:
    items = payload.get("loops", payload) if isinstance(payload, dict) else payload
    if isinstance(items, dict):
        return {k: v for k, v in items.items() if isinstance(v, dict)}
    return {item["name"]: item for item in items}


def run(ctx: BenchContext) -> BenchResult:
    result = BenchResult("idle", "Idle cost: 1,000 processed threads, four loops at 1 s")
    tmp = ctx.scratch("idle")
    with service_logging(tmp / "bench.log"):
        small = queries_per_pass(ctx, SMALL)
        large = queries_per_pass(ctx, THREADS)
        chains = [waiting_chains(ctx, SMALL), waiting_chains(ctx, THREADS)]
    cpu = cpu_share(ctx, 10.0 if ctx.quick else WINDOW_S)
    result.add(
        "cpu_share",
        round(cpu["cpu_pct"], 3),
        "% of a core",
        "<=",
        TARGET_CPU_PCT,
        note=f"service process, {cpu['wall_seconds']:.0f} s window, {THREADS:,} threads",
    )
    result.add("llm_calls", cpu["llm_chat_calls"], "", "==", 0)
    min_ticks = min(cpu["ticks_in_window"].values()) if cpu["ticks_in_window"] else 0
    result.add(
        "min_loop_ticks_in_window",
        min_ticks,
        "ticks",
        ">=",
        int(0.8 * cpu["wall_seconds"]),
        note="each loop really ticked about once a second",
    )
    loop_names = [n for n in large if n != "processed_check_has_work"]
    q_small = sum(small[n]["statements"] for n in loop_names)
    q_large = sum(large[n]["statements"] for n in loop_names)
    result.add("queries_per_pass_100", q_small, "stmts", note="all four loops, one idle pass each")
    result.add(
        "queries_per_pass_1000",
        q_large,
        "stmts",
        "<=",
        q_small,
        note="must not grow with the thread count",
    )
    for name in loop_names:
        result.add(f"queries_{name}_1000", large[name]["statements"], "stmts")
    result.add(
        "waiting_chains_pass_stmts_1000",
        chains[1]["statements"],
        "stmts",
        note=f"info: self-reply pass with {THREADS:,} chains waiting on the minimum gap "
        f"({chains[0]['statements']} at {SMALL}); {chains[1]['cpu_ms']} ms CPU per pass",
    )
    result.details = {
        "threads": THREADS,
        "waiting_chains": chains,
        "cpu": cpu,
        "queries_100_threads": small,
        "queries_1000_threads": large,
    }
    return result
