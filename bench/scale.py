"""Scale: 10,000 threads and 1,000,000 messages; memory, DB growth, startup, dashboard load.

One seeded session DB (every thread processed by the thinking loops, its heartbeat enabled
weekly and not due for days, 5 past runs each) is built once through the real schema with
``executemany`` in big transactions and cached under ``.cache/bench/`` keyed by the schema
version and the seed's shape; each measurement works on a scratch copy. Then:

1. **Memory and DB growth** (bench/scale_sim.py, its own process): an hour of the four loops'
   passes at 1 s on a simulated clock, RSS every ten simulated minutes, then a simulated day;
   the DB's bytes before and after.
2. **Startup**: ``uvicorn crt_api:app`` on a copy of the DB, from spawning the process to the
   first ``/health`` 200 (migrations checked, recovery run), next to the same on an empty DB.
3. **Dashboard load**: that service with all four loops at 1 s, 60 threads' heartbeats due
   during the window, and 20 clients polling as ``dashboard/app.js`` does: every 3 s one
   ``GET /api/dashboard/poll`` for one thread (loops, status, the thread list, approvals, the
   thread's messages, config and history); every 5th poll first the Ledger's status, then the
   poll with ``slow=true`` (also the journal, the profile, the 50 listed threads' configs and
   HEARTBEAT.md); every 10th also the feed. Each tab at a random point of that cycle, as tabs
   open for a while are. Latency per request; the start of every due run against its due
   time, from the runs table afterwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import shutil
import sqlite3
import subprocess
import sys
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
    seed_processed_history,
    seed_threads,
    thread_ids,
    write_heartbeat_md,
)

THREADS, PER_THREAD = 10_000, 100
QUICK_THREADS, QUICK_PER_THREAD = 1_000, 20
RUNS_PER_THREAD = 5
#: Part of the cache key: bump it when build_seed changes what it writes.
SEED_FORMAT = 2
CACHE = ROOT / ".cache" / "bench"
DAY = 86_400
WEEK = 7 * DAY
SIM_SECONDS, SIM_DAY_MINUTES = 3_600, 1_440
CLIENTS, POLL_S, LOAD_S = 20, 3.0, 30.0
DUE_THREADS, DUE_FROM_S, DUE_SPAN_S = 60, 8.0, 20.0
TARGET_RSS_MB, TARGET_GROWTH_MB, TARGET_STARTUP_S = 250.0, 1.0, 3.0
TARGET_P99_MS, TARGET_LATE_S = 50.0, 1.0
# The dashboard reads the status and thread pages in one request (api/routes/poll.py), so that
# request's latency is theirs: "poll" on a fast tick, "poll_slow" on every fifth.
STATUS = ("poll", "poll_slow")
THREAD_PAGES = ("poll", "poll_slow")
POLL_QUERY = (
    "threads_limit=100&messages_limit=30&history_limit=20&journal_limit=10&configs_limit=50"
)


# -- the seeded DB -------------------------------------------------------------------------


def schema_version() -> int:
    from crt_loops.db.migrations import MIGRATIONS

    return max(version for version, _ in MIGRATIONS)


def seeded_db(ctx: BenchContext, name: str) -> tuple[Path, list[str], float]:
    """A scratch copy of the cached DB as ``<scratch>/data/crt.db`` (workspace: ``<scratch>``);
    (path, thread ids, seconds spent seeding, 0 when the cache was used)."""
    threads, per = (QUICK_THREADS, QUICK_PER_THREAD) if ctx.quick else (THREADS, PER_THREAD)
    cached = CACHE / f"scale-v{schema_version()}-s{SEED_FORMAT}-{threads}x{per}.db"
    seeding = 0.0
    if not cached.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        partial = cached.with_suffix(".partial")
        for leftover in CACHE.glob(partial.name + "*"):
            leftover.unlink()
        build_seed(partial, threads, per)
        partial.replace(cached)
        seeding = time.perf_counter() - t0
    tmp = ctx.scratch(name)
    write_heartbeat_md(tmp)
    (tmp / "data").mkdir()
    target = tmp / "data" / "crt.db"
    shutil.copyfile(cached, target)
    # Weekly heartbeats, none due for days from now however old the cache is.
    rewrite(
        target,
        "UPDATE thread_sessions SET heartbeat_next_due = ? + (rowid % 86400) "
        "WHERE heartbeat_config_json IS NOT NULL",
        [(time.time() + 5 * 86_400,)],
    )
    return target, thread_ids(threads), seeding


def rewrite(path: Path, sql: str, rows: list[tuple[Any, ...]]) -> None:
    """Setup on a scratch copy, before the service opens it: commit, then checkpoint."""
    conn = sqlite3.connect(path)
    try:
        with conn:
            conn.executemany(sql, rows)
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()


def build_seed(path: Path, threads: int, per_thread: int) -> None:
    from crt_loops.db.session import SessionDB
    from crt_loops.heartbeat.config import HeartbeatConfig

    db = SessionDB(path)
    try:
        now = time.time() - 3_600
        ids = thread_ids(threads)
        config = HeartbeatConfig(enabled=True, every_seconds=WEEK)
        seed_threads(
            db, ids, now=now, heartbeat=config, next_due=lambda i, t: now + 5 * 86_400, last_run=now
        )
        rng = random.Random(17)
        for start in range(0, threads, 1_000):  # bounded memory: 100,000 rows a transaction
            seed_messages(db, ids[start : start + 1_000], per_thread, now=now, rng=rng, scored=True)
        seed_processed_history(db, ids, now=now)
        outcomes = ["silent", "silent", "skipped", "acted", "silent"]
        with db.write() as tx:
            tx.executemany(
                "INSERT INTO heartbeat_runs (run_id, thread_id, trigger, outcome, reason, "
                "summary, started_at, finished_at, duration_ms) "
                "VALUES (?, ?, 'schedule', ?, NULL, '', ?, ?, 5)",
                [
                    # Days old: inside heartbeat retention (90 days), so no pass prunes them.
                    (uuid.uuid4().hex, tid, outcomes[k], now - DAY * (k + 1), now - DAY * (k + 1))
                    for tid in ids
                    for k in range(RUNS_PER_THREAD)
                ],
            )
        db.conn().execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        db.close()


# -- 1. memory and DB growth ---------------------------------------------------------------


def memory(ctx: BenchContext) -> dict[str, Any]:
    path, _ids, seeding = seeded_db(ctx, "scale-sim")
    seconds, day = (600, 240) if ctx.quick else (SIM_SECONDS, SIM_DAY_MINUTES)
    out = subprocess.run(
        [
            sys.executable,
            *("-m", "bench.scale_sim", str(path), str(path.parent.parent)),
            *(str(seconds), str(day)),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    if out.returncode != 0:
        raise RuntimeError(f"bench.scale_sim failed:\n{out.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    result["seeding_s"] = round(seeding, 1)
    return result


# -- 2. startup ----------------------------------------------------------------------------


def started(tmp: Path, env: dict[str, str]) -> tuple[Any, float]:
    from support.service import Service

    svc = Service(tmp, env)
    t0 = time.perf_counter()
    svc.start(timeout=60)
    return svc, time.perf_counter() - t0


# -- 3. dashboard load ---------------------------------------------------------------------


async def dashboard_client(
    client: httpx.AsyncClient,
    ids: list[str],
    seed: int,
    stop_at: float,
    lat: dict[str, list[float]],
) -> int:
    """One dashboard tab on its own client (at most six connections, as a browser holds per
    host): app.js's polling, the Ledger's status, then one poll, then the feed beside the
    views it feeds. Returns the number of errors."""
    rng = random.Random(seed)
    thread = rng.choice(ids)
    errors = 0

    async def get(name: str, path: str) -> None:
        nonlocal errors
        t0 = time.perf_counter()
        try:
            r = await client.get(path)
            ok = r.status_code == 200 and (name not in STATUS or _parts_ok(r))
        except httpx.HTTPError:
            ok = False
        lat.setdefault(name, []).append((time.perf_counter() - t0) * 1000)
        errors += 0 if ok else 1

    # Tabs opened at different moments and open for a while: each at its own point of
    # app.js's cycle (its first, full load was _first_load, before the window).
    await asyncio.sleep(rng.uniform(0, POLL_S))
    tick = 1 + rng.randrange(10)
    while time.perf_counter() < stop_at:
        slow, feed = tick % 5 == 0, tick % 10 == 0
        tick += 1
        started_at = time.perf_counter()
        if slow:
            await get("ledger_status", "/api/ledger/status")
        query = f"{POLL_QUERY}&thread_id={thread}&slow={'true' if slow else 'false'}"
        await get("poll_slow" if slow else "poll", f"/api/dashboard/poll?{query}")
        if feed:
            await get("feed", "/api/ledger/feed?sort=hot&limit=15")
        await asyncio.sleep(max(0.0, POLL_S - (time.perf_counter() - started_at)))
    return errors


async def _first_load(client: httpx.AsyncClient, ids: list[str], seed: int) -> None:
    thread = random.Random(seed).choice(ids)  # the tab's thread, as dashboard_client picks it
    await client.get("/api/ledger/status")
    await client.get(f"/api/dashboard/poll?{POLL_QUERY}&thread_id={thread}&slow=true")


def _parts_ok(response: httpx.Response) -> bool:
    """Every part of a poll answered 200 (the seeded threads all exist)."""
    return all(part["status"] == 200 for part in response.json()["parts"])


async def dashboards(
    url: str, ids: list[str], seconds: float
) -> tuple[dict[str, list[float]], int]:
    lat: dict[str, list[float]] = {}
    # The tabs' clients are made before the window, with one TLS context: made inside it, each
    # loaded the CA bundle (~25 ms, 600 ms for the 20 on this machine, blocking this event
    # loop) just as the first polls went out, and their latency counted that setup.
    tls = httpx.create_ssl_context()
    limits = httpx.Limits(max_connections=6, max_keepalive_connections=6)
    async with contextlib.AsyncExitStack() as stack:
        clients = [
            await stack.enter_async_context(
                httpx.AsyncClient(base_url=url, timeout=30, limits=limits, verify=tls)
            )
            for _ in range(CLIENTS)
        ]
        # Each tab's first, full load (app.js's first tick), not measured: the tabs measured
        # are open for a while, their connections made and the client's code paths run once.
        await asyncio.gather(*(_first_load(c, ids, i) for i, c in enumerate(clients)))
        stop_at = time.perf_counter() + seconds
        errors = await asyncio.gather(
            *(dashboard_client(c, ids, i, stop_at, lat) for i, c in enumerate(clients))
        )
    return lat, sum(errors)


def proc_status(pid: int) -> dict[str, float]:
    out: dict[str, float] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = int(value.split()[0]) / 1024
    return out


def load(ctx: BenchContext) -> dict[str, Any]:
    from support.fake_ollama import FakeOllama
    from support.heartbeat_scripts import poster
    from support.llm_scripts import install_thinking_routes

    path, ids, _ = seeded_db(ctx, "scale-api")
    seconds = 10.0 if ctx.quick else LOAD_S
    # Due during the window, measured from when the service answers (startup is ~2 s).
    due_base = time.time() + 6.0 + DUE_FROM_S
    due = {
        ids[i * 97 % len(ids)]: due_base + DUE_SPAN_S * i / DUE_THREADS for i in range(DUE_THREADS)
    }
    rewrite(
        path,
        "UPDATE thread_sessions SET heartbeat_next_due = ? WHERE thread_id = ?",
        [(at, tid) for tid, at in due.items()],
    )
    empty = ctx.scratch("scale-empty")
    write_heartbeat_md(empty)
    with FakeOllama() as fake:
        install_thinking_routes(fake)
        fake.route("HeartbeatDecision", poster)
        env = busy_service_env(fake.url)
        svc, startup_empty = started(empty, env)
        svc.stop()
        svc, startup = started(path.parent.parent, env)
        try:
            assert svc.proc is not None
            window_start = time.time()
            cpu0 = proc_cpu_seconds(svc.proc.pid)
            lat, errors = asyncio.run(dashboards(svc.url, ids, seconds))
            window_end = time.time()
            service_cpu = proc_cpu_seconds(svc.proc.pid) - cpu0
            memory_mb = proc_status(svc.proc.pid)
        finally:
            svc.stop()
    conn = sqlite3.connect(path)
    try:
        rows = conn.execute(
            "SELECT thread_id, MIN(started_at) FROM heartbeat_runs WHERE trigger = 'schedule' "
            "AND started_at >= ? GROUP BY thread_id",
            (window_start - 60,),
        ).fetchall()
    finally:
        conn.close()
    starts = {tid: at for tid, at in rows if tid in due}
    in_window = {tid: at for tid, at in due.items() if at <= window_end - TARGET_LATE_S}
    late = [starts[tid] - at for tid, at in in_window.items() if tid in starts]
    return {
        "startup_s": startup,
        "startup_empty_s": startup_empty,
        "latency_ms": {k: distribution(v, 2) for k, v in sorted(lat.items())},
        "errors": errors,
        "requests": sum(len(v) for v in lat.values()),
        "seconds": seconds,
        "due_in_window": len(in_window),
        "started_of_due": sum(1 for tid in in_window if tid in starts),
        "lateness_s": distribution(late, 3) if late else None,
        "service_memory_mb": memory_mb,
        "service_cpu_pct": round(100 * service_cpu / (window_end - window_start), 1),
        "requests_per_s": round(sum(len(v) for v in lat.values()) / (window_end - window_start), 1),
        "_lat": lat,
    }


def _pooled(lat: dict[str, list[float]], names: tuple[str, ...]) -> dict[str, float]:
    values = [v for name in names for v in lat.get(name, [])]
    return distribution(values, 2) if values else {}


def run(ctx: BenchContext) -> BenchResult:
    result = BenchResult("scale", "Scale: 10,000 threads, 1,000,000 messages")
    mem = memory(ctx)
    api = load(ctx)
    lat = api.pop("_lat")
    result.add(
        "rss_after_simulated_hour",
        mem["rss_final_mb"],
        "MB",
        "<",
        TARGET_RSS_MB,
        note="the four loops at 1 s over the DB, 3,600 simulated passes each (own process)",
    )
    result.add(
        "rss_growth_between_passes",
        mem["rss_growth_mb"],
        "MB",
        "<=",
        TARGET_GROWTH_MB,
        note="RSS after the hour minus RSS after the first ten simulated minutes",
    )
    result.add(
        "db_bytes_added_idle_day",
        mem["db_bytes_after"] - mem["db_bytes_before"],
        "bytes",
        "==",
        0,
        note="the simulated hour and then a day of passes (one a minute); after a checkpoint",
    )
    result.add("writes_in_idle_passes", mem["statements"]["write"], "stmts", note="info")
    result.add(
        "startup_to_health",
        round(api["startup_s"], 2),
        "s",
        "<",
        TARGET_STARTUP_S,
        note=f"uvicorn crt_api:app spawned to /health 200 ({api['startup_empty_s']:.2f} s "
        "on an empty DB)",
    )
    status, pages = _pooled(lat, STATUS), _pooled(lat, THREAD_PAGES)
    result.add(
        "status_p99",
        status.get("p99"),
        "ms",
        "<=",
        TARGET_P99_MS,
        note="loops and heartbeat status: the dashboard's one poll request carries them",
    )
    result.add(
        "thread_pages_p99",
        pages.get("p99"),
        "ms",
        "<=",
        TARGET_P99_MS,
        note="thread list, messages, config, history (every 5th: journal, personality, "
        "50 configs): in the same poll request",
    )
    result.add("dashboard_errors", api["errors"], "", "==", 0, note=f"{api['requests']:,} requests")
    result.add(
        "dashboard_request_rate",
        api["requests_per_s"],
        "req/s",
        note=f"info: the service used {api['service_cpu_pct']}% of a core meanwhile",
    )
    late = api["lateness_s"] or {}
    result.add(
        "due_runs_started",
        api["started_of_due"],
        "runs",
        "==",
        api["due_in_window"],
        note="every heartbeat due in the window started",
    )
    result.add(
        "due_run_start_late_max",
        late.get("max"),
        "s",
        "<=",
        TARGET_LATE_S,
        note="a run's started_at minus its due time, worst of the window",
    )
    result.add(
        "service_rss_after_load",
        round(api["service_memory_mb"].get("VmRSS", 0), 1),
        "MB",
        note="info: the real service",
    )
    result.details = {
        "memory_sim": mem,
        "api": api,
        "status_ms": status,
        "thread_pages_ms": pages,
    }
    return result
