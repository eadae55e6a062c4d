"""Backlog: 200 threads x 50 new messages with the LLM disabled (``llm.DisabledLLM``).

In-process, single thread: one reflection pass (score every message with the heuristic, write a
reflection where the importance sum passes the threshold) then one personality pass (fold every
person's message into the thread's profile), each through the loop's real ``tick()``, as the
service runs them. CPU is ``time.process_time()`` of this process (nothing else runs in it);
logging goes to a file at INFO, as in the service. A second round of passes over the same,
now processed, data must cost next to nothing (the earlier implementation redid everything).
A self-reply pass (templates, since there is no LLM) is reported too, but is not part of the
per-message figure: its work is per reflection entry, not per message.
"""

from __future__ import annotations

import random
import time
from typing import Any

from bench.common import (
    BenchContext,
    BenchResult,
    make_settings,
    seed_messages,
    seed_threads,
    service_logging,
    thread_ids,
    write_heartbeat_md,
)

THREADS = 200
PER_THREAD = 50
TARGET_CPU_MS_PER_MESSAGE = 1.0


def run(ctx: BenchContext) -> BenchResult:
    from crt_loops.db.session import SessionDB
    from crt_loops.llm.client import DisabledLLM
    from crt_loops.loops.build import build_loops

    result = BenchResult("backlog", "Backlog: 200 threads x 50 new messages, LLM disabled")
    tmp = ctx.scratch("backlog")
    threads = 50 if ctx.quick else THREADS
    settings = make_settings(tmp, llm_enabled=False)
    write_heartbeat_md(tmp)
    with service_logging(tmp / "bench.log"):
        db = SessionDB(settings.session_db_path)
        try:
            ids = thread_ids(threads)
            now = time.time()
            seed_threads(db, ids, now=now)
            n = seed_messages(db, ids, PER_THREAD, now=now, rng=random.Random(7))
            llm = DisabledLLM(settings.ollama_host, settings.ollama_model)
            loops = {loop.name: loop for loop in build_loops(db, settings=settings, llm=llm)}
            timings: dict[str, Any] = {}
            for name in ("reflection", "personality"):
                c0, w0 = time.process_time(), time.perf_counter()
                tick = loops[name].tick()
                timings[name] = {
                    "cpu_s": time.process_time() - c0,
                    "wall_s": time.perf_counter() - w0,
                    "outcome": tick.outcome.value,
                    "detail": {k: v for k, v in tick.detail.items() if k != "errors"},
                }
            c0, w0 = time.process_time(), time.perf_counter()
            tick = loops["journal_self_reply"].tick()
            self_reply = {
                "cpu_s": time.process_time() - c0,
                "wall_s": time.perf_counter() - w0,
                "detail": {k: v for k, v in tick.detail.items() if k != "errors"},
            }
            # Nothing new since: a second round must be (nearly) free.
            c0 = time.process_time()
            for name in ("reflection", "personality"):
                loops[name].tick()
            second_cpu = time.process_time() - c0
            conn = db.read()
            scored = conn.execute(
                "SELECT COUNT(*) FROM messages WHERE importance IS NOT NULL"
            ).fetchone()[0]
            reflections = conn.execute(
                "SELECT COUNT(*) FROM journal_entries WHERE entry_type = 'reflection'"
            ).fetchone()[0]
            profiles = conn.execute("SELECT COUNT(*) FROM personality_profiles").fetchone()[0]
        finally:
            db.close()
    cpu = timings["reflection"]["cpu_s"] + timings["personality"]["cpu_s"]
    wall = timings["reflection"]["wall_s"] + timings["personality"]["wall_s"]
    result.add(
        "cpu_ms_per_message",
        round(1000 * cpu / n, 4),
        "ms",
        "<=",
        TARGET_CPU_MS_PER_MESSAGE,
        note=f"reflection + personality passes over {n:,} messages",
    )
    result.add("cpu_seconds", round(cpu, 3), "s")
    result.add("wall_seconds", round(wall, 3), "s")
    result.add("messages_scored", scored, "", "==", n)
    result.add("threads_profiled", profiles, "", "==", threads)
    result.add(
        "reflections_written",
        reflections,
        "",
        ">=",
        threads,
        note="every thread passed the importance threshold at least once",
    )
    result.add(
        "second_pass_cpu_ms",
        round(1000 * second_cpu, 3),
        "ms",
        "<=",
        5.0,
        note="the same passes again with nothing new",
    )
    result.add(
        "self_reply_pass_cpu_s",
        round(self_reply["cpu_s"], 3),
        "s",
        note="templates for the new reflections (LLM disabled); not per message",
    )
    result.details = {
        "threads": threads,
        "messages": n,
        "passes": timings,
        "self_reply_pass": self_reply,
        "per_thread_ms_cpu": round(1000 * cpu / threads, 3),
    }
    return result
