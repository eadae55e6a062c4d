"""Backlog: 200 threads x 50 and 1,000 x 20 new messages, LLM disabled (``llm.DisabledLLM``).

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
    QueryCounter,
    make_settings,
    seed_messages,
    seed_threads,
    service_logging,
    split_statements,
    thread_ids,
    write_heartbeat_md,
)

#: (threads, new messages per thread): many messages in few threads, few in many.
SHAPES = ((200, 50), (1_000, 20))
TARGET_CPU_MS_PER_MESSAGE = 0.08
#: Statements per message, counted with set_trace_callback as bench/idle.py does (an
#: executemany counts once per row): a constant, whatever the shape of the backlog.
TARGET_STATEMENTS_PER_MESSAGE = 3.0


def one_backlog(ctx: BenchContext, threads: int, per_thread: int) -> dict[str, Any]:
    """Seed ``threads`` x ``per_thread`` new messages, run the passes, check what they left."""
    from crt_loops.db.session import SessionDB
    from crt_loops.llm.client import DisabledLLM
    from crt_loops.loops.build import build_loops

    tmp = ctx.scratch(f"backlog-{threads}x{per_thread}")
    settings = make_settings(tmp, llm_enabled=False)
    write_heartbeat_md(tmp)
    with service_logging(tmp / "bench.log"):
        db = SessionDB(settings.session_db_path)
        try:
            ids = thread_ids(threads)
            now = time.time()
            seed_threads(db, ids, now=now)
            n = seed_messages(db, ids, per_thread, now=now, rng=random.Random(7))
            llm = DisabledLLM(settings.ollama_host, settings.ollama_model)
            loops = {loop.name: loop for loop in build_loops(db, settings=settings, llm=llm)}
            counter = QueryCounter()
            counter.attach(db.conn())
            timings: dict[str, Any] = {}
            statements = 0
            for name in ("reflection", "personality"):
                with counter.counting() as stmts:
                    c0, w0 = time.process_time(), time.perf_counter()
                    tick = loops[name].tick()
                    cpu, wall = time.process_time() - c0, time.perf_counter() - w0
                statements += len(stmts)
                timings[name] = {
                    "cpu_s": cpu,
                    "wall_s": wall,
                    "statements": len(stmts),
                    "kinds": split_statements(stmts),
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
    return {
        "threads": threads,
        "messages": n,
        "cpu_s": cpu,
        "wall_s": timings["reflection"]["wall_s"] + timings["personality"]["wall_s"],
        "statements": statements,
        "passes": timings,
        "self_reply_pass": self_reply,
        "second_cpu_s": second_cpu,
        "scored": scored,
        "reflections": reflections,
        "profiles": profiles,
    }


def run(ctx: BenchContext) -> BenchResult:
    result = BenchResult("backlog", "Backlog: 200 x 50 and 1,000 x 20 new messages, LLM disabled")
    shapes = ((50, 50), (200, 20)) if ctx.quick else SHAPES
    details: dict[str, Any] = {}
    for threads, per_thread in shapes:
        out = one_backlog(ctx, threads, per_thread)
        n = out["messages"]
        tag = f"{threads}x{per_thread}"
        result.add(
            f"cpu_ms_per_message_{tag}",
            round(1000 * out["cpu_s"] / n, 4),
            "ms",
            "<=",
            TARGET_CPU_MS_PER_MESSAGE,
            note=f"reflection + personality passes over {n:,} messages",
        )
        result.add(
            f"statements_per_message_{tag}",
            round(out["statements"] / n, 3),
            "stmts",
            "<=",
            TARGET_STATEMENTS_PER_MESSAGE,
            note="both passes; an executemany counts once per row",
        )
        result.add(f"cpu_seconds_{tag}", round(out["cpu_s"], 3), "s")
        result.add(f"messages_scored_{tag}", out["scored"], "", "==", n)
        result.add(f"threads_profiled_{tag}", out["profiles"], "", "==", threads)
        result.add(
            f"reflections_written_{tag}",
            out["reflections"],
            "",
            ">=",
            threads,
            note="every thread passed the importance threshold at least once",
        )
        result.add(
            f"second_pass_cpu_ms_{tag}",
            round(1000 * out["second_cpu_s"], 3),
            "ms",
            "<=",
            5.0,
            note="the same passes again with nothing new",
        )
        result.add(
            f"self_reply_pass_cpu_s_{tag}",
            round(out["self_reply_pass"]["cpu_s"], 3),
            "s",
            note="templates for the new reflections (LLM disabled); not per message",
        )
        out["per_thread_ms_cpu"] = round(1000 * out["cpu_s"] / threads, 3)
        details[tag] = out
    result.details = details
    return result
