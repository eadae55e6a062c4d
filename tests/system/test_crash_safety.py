"""Crash safety: SIGKILL the service while heartbeats post, restart, repeat.

The real service (``uvicorn crt_api:app``) runs against a fake Ollama, with the heartbeat loop on
for a few threads and run-now requests fired at it. It is killed with SIGKILL at chosen and at
random moments, at least ``KILLS`` times:

- ``llm``: while a heartbeat's LLM call is in flight (the fake holds its reply);
- ``pending``: between the outbox write and the Ledger call. The fake model, as it answers,
  takes the write lock of the Ledger's own database file, so the Ledger's POST waits on SQLite's
  busy timeout while the action sits ``pending`` in the session DB; the test sees the pending row
  (reading the session DB read-only) and kills;
- ``sent``: as soon as a new post lands in the Ledger's database, before the service has
  recorded it;
- ``random``: a random moment after a run-now was fired.

The embedded Ledger dies with the process; its data (``ledger.db``) and the session DB survive,
and each restart serves the same Ledger on the same ``CRT_LEDGER_PORT``. At the end: no post on
the Ledger twice, no action left ``pending``, every post matched by exactly one ``sent`` action,
no run left ``running``, and every thread can run again at once.
"""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import threading
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support import crash_soak, heartbeat_scripts
from support.fake_ollama import FakeOllama, Reply
from support.hosts import HEARTBEAT_MD
from support.ledger_lock import LedgerLock
from support.service import Service
from support.waiting import wait_for

from crt_loops.core import identity
from crt_loops.db import heartbeat_claims, heartbeats
from crt_loops.db.session import SessionDB
from crt_loops.heartbeat.deps import RunnerDeps, RunnerOptions
from crt_loops.heartbeat.executor import HeartbeatRunner
from crt_loops.llm.client import DisabledLLM

# Each kill costs a cold service start (about 3 s on 2 cores); CRT_TEST_KILLS raises it for a soak.
KILLS = max(24, int(os.environ.get("CRT_TEST_KILLS", "24")))
THREADS = ["default", "t1", "t2", "t3"]


def ro(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
    conn.row_factory = sqlite3.Row
    return conn


@pytest.fixture
def rig(
    tmp_path: Path, fake_ollama: FakeOllama
) -> Iterator[tuple[Service, FakeOllama, LedgerLock]]:
    lock = LedgerLock(tmp_path / "data" / "ledger.db")

    def decide(request: dict[str, Any]) -> Reply:
        reply = heartbeat_scripts.poster(request)
        lock.take()  # armed: the Ledger's next write waits while the action is pending
        return reply

    heartbeat_scripts.install(fake_ollama, decide)
    (tmp_path / "HEARTBEAT.md").write_text(HEARTBEAT_MD, encoding="utf-8")
    svc = Service(
        tmp_path,
        env={
            "CRT_HEARTBEAT_LOOP_ENABLED": "true",
            "CRT_HEARTBEAT_LOOP_SECONDS": "1",
            "CRT_OLLAMA_HOST": fake_ollama.url,
            "CRT_LLM_TIMEOUT_SECONDS": "10",
            "CRT_LEDGER_POST_COOLDOWN_SECONDS": "0",
            "CRT_LEDGER_REQUESTS_PER_MINUTE": "100000",
            "CRT_REFLECTION_LOOP_ENABLED": "false",
            "CRT_PERSONALITY_LOOP_ENABLED": "false",
            "CRT_JOURNAL_SELF_REPLY_LOOP_ENABLED": "false",
        },
    )
    try:
        yield svc, fake_ollama, lock
    finally:
        lock.release()
        fake_ollama.release.set()
        svc.stop()


def count(path: Path, sql: str) -> int:
    with ro(path) as conn:
        return int(conn.execute(sql).fetchone()[0])


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_sigkill_at_random_moments_never_posts_twice_or_loses_an_action(
    rig: tuple[Service, FakeOllama, LedgerLock],
) -> None:
    svc, fake, lock = rig
    session_db = svc.tmp / "data" / "crt.db"
    ledger_db = svc.tmp / "data" / "ledger.db"
    rng = random.Random(int(os.environ.get("CRT_TEST_SEED", "5")))

    svc.start()
    crash_soak.configure(svc.url, THREADS)

    kills: Counter[str] = Counter()
    for phase in crash_soak.phase_order(KILLS, rng):
        if svc.proc is None:
            svc.start()
        client: threading.Thread | None = None
        thread_id = rng.choice(THREADS)
        if phase == "llm":
            fake.release.clear()
            client = crash_soak.fire_run_now(svc.url, thread_id)
            wait_for(lambda: fake.in_flight > 0, timeout=15)
        elif phase == "pending":
            lock.armed.set()
            client = crash_soak.fire_run_now(svc.url, thread_id)
            wait_for(
                lambda: (
                    lock.held
                    and count(
                        session_db, "SELECT COUNT(*) FROM heartbeat_actions WHERE state = 'pending'"
                    )
                    > 0
                ),
                timeout=15,
            )
        elif phase == "sent":
            before = count(ledger_db, "SELECT COUNT(*) FROM posts")
            client = crash_soak.fire_run_now(svc.url, thread_id)
            wait_for(
                lambda before=before: count(ledger_db, "SELECT COUNT(*) FROM posts") > before,
                timeout=15,
                interval=0.002,
            )
        else:
            client = crash_soak.fire_run_now(svc.url, thread_id)
            # A random moment is the point here, not waiting for something to happen.
            threading.Event().wait(rng.uniform(0.0, 0.4))
        assert svc.stop(sig=signal.SIGKILL) == -signal.SIGKILL
        kills[phase] += 1
        lock.release()
        fake.release.set()
        client.join(10)

    # -- after the last kill: restart, let recovery run, and every thread works again --------
    svc.start()
    crash_soak.every_thread_runs_again([svc.url], THREADS)
    svc.stop()  # graceful: runs in flight finish and are recorded

    with ro(session_db) as conn:
        runs = conn.execute("SELECT outcome, reason FROM heartbeat_runs").fetchall()
        actions = conn.execute(
            "SELECT state, ledger_id, json_extract(payload_json, '$.title') AS title, error "
            "FROM heartbeat_actions WHERE type = 'post'"
        ).fetchall()
    with ro(ledger_db) as conn:
        posts = conn.execute("SELECT id, title FROM posts").fetchall()
    crash_soak.check_after_kills("crash safety", kills, runs, actions, posts)


def test_recovery_closes_runs_of_a_dead_process_that_had_our_pid(tmp_path: Path) -> None:
    """A restarted container often gets the pid its previous incarnation had (PID 1): the dead
    holder's runs, leases and pending actions must still be recovered, not taken as ours."""
    db = SessionDB(tmp_path / "crt.db")
    try:
        dead = f"{identity.HOSTNAME}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        assert heartbeat_claims.take_thread_lease(db, "default", dead, ttl=3600)
        heartbeats.start_run(
            db, run_id="r1", thread_id="default", trigger="schedule", dry_run=False, now=db.clock()
        )
        runner = HeartbeatRunner(
            RunnerDeps(
                db=db,
                llm=DisabledLLM("http://127.0.0.1:9", "m"),
                ledger=None,
                heartbeat_md=tmp_path / "HEARTBEAT.md",
            ),
            RunnerOptions(
                agent_name="crt", default_model="m", default_timezone=None, window=5, llm_timeout=10
            ),
        )
        result = runner.recover()
        assert result["interrupted"] == 1
        run = heartbeats.get_run(db, "r1")
        assert run is not None and (run.outcome, run.reason) == ("failed", "interrupted")
        assert heartbeat_claims.lease_owner(db, "default") is None, (
            "the dead holder's lease is released"
        )
    finally:
        db.close()


def test_recovery_releases_a_dead_claim_and_makes_its_thread_due_soon(tmp_path: Path) -> None:
    """Killed between claiming a due thread and starting its run: no run row to close, but the
    claim (a lease, and the slot hidden until the lease would expire) must not outlive it."""
    db = SessionDB(tmp_path / "crt.db")
    try:
        now = db.clock()
        with db.write() as tx:
            tx.execute(
                "UPDATE thread_sessions SET heartbeat_config_json = ?, heartbeat_next_due = ? "
                "WHERE thread_id = 'default'",
                ('{"enabled": true, "every_seconds": 1800}', now - 1),
            )
        dead = f"{identity.HOSTNAME}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        claimed, busy = heartbeat_claims.claim_due(db, now=now, owner=dead, ttl=3600, limit=1)
        assert (claimed, busy) == (["default"], [])
        hb = heartbeats.get_thread_heartbeat(db, "default")
        assert hb is not None and hb.next_due == now + 3600  # hidden from other claimers
        runner = HeartbeatRunner(
            RunnerDeps(
                db=db,
                llm=DisabledLLM("http://127.0.0.1:9", "m"),
                ledger=None,
                heartbeat_md=tmp_path / "HEARTBEAT.md",
            ),
            RunnerOptions(
                agent_name="crt", default_model="m", default_timezone=None, window=5, llm_timeout=10
            ),
        )
        runner.recover()
        assert heartbeat_claims.lease_owner(db, "default") is None
        hb = heartbeats.get_thread_heartbeat(db, "default")
        assert hb is not None and hb.next_due is not None
        assert hb.next_due <= db.clock() + 30
    finally:
        db.close()
