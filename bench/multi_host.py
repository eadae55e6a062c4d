"""Several hosts on one PostgreSQL: heartbeats per second across 1, 2 and 3 host processes, and
the idle cost per host with 10,000 threads.

1. **Scaling.** A throwaway PostgreSQL cluster (tests/support/pg_cluster.py), a standalone Ledger
   and N ``uvicorn crt_api:app`` hosts (tests/support/hosts.py), each with its own data dir and
   workspace, ``CRT_HEARTBEAT_MAX_CONCURRENCY=2``, and the fake Ollama answering every decision
   after 0.5 s (as many at once as asked: the LLM's own limit is not reached here). 48 threads
   with a heartbeat config are made due at once; time runs from then to the 48th recorded run
   (dry runs: the whole pipeline, nothing sent). The hosts wake within their 1 s loop interval,
   which the figure includes. Duplicates: runs beyond one per thread.
2. **Idle cost.** In-process, one host's four loops over the same database with 10,000 (and
   1,000) threads of processed history, nothing due: each loop's ``tick()`` with every statement
   counted (``PostgresStore.trace``). An idle pass must cost the same number of statements
   whatever the thread count; every host runs these passes, so this is the idle cost per host.
"""

from __future__ import annotations

import time
from typing import Any

import httpx

from bench.common import (
    BenchContext,
    BenchResult,
    make_settings,
    split_statements,
    thread_ids,
    write_heartbeat_md,
)

THREADS = 48
LLM_SECONDS = 0.5
CONCURRENCY = 2
IDLE_THREADS = 10_000
IDLE_SMALL = 1_000


def _scaling(ctx: BenchContext, cluster: Any, hosts_n: int, fake: Any, n: int) -> dict[str, Any]:
    import psycopg
    from support.hosts import hosts

    tmp = ctx.scratch(f"multi-host-{hosts_n}")
    env = {
        "CRT_OLLAMA_HOST": fake.url,
        "CRT_HEARTBEAT_LOOP_ENABLED": "true",
        "CRT_HEARTBEAT_LOOP_SECONDS": "1",
        "CRT_HEARTBEAT_MAX_CONCURRENCY": str(CONCURRENCY),
        "CRT_HEARTBEAT_OWNER_QUIET_SECONDS": "0",
        "CRT_REFLECTION_LOOP_ENABLED": "false",
        "CRT_PERSONALITY_LOOP_ENABLED": "false",
        "CRT_JOURNAL_SELF_REPLY_LOOP_ENABLED": "false",
    }
    with cluster.fresh_database() as url, hosts(tmp, url, hosts_n, env) as (_, started):
        for tid in thread_ids(n, prefix="m"):
            r = httpx.post(
                f"{started[0].url}/api/threads/{tid}/heartbeat/config",
                json={"enabled": True, "every_seconds": 3600, "target": "post",
                      "dry_run": True, "skip_when_unchanged": False},
                timeout=30,
            )  # fmt: skip
            r.raise_for_status()
        calls_before = len(fake.calls_for("HeartbeatDecision"))
        with psycopg.connect(url, autocommit=True) as conn:
            t0 = time.time()
            conn.execute(
                "UPDATE thread_sessions SET heartbeat_next_due = %s WHERE thread_id LIKE 'm%%'",
                (t0,),
            )

            def done() -> int:
                row = conn.execute(
                    "SELECT COUNT(*) FROM heartbeat_runs WHERE outcome <> 'running' "
                    "AND reason IS DISTINCT FROM 'busy' AND thread_id LIKE 'm%%'"
                ).fetchone()
                return int(row[0]) if row else 0

            deadline = time.time() + 120
            while done() < n and time.time() < deadline:
                time.sleep(0.05)  # a benchmark polling a subprocess: no event to wait on
            elapsed = time.time() - t0
            runs = done()
            rows = conn.execute(
                "SELECT COUNT(*) - COUNT(DISTINCT thread_id) FROM heartbeat_runs "
                "WHERE reason IS DISTINCT FROM 'busy' AND thread_id LIKE 'm%%'"
            ).fetchone()
            duplicates = int(rows[0]) if rows else -1
        calls = len(fake.calls_for("HeartbeatDecision")) - calls_before
        per_host = [h.log().count("Heartbeat due for thread") for h in started]
    return {
        "hosts": hosts_n,
        "runs": runs,
        "elapsed_s": round(elapsed, 2),
        "per_second": round(runs / elapsed, 2) if elapsed else 0.0,
        "duplicates": duplicates,
        "llm_calls": calls,
        "per_host": per_host,
    }


def _idle(ctx: BenchContext, cluster: Any, n: int) -> dict[str, Any]:
    from bench.idle import seed
    from crt_loops.db.session import SessionDB
    from crt_loops.heartbeat.executor import HeartbeatRunner
    from crt_loops.llm.client import DisabledLLM
    from crt_loops.loops.build import build_loops

    tmp = ctx.scratch(f"multi-host-idle-{n}")
    settings = make_settings(tmp)
    write_heartbeat_md(tmp)
    with cluster.fresh_database() as url:
        db = SessionDB(url)
        try:
            seed(db, n, time.time())
            llm = DisabledLLM(settings.ollama_host, settings.ollama_model)

            def runner_factory() -> HeartbeatRunner:
                return HeartbeatRunner.from_app_state(
                    settings=settings, db=db, llm=llm, ledger=None
                )

            loops = build_loops(
                db, settings=settings, llm=llm, heartbeat_runner_factory=runner_factory
            )
            for loop in loops:  # first pass: lazy setup, startup recovery
                loop.tick()
            statements: list[str] = []
            db.backend.trace = statements.append  # type: ignore[attr-defined]
            out: dict[str, Any] = {}
            for loop in loops:
                start = len(statements)
                t0 = time.perf_counter()
                for _ in range(5):
                    loop.tick()
                    if loop.name == "heartbeat":
                        loop.next_delay()
                dt = (time.perf_counter() - t0) / 5
                taken = statements[start:]
                out[loop.name] = {
                    "statements": len(taken) / 5,
                    "kinds": {k: v / 5 for k, v in split_statements(taken).items()},
                    "ms": round(dt * 1000, 3),
                }
            db.backend.trace = None  # type: ignore[attr-defined]
            return out
        finally:
            db.close()


def run(ctx: BenchContext) -> BenchResult:
    from support.fake_ollama import FakeOllama, Reply
    from support.heartbeat_scripts import install, poster
    from support.pg_cluster import PgCluster

    result = BenchResult(
        "multi_host", "Several hosts on one PostgreSQL: heartbeats/s at 1-3 hosts, idle cost"
    )
    n = 24 if ctx.quick else THREADS

    def slow_poster(request: dict[str, Any]) -> Reply:
        reply = poster(request)
        reply.delay = LLM_SECONDS
        return reply

    with PgCluster() as cluster:
        cluster.prepare_template()
        with FakeOllama() as fake:
            install(fake, slow_poster)
            scaling = [_scaling(ctx, cluster, k, fake, n) for k in (1, 2, 3)]
        big, small_n = (2_000, 200) if ctx.quick else (IDLE_THREADS, IDLE_SMALL)
        idle_big = _idle(ctx, cluster, big)
        idle_small = _idle(ctx, cluster, small_n)
    result.details["scaling"] = scaling
    result.details["idle"] = {"large": idle_big, "small": idle_small}
    one = scaling[0]["per_second"] or 1.0
    ideal_one = CONCURRENCY / LLM_SECONDS
    for row in scaling:
        k = row["hosts"]
        result.add(f"heartbeats/s, {k} host(s)", row["per_second"], "/s",
                   note=f"ideal {ideal_one * k:.0f}/s; per host {row['per_host']}")  # fmt: skip
        result.add(f"duplicate runs, {k} host(s)", row["duplicates"], "", "==", 0)
        result.add(f"every host worked, {k} host(s)", all(p > 0 for p in row["per_host"]),
                   "", "==", True)  # fmt: skip
    result.add("speed-up at 3 hosts", round(scaling[2]["per_second"] / one, 2), "x", ">=", 2.0)
    for name, loop in idle_big.items():
        small = idle_small[name]["statements"]
        result.add(f"idle {name} pass: statements at {big:,} threads", loop["statements"],
                   "", "<=", small, note=f"{small} at {small_n:,}; {loop['ms']} ms")  # fmt: skip
    return result
