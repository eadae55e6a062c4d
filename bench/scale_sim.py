"""An hour, then a day, of the four loops' passes on a simulated clock, in a process of its own.

Run by bench/scale.py as ``python -m bench.scale_sim DB WORKSPACE SECONDS DAY_MINUTES``; prints
one JSON object. The process opens the session DB (10,000 processed threads, 1,000,000
messages), builds the four loops with ``build_loops`` at 1 s as the service does, and calls each
loop's ``tick()`` once per simulated second for ``SECONDS`` seconds, the clock advanced by hand
(so an hour of passes takes seconds, and nothing sleeps). RSS comes from ``/proc/self/status``
after the first pass and every ten simulated minutes. Then ``DAY_MINUTES`` more rounds, one a
simulated minute (a day at 1,440), catch what runs daily (retention); the DB's bytes are taken
before and after both, each time after a WAL checkpoint, and every statement is counted with
``set_trace_callback``, so "an idle day adds nothing" is measured, not assumed.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from pathlib import Path
from typing import Any

from bench.common import make_settings, split_statements

CHECKPOINT_EVERY = 600  # simulated seconds between RSS samples


class Tally:
    """Counts statements by kind as they run (``set_trace_callback``), keeping only a few
    samples: storing every statement of an hour, as QueryCounter does, grew this very process
    by ~1 MB every ten simulated minutes."""

    def __init__(self) -> None:
        self.kinds = {"select": 0, "write": 0, "txn": 0, "other": 0}
        self.writes: set[str] = set()

    def __call__(self, sql: str) -> None:
        kind = next(iter(k for k, v in split_statements([sql]).items() if v))
        self.kinds[kind] += 1
        if kind == "write" and len(self.writes) < 10:
            self.writes.add(" ".join(sql.split())[:100])


class SimClock:
    """A clock that moves only when told to."""

    def __init__(self, start: float) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def db_bytes(db: Any, path: Path) -> int:
    """Main file plus WAL, after a checkpoint has moved the WAL's pages into the file."""
    db.conn().execute("PRAGMA wal_checkpoint(TRUNCATE)")
    wal = path.with_name(path.name + "-wal")
    return path.stat().st_size + (wal.stat().st_size if wal.exists() else 0)


def simulate(db_path: Path, workspace: Path, seconds: int, day_minutes: int) -> dict[str, Any]:
    from crt_loops.db.session import SessionDB
    from crt_loops.heartbeat.deps import from_settings
    from crt_loops.heartbeat.executor import HeartbeatRunner
    from crt_loops.llm.client import DisabledLLM
    from crt_loops.loops.build import build_loops

    clock = SimClock(time.time())
    one_second = {
        f"{name}_loop_seconds": 1
        for name in ("reflection", "personality", "journal_self_reply", "heartbeat")
    }
    settings = make_settings(workspace, heartbeat_loop_enabled=True, **one_second)
    db = SessionDB(db_path, clock=clock)
    try:
        llm = DisabledLLM(settings.ollama_host, settings.ollama_model)
        deps, options = from_settings(settings, db=db, llm=llm, ledger=None)
        deps = dataclasses.replace(deps, clock=clock)

        def runner_factory() -> HeartbeatRunner:
            return HeartbeatRunner(deps, options)

        loops = build_loops(
            db, settings=settings, llm=llm, heartbeat_runner_factory=runner_factory, clock=clock
        )
        bytes_before = db_bytes(db, db_path)
        cpu0 = time.process_time()
        for loop in loops:  # the first pass: lazy setup, statements prepared
            loop.tick()
        samples = [{"t": 0, "rss_mb": round(rss_mb(), 2)}]
        tally = Tally()
        db.conn().set_trace_callback(tally)
        for second in range(1, seconds + 1):
            clock.advance(1)
            for loop in loops:
                loop.tick()
            if second % CHECKPOINT_EVERY == 0:
                samples.append({"t": second, "rss_mb": round(rss_mb(), 2)})
        hour_cpu = time.process_time() - cpu0
        for _ in range(day_minutes):
            clock.advance(60)
            for loop in loops:
                loop.tick()
        db.conn().set_trace_callback(None)
        bytes_after = db_bytes(db, db_path)
        failures = {loop.name: loop.failures for loop in loops}
        errors = {loop.name: loop.last_error for loop in loops if loop.last_error}
    finally:
        db.close()
    return {
        "simulated_seconds": seconds,
        "day_rounds": day_minutes,
        "rss_samples": samples,
        "rss_final_mb": samples[-1]["rss_mb"],
        # From the first ten-minute sample on: the first passes warm caches (statements, pages).
        "rss_growth_mb": round(
            samples[-1]["rss_mb"] - samples[min(1, len(samples) - 1)]["rss_mb"], 2
        ),
        "hour_cpu_s": round(hour_cpu, 2),
        "statements": tally.kinds,
        "write_samples": sorted(tally.writes),
        "db_bytes_before": bytes_before,
        "db_bytes_after": bytes_after,
        "failures": failures,
        "errors": errors,
    }


if __name__ == "__main__":
    db_arg, ws_arg, seconds_arg, day_arg = sys.argv[1:5]
    out = simulate(Path(db_arg), Path(ws_arg), int(seconds_arg), int(day_arg))
    print(json.dumps(out))
