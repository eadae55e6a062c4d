"""API under load: status and config endpoints while every loop is busy, one uvicorn worker.

The real service (``uvicorn crt_api:app`` subprocess, one worker, embedded Ledger) with all four
loops at 1 s and real work for each: 200 threads whose heartbeat is due every 10 s (the fake
Ollama answers heartbeats in 50 ms with a post, and the thinking loops' schemas at once), a
writer adding 20 messages a second through the API (so reflection, personality and self-reply
always have something new), and a history of 200,000 past heartbeat runs. Meanwhile a bounded
closed-loop load (4 client threads with keep-alive httpx clients, loopback only) calls
``GET /api/heartbeat/status``, ``GET /api/threads/{id}/heartbeat/config`` and ``GET /health``
for 15 s; rate and latency percentiles are reported per endpoint.

No LLM or Ledger I/O on the event loop, checked two ways:

- dynamically: a run-now whose LLM call takes 1 s is fired every 1.5 s during the load; if any
  of it ran on the event loop, ``/health`` would stall for about a second;
- statically: an AST scan of ``routes/*.py`` and ``crt_api.py`` lists every ``async def``
  endpoint and the calls it makes outside ``await`` and outside nested functions (those run in
  a worker thread); calls into the LLM, the Ledger or the heartbeat runner there are violations,
  DB calls are listed as notes.
"""

from __future__ import annotations

import ast
import random
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

from bench.common import (
    ROOT,
    BenchContext,
    BenchResult,
    busy_service_env,
    distribution,
    proc_cpu_seconds,
    seed_messages,
    seed_threads,
    thread_ids,
    write_heartbeat_md,
)

HB_THREADS = 200
PAST_RUNS = 200_000
CLIENTS = 4
LOAD_S = 15.0
WRITES_PER_S = 20
SLOW_LLM_S = 1.0
TARGET_P99_MS = 250.0
TARGET_RATE = 100.0

BLOCKING_IO = (
    "llm",
    "ledger",
    "runner",
    "ollama",
    "httpx",
    "requests",
    "chat",
    "run_now",
    "urlopen",
    "sleep",
)
DB_IO = ("store.", "db.", "ensure_thread", "session", "load_instructions", "write_instructions")


# -- static scan ---------------------------------------------------------------------------


def _dotted(node: ast.AST) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return _dotted(node.value) + "." + node.attr
    if isinstance(node, ast.Call):
        return _dotted(node.func) + "()"
    return "?"


def _is_endpoint(fn: ast.AsyncFunctionDef | ast.FunctionDef) -> bool:
    for dec in fn.decorator_list:
        target = dec.func if isinstance(dec, ast.Call) else dec
        name = _dotted(target)
        if name.split(".")[-1] in (
            "get",
            "post",
            "put",
            "delete",
            "patch",
            "api_route",
            "middleware",
        ):
            return True
    return False


def _calls_on_loop(fn: ast.AsyncFunctionDef) -> list[str]:
    """Calls made directly by the coroutine: not awaited, not inside a nested def/lambda."""
    awaited: set[int] = set()
    out: list[str] = []

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
                continue  # runs elsewhere (to_thread) or later
            if isinstance(child, ast.Await) and isinstance(child.value, ast.Call):
                awaited.add(id(child.value))
            if isinstance(child, ast.Call) and id(child) not in awaited:
                out.append(_dotted(child.func))
            visit(child)

    visit(fn)
    return out


def static_scan() -> dict[str, Any]:
    files = [*sorted((ROOT / "routes").glob("*.py")), ROOT / "crt_api.py"]
    endpoints: list[dict[str, Any]] = []
    violations: list[str] = []
    db_notes: list[str] = []
    n_sync = 0
    for path in files:
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef) and _is_endpoint(node):
                n_sync += 1
            if isinstance(node, ast.AsyncFunctionDef) and _is_endpoint(node):
                calls = _calls_on_loop(node)
                where = f"{path.relative_to(ROOT)}:{node.lineno} {node.name}"
                endpoints.append({"endpoint": where, "calls_on_event_loop": sorted(set(calls))})
                for call in sorted(set(calls)):
                    low = call.lower()
                    if any(k in low for k in BLOCKING_IO) and "to_thread" not in low:
                        violations.append(f"{where}: {call}")
                    elif any(k in low for k in DB_IO):
                        db_notes.append(f"{where}: {call}")
    return {
        "sync_endpoints": n_sync,
        "async_endpoints": endpoints,
        "violations": violations,
        "db_calls_on_event_loop": db_notes,
    }


# -- load ------------------------------------------------------------------------------------


def seed_db(tmp: Path) -> list[str]:
    from crt_loops.db.session import SessionDB
    from crt_loops.heartbeat.config import HeartbeatConfig

    db = SessionDB(tmp / "data" / "crt.db")
    try:
        now = time.time()
        ids = thread_ids(HB_THREADS, "api")
        seed_threads(
            db,
            ids,
            now=now,
            heartbeat=HeartbeatConfig(enabled=True, every_seconds=10),
            next_due=lambda i, t: now + 5 + (i % 10),
        )
        # An hour old: a thread whose owner wrote in the last CRT_HEARTBEAT_OWNER_QUIET_SECONDS
        # defers its scheduled heartbeat (heartbeat/owner.py).
        seed_messages(db, ids, 10, now=now - 3600, rng=random.Random(9), scored=True)
        outcomes = ["silent"] * 6 + ["skipped"] * 2 + ["acted", "failed"]
        with db.write() as tx:
            tx.executemany(
                "INSERT INTO heartbeat_runs (run_id, thread_id, trigger, outcome, reason, summary, "
                "started_at, finished_at, duration_ms) "
                "VALUES (?, ?, 'schedule', ?, NULL, '', ?, ?, 5)",
                [
                    (
                        uuid.uuid4().hex,
                        ids[k % HB_THREADS],
                        outcomes[k % 10],
                        now - 86_400 * 60 + k * 25,
                        now - 86_400 * 60 + k * 25,
                    )
                    for k in range(PAST_RUNS)
                ],
            )
        db.conn().execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return ids
    finally:
        db.close()


def run(ctx: BenchContext) -> BenchResult:
    from support.fake_ollama import FakeOllama, Reply
    from support.heartbeat_scripts import poster, prompt_text
    from support.llm_scripts import install_thinking_routes
    from support.service import Service

    result = BenchResult("api_load", "API under load: status and config while the loops are busy")
    scan = static_scan()
    tmp = ctx.scratch("api")
    write_heartbeat_md(tmp)
    ids = seed_db(tmp)
    load_s = 6.0 if ctx.quick else LOAD_S

    def heartbeat_responder(request: dict[str, Any]) -> Reply:
        reply = poster(request)
        reply.delay = SLOW_LLM_S if "(thread evloop)" in prompt_text(request) else 0.05
        return reply

    with FakeOllama() as fake:
        install_thinking_routes(fake)
        fake.route("HeartbeatDecision", heartbeat_responder)
        env = busy_service_env(fake.url) | {"CRT_JOURNAL_SELF_REPLY_MIN_SECONDS": "0"}
        with Service(tmp, env) as svc:
            assert svc.proc is not None
            pid = svc.proc.pid
            setup = httpx.Client(base_url=svc.url, timeout=30)
            setup.post("/api/threads", json={"thread_id": "evloop"})
            setup.post("/api/threads/evloop/messages", json={"role": "user", "content": "hello"})
            time.sleep(3)  # let the loops pick up the seeded work before measuring
            stop = threading.Event()
            lat: dict[str, list[float]] = {"status": [], "config": [], "health": []}
            errors: dict[str, int] = {}
            error_samples: list[str] = []
            lock = threading.Lock()
            runs_before = _runs(setup)

            def client_loop(seed: int) -> None:
                rng = random.Random(seed)
                with httpx.Client(base_url=svc.url, timeout=30) as c:
                    k = 0
                    while not stop.is_set():
                        name = ("status", "config", "health")[k % 3]
                        k += 1
                        path = {
                            "status": "/api/heartbeat/status",
                            "config": f"/api/threads/{rng.choice(ids)}/heartbeat/config",
                            "health": "/health",
                        }[name]
                        t0 = time.perf_counter()
                        why = ""
                        try:
                            r = c.get(path)
                            ok = r.status_code == 200
                            why = f"{r.status_code} {r.text[:160]}"
                        except httpx.HTTPError as exc:
                            ok = False
                            why = f"{type(exc).__name__}: {exc}"
                        dt = (time.perf_counter() - t0) * 1000
                        with lock:
                            lat[name].append(dt)
                            if not ok:
                                errors[name] = errors.get(name, 0) + 1
                                error_samples.append(f"{name}: {why}")

            def writer() -> None:
                rng = random.Random(1)
                gap = 1.0 / WRITES_PER_S
                pause = threading.Event()
                with httpx.Client(base_url=svc.url, timeout=30) as c:
                    while not stop.is_set():
                        tid = rng.choice(ids)
                        c.post(
                            f"/api/threads/{tid}/messages",
                            json={
                                "role": "user",
                                "content": f"I decided to change jobs {rng.random()}",
                            },
                        )
                        pause.wait(gap)

            run_now_ms: list[float] = []

            def run_now() -> None:
                pause = threading.Event()
                with httpx.Client(base_url=svc.url, timeout=60) as c:
                    while not stop.is_set():
                        t0 = time.perf_counter()
                        c.post("/api/threads/evloop/heartbeat/run-now")
                        run_now_ms.append((time.perf_counter() - t0) * 1000)
                        pause.wait(0.5)

            workers = [
                threading.Thread(target=client_loop, args=(i,), name=f"load-{i}")
                for i in range(CLIENTS)
            ]
            workers += [
                threading.Thread(target=writer, name="writer"),
                threading.Thread(target=run_now, name="run-now"),
            ]
            cpu0, t0 = proc_cpu_seconds(pid), time.perf_counter()
            for w in workers:
                w.start()
            time.sleep(load_s)  # the measured load window
            stop.set()
            for w in workers:
                w.join(60)
            elapsed = time.perf_counter() - t0
            cpu = proc_cpu_seconds(pid) - cpu0
            runs_after = _runs(setup)
            loops = setup.get("/api/loops").json()
            setup.close()
    rates = {k: len(v) / elapsed for k, v in lat.items()}
    dists = {k: distribution(v, 2) for k, v in lat.items() if v}
    total_rate = sum(rates.values())
    result.add(
        "request_rate",
        round(total_rate, 1),
        "req/s",
        ">=",
        TARGET_RATE,
        note=f"{CLIENTS} closed-loop clients, {elapsed:.0f} s, loops busy",
    )
    for name in ("status", "config", "health"):
        d = dists.get(name, {})
        result.add(f"{name}_p50", d.get("p50"), "ms")
        result.add(f"{name}_p99", d.get("p99"), "ms", "<=", TARGET_P99_MS)
    result.add(
        "health_max_during_1s_llm_calls",
        dists.get("health", {}).get("max"),
        "ms",
        "<",
        SLOW_LLM_S * 1000 / 2,
        note="run-now with a 1 s LLM call fired throughout: the event loop never waited on it",
    )
    result.add("errors", sum(errors.values()), "", "==", 0)
    result.add(
        "async_endpoints_doing_llm_or_ledger_io",
        len(scan["violations"]),
        "",
        "==",
        0,
        note=f"{len(scan['async_endpoints'])} async endpoints scanned, "
        f"{scan['sync_endpoints']} plain def",
    )
    result.add(
        "heartbeat_runs_during_load",
        runs_after - runs_before,
        "runs",
        note="the heartbeat loop was really busy",
    )
    result.details = {
        "rates_per_s": {k: round(v, 1) for k, v in rates.items()},
        "latency_ms": dists,
        "errors": errors,
        "error_samples": error_samples[:10],
        "service_cpu_pct": round(100 * cpu / elapsed, 1),
        "run_now_ms": distribution(run_now_ms, 1) if run_now_ms else None,
        "past_runs_seeded": PAST_RUNS,
        "loops": {
            item["name"]: {"ticks": item.get("ticks"), "last_tick_ms": item.get("last_tick_ms")}
            for item in loops.get("loops", [])
        },
        "static_scan": scan,
    }
    return result


def _runs(client: httpx.Client) -> int:
    counts = client.get("/api/heartbeat/status").json().get("runs_by_outcome", {})
    return int(sum(v for k, v in counts.items() if isinstance(v, int)))
