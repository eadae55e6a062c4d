"""What every benchmark shares: figures and targets, seeding, counting, timing, machine info.

A benchmark module exposes ``run(ctx: BenchContext) -> BenchResult``. A :class:`Figure` is one
measured number with its unit and, when it has one, its target (``op`` and ``limit``); figures
without a target are reported for information. Seeding writes straight to SQLite through the
real schema (``SessionDB`` migrations) because going through the API would make seeding, not
the thing measured, dominate the run; every benchmark then checks the seeded state is what the
code itself would have produced (e.g. "has_work() is False" for processed history).
"""

from __future__ import annotations

import json
import logging
import os
import platform
import random
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
TESTS = ROOT / "tests"
if str(TESTS) not in sys.path:  # the test support package lives there
    sys.path.insert(0, str(TESTS))
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from crt_loops.db.session import SessionDB, dumps  # noqa: E402
from crt_loops.heartbeat.config import HeartbeatConfig, config_to_json  # noqa: E402
from crt_loops.heartbeat.instructions import template_text  # noqa: E402
from crt_loops.settings import Settings  # noqa: E402

LOG_FORMAT = "%(asctime)s %(levelname)s [%(threadName)s] %(name)s: %(message)s"
CLK_TCK = os.sysconf("SC_CLK_TCK")


# -- figures and results -------------------------------------------------------------------


@dataclass
class Figure:
    """One measured number. ``op``/``limit`` make it a target; ``passed`` is then computed."""

    name: str
    value: float | int | bool | None
    unit: str = ""
    op: str | None = None  # "<=", ">=", "==", "<"
    limit: float | int | bool | None = None
    note: str = ""

    @property
    def passed(self) -> bool | None:
        if self.op is None:
            return None
        if self.value is None:
            return False
        v, t = self.value, self.limit
        assert t is not None
        if self.op == "<=":
            return bool(v <= t)
        if self.op == "<":
            return bool(v < t)
        if self.op == ">=":
            return bool(v >= t)
        if self.op == "==":
            return bool(v == t)
        raise ValueError(f"unknown op {self.op!r}")

    @property
    def target(self) -> str:
        return (
            ""
            if self.op is None
            else f"{self.op} {fmt(self.limit)}{(' ' + self.unit) if self.unit else ''}"
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "value": self.value,
            "unit": self.unit,
            "target": None if self.op is None else {"op": self.op, "limit": self.limit},
            "passed": self.passed,
            "note": self.note,
        }


@dataclass
class BenchResult:
    name: str
    title: str
    figures: list[Figure] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)
    duration_s: float = 0.0
    error: str | None = None

    def add(self, *args: Any, **kwargs: Any) -> Figure:
        fig = Figure(*args, **kwargs)
        self.figures.append(fig)
        return fig

    @property
    def passed(self) -> bool:
        return self.error is None and all(f.passed is not False for f in self.figures)

    def as_dict(self) -> dict[str, Any]:
        return {
            "title": self.title,
            "passed": self.passed,
            "duration_s": round(self.duration_s, 2),
            "error": self.error,
            "figures": [f.as_dict() for f in self.figures],
            "details": self.details,
        }


@dataclass
class BenchContext:
    """Per-run options: a scratch directory and a quick mode for smoke runs."""

    workdir: Path
    quick: bool = False
    verbose: bool = False

    def scratch(self, name: str) -> Path:
        path = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=self.workdir))
        return path


def fmt(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if value == 0:
            return "0"
        if abs(value) >= 100:
            return f"{value:,.0f}"
        if abs(value) >= 1:
            return f"{value:.2f}"
        return f"{value:.3f}"
    return str(value)


def percentile(values: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile (pct in 0..100) of a non-empty sequence."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = max(0, min(len(ordered) - 1, round(pct / 100 * (len(ordered) - 1))))
    return float(ordered[k])


def distribution(values: Sequence[float], digits: int = 3) -> dict[str, float]:
    return {
        "n": len(values),
        "min": round(min(values), digits),
        "p50": round(percentile(values, 50), digits),
        "p95": round(percentile(values, 95), digits),
        "p99": round(percentile(values, 99), digits),
        "max": round(max(values), digits),
        "mean": round(statistics.fmean(values), digits),
    }


# -- machine -------------------------------------------------------------------------------


def machine_info() -> dict[str, Any]:
    cpu_model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_kb = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_kb = int(line.split()[1])
    except OSError:
        pass
    try:
        load = os.getloadavg()
    except OSError:
        load = None
    return {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "cpu_model": cpu_model,
        "mem_total_mb": mem_kb // 1024 if mem_kb else None,
        "sqlite": sqlite3.sqlite_version,
        "loadavg_at_start": load,
    }


def git_info() -> dict[str, Any]:
    """Read-only: the commit measured and whether the tree had local changes."""

    def run(*args: str) -> str:
        try:
            return subprocess.run(
                ["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=10, check=False
            ).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""

    return {"commit": run("rev-parse", "HEAD"), "dirty": bool(run("status", "--porcelain"))}


# -- CPU -----------------------------------------------------------------------------------


def proc_cpu_seconds(pid: int) -> float:
    """utime + stime of a process (all its threads), from /proc/<pid>/stat."""
    raw = Path(f"/proc/{pid}/stat").read_text()
    fields = raw[raw.rindex(")") + 2 :].split()
    utime, stime = int(fields[11]), int(fields[12])
    return (utime + stime) / CLK_TCK


def thread_cpu_seconds() -> float:
    return time.thread_time()


# -- logging -------------------------------------------------------------------------------


@contextmanager
def service_logging(path: Path, level: int = logging.INFO) -> Iterator[None]:
    """Log like the service does (INFO, thread names), into a file instead of the console."""
    root = logging.getLogger()
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    old_level = root.level
    old_handlers = list(root.handlers)
    for h in old_handlers:
        root.removeHandler(h)
    root.addHandler(handler)
    root.setLevel(level)
    logging.getLogger("httpx").setLevel(logging.WARNING)
    try:
        yield
    finally:
        root.removeHandler(handler)
        handler.close()
        for h in old_handlers:
            root.addHandler(h)
        root.setLevel(old_level)


# -- settings ------------------------------------------------------------------------------


def make_settings(tmp: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "data_dir": tmp / "data",
        "workspace": tmp,
        "ollama_host": "http://127.0.0.1:9",
        "ledger_port": 0,
        "llm_timeout_seconds": 30,
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


def busy_service_env(llm_url: str) -> dict[str, str]:
    """The service's env for a benchmark that keeps every loop busy: all four loops at 1 s, four
    heartbeats at once, and the Ledger's cooldowns and caps out of the way."""
    return {
        "CRT_OLLAMA_HOST": llm_url,
        "CRT_REFLECTION_LOOP_SECONDS": "1",
        "CRT_PERSONALITY_LOOP_SECONDS": "1",
        "CRT_JOURNAL_SELF_REPLY_LOOP_SECONDS": "1",
        "CRT_HEARTBEAT_LOOP_ENABLED": "true",
        "CRT_HEARTBEAT_LOOP_SECONDS": "1",
        "CRT_HEARTBEAT_MAX_CONCURRENCY": "4",
        "CRT_LEDGER_POST_COOLDOWN_SECONDS": "0",
        "CRT_LEDGER_COMMENT_COOLDOWN_SECONDS": "0",
        "CRT_LEDGER_COMMENTS_PER_DAY": "1000000",
        "CRT_LEDGER_REQUESTS_PER_MINUTE": "1000000",
    }


def write_heartbeat_md(workspace: Path) -> Path:
    workspace.mkdir(parents=True, exist_ok=True)
    target = workspace / "HEARTBEAT.md"
    target.write_text(template_text())
    return target


# -- text ----------------------------------------------------------------------------------

_SENTENCES = [
    "hi there",
    "thanks!",
    "ok cool",
    "I started a new job today and I'm nervous about meeting the team.",
    "My boss asked me to lead the migration project, which is exciting but stressful.",
    "We went hiking on Saturday; the weather was perfect and the view was great.",
    "Can you help me plan a budget? My savings are not growing and the mortgage is due.",
    "I've decided to learn Rust this year, starting with the book and small exercises.",
    "My sister is getting married in June and I have to give a speech. Any advice?",
    "The doctor said the test results look fine, which is such a relief.",
    "What do you think about moving to a new city for a better salary?",
    "I cooked a curry tonight, a bit too spicy but everyone liked it.",
    "Honestly I feel overwhelmed: the deadline is Friday and nothing works yet!",
    "Could you explain how SQLite handles write-ahead logging and checkpoints?",
    "Our cat knocked the plant over again. Classic.",
    "I'm thinking about quitting my job to start a small bakery with a friend.",
    "Please keep answers short, bullet points are fine.",
    "We adopted a dog from the shelter, his name is Biscuit and he is very shy.",
    "My father was taken to the hospital last night, we are waiting for news.",
    "I finally finished the marathon training plan; race day is in two weeks.",
    "Remind me why interest rates affect house prices so much?",
    "lol that's funny",
    "Good morning! Coffee first, then the quarterly report.",
    "I am really proud of my daughter, she was accepted to the university she wanted.",
]

_ASSISTANT = [
    "That sounds like a big step; how are you feeling about it now?",
    "Here is a short plan: list fixed costs, set a savings target, review monthly.",
    "Congratulations! Tell me more when you can.",
    "I'm sorry to hear that. I'm here if you want to talk it through.",
    "WAL lets readers continue while one writer appends to the log; a checkpoint copies it back.",
    "A good speech is short, personal and ends with a toast.",
]


def message_text(rng: random.Random, role: str) -> str:
    if role == "assistant":
        return " ".join(rng.choice(_ASSISTANT) for _ in range(rng.randint(1, 3)))
    n = rng.choice([1, 1, 1, 2, 2, 3, 5])
    return " ".join(rng.choice(_SENTENCES) for _ in range(n))


# -- seeding -------------------------------------------------------------------------------


def thread_ids(n: int, prefix: str = "t") -> list[str]:
    return [f"{prefix}{i:06d}" for i in range(n)]


def seed_threads(
    db: SessionDB,
    ids: Sequence[str],
    *,
    now: float,
    heartbeat: HeartbeatConfig | None = None,
    next_due: Callable[[int, str], float | None] | None = None,
    last_run: float | None = None,
) -> None:
    """Insert threads (optionally with a heartbeat config and schedule) in one transaction."""
    cfg = config_to_json(heartbeat) if heartbeat is not None else None
    rows = []
    for i, tid in enumerate(ids):
        due = next_due(i, tid) if next_due is not None and heartbeat is not None else None
        rows.append((tid, f"thread {tid}", now, now, cfg, due, last_run))
    with db.write() as tx:
        tx.executemany(
            "INSERT INTO thread_sessions (thread_id, title, created_at, updated_at, "
            "heartbeat_config_json, heartbeat_next_due, heartbeat_last_run) "
            "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT(thread_id) DO NOTHING",
            rows,
        )


def seed_messages(
    db: SessionDB,
    ids: Sequence[str],
    per_thread: int,
    *,
    now: float,
    rng: random.Random,
    scored: bool = False,
) -> int:
    """Append ``per_thread`` alternating user/assistant messages to each thread (unscored unless
    ``scored``). Returns the number inserted. Interleaved across threads, like real traffic."""
    rows = []
    for k in range(per_thread):
        role = "user" if k % 2 == 0 else "assistant"
        for tid in ids:
            content = message_text(rng, role)
            if scored:
                rows.append((tid, role, content, now, 3, "seeded", "heuristic"))
            else:
                rows.append((tid, role, content, now, None, None, None))
    with db.write() as tx:
        tx.executemany(
            "INSERT INTO messages (thread_id, role, content, created_at, importance, "
            "importance_reason, scored_by) VALUES (?, ?, ?, ?, ?, ?, ?)",
            rows,
        )
    return len(rows)


def seed_processed_history(db: SessionDB, ids: Sequence[str], *, now: float) -> None:
    """Mark every thread fully processed by the three thinking loops, as a long-running service
    leaves them: scored messages, one reflection answered by a complete self-reply chain (3, the
    cap), a personality profile, and every loop's per-thread and global watermark at the top."""
    from crt_loops.mind.personality import default_profile

    profile = default_profile()
    with db.write() as tx:
        for tid in ids:
            parent = tx.execute(
                "INSERT INTO journal_entries (thread_id, entry_type, title, body, created_at, "
                "meta_json) VALUES (?, 'reflection', 'Reflection', 'I notice things.', ?, "
                '\'{"source":"heuristic"}\') RETURNING id',
                (tid, now - 7200),
            ).fetchone()[0]
            for depth in range(1, 4):
                parent = tx.execute(
                    "INSERT INTO journal_entries (thread_id, entry_type, title, body, created_at, "
                    "reply_to, meta_json) VALUES (?, 'self_reply', 'Re: Reflection', "
                    "'One more thought.', ?, ?, ?) RETURNING id",
                    (
                        tid,
                        now - 7200 + depth * 1800,
                        parent,
                        dumps({"kind": "self_reply", "depth": depth}),
                    ),
                ).fetchone()[0]
            tx.execute(
                "UPDATE thread_sessions SET last_self_reply_at = ? WHERE thread_id = ?",
                (now - 1800, tid),
            )
            tx.execute(
                "INSERT INTO personality_profiles (thread_id, profile_json, version, updated_at) "
                "VALUES (?, ?, 1, ?) ON CONFLICT(thread_id) DO NOTHING",
                (tid, dumps(profile), now),
            )
        tx.execute(
            "INSERT INTO reflection_state (thread_id, last_reflection_message_id, "
            "last_reflection_at) SELECT thread_id, MAX(id), ? FROM messages GROUP BY thread_id "
            "ON CONFLICT(thread_id) DO UPDATE SET last_reflection_message_id = "
            "excluded.last_reflection_message_id",
            (now,),
        )
        for loop, table in (
            ("reflection", "messages"),
            ("personality", "messages"),
            ("journal_self_reply", "journal_entries"),
        ):
            tx.execute(
                f"INSERT INTO loop_watermarks (loop, thread_id, message_id, updated_at) "
                f"SELECT ?, thread_id, MAX(id), ? FROM {table} GROUP BY thread_id "
                "ON CONFLICT(loop, thread_id) DO UPDATE SET message_id = excluded.message_id",
                (loop, now),
            )
            high = tx.execute(f"SELECT COALESCE(MAX(id), 0) FROM {table}").fetchone()[0]
            tx.execute(
                "INSERT INTO loop_state (loop, watermark, updated_at) VALUES (?, ?, ?) "
                "ON CONFLICT(loop) DO UPDATE SET watermark = excluded.watermark",
                (loop, high, now),
            )


# -- counting queries ----------------------------------------------------------------------


class QueryCounter:
    """Counts the SQL statements a connection runs (``set_trace_callback``)."""

    def __init__(self) -> None:
        self.statements: list[str] = []
        self.enabled = False

    def __call__(self, sql: str) -> None:
        if self.enabled:
            self.statements.append(sql)

    @contextmanager
    def counting(self) -> Iterator[list[str]]:
        start = len(self.statements)
        self.enabled = True
        taken: list[str] = []
        try:
            yield taken
        finally:
            self.enabled = False
            taken.extend(self.statements[start:])

    def attach(self, conn: sqlite3.Connection) -> None:
        conn.set_trace_callback(self)


def split_statements(statements: Sequence[str]) -> dict[str, int]:
    """Tally by kind: reads (SELECT/WITH), writes (INSERT/UPDATE/DELETE), transaction control."""
    out = {"select": 0, "write": 0, "txn": 0, "other": 0}
    for sql in statements:
        head = sql.lstrip().split(None, 1)[0].upper() if sql.strip() else ""
        if head in ("SELECT", "WITH"):
            out["select"] += 1
        elif head in ("INSERT", "UPDATE", "DELETE", "REPLACE"):
            out["write"] += 1
        elif head in ("BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE"):
            out["txn"] += 1
        else:
            out["other"] += 1
    return out


# -- misc ----------------------------------------------------------------------------------


def wait_until(predicate: Callable[[], Any], timeout: float, interval: float = 0.02) -> Any:
    deadline = time.monotonic() + timeout
    pause = threading.Event()
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"condition not met within {timeout}s")
        pause.wait(interval)


def write_json(path: Path, data: Any) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=False, default=str) + "\n")
    tmp.replace(path)
