"""Crash safety on several hosts: the SIGKILL soak of test_crash_safety.py with three service
processes on one PostgreSQL session DB and one shared Ledger, itself on PostgreSQL.

Each host has its own data dir and workspace (tests/support/hosts.py); its HEARTBEAT.md names
it, and a run follows the HEARTBEAT.md of the host that runs it (docs/storage.md, "What is per
host"), so the fake model knows which host asks and titles each post with its number and that
host. The hosts' heartbeat loops run (every thread is due every 10 s) and run-now requests are
fired at random hosts; at least ``KILLS`` times one host is SIGKILLed at the phases of
``support.crash_soak.PHASES``:

- ``llm``: a host whose LLM call the fake holds;
- ``pending``: the host whose action sits ``pending`` in the session DB while the Ledger's
  INSERT waits: the fake model, as it answers, takes a lock on the Ledger's ``posts`` table
  from the test process (``PgLedgerLock``); the test sees the action pending and the INSERT
  waiting in ``pg_locks``, and after the kill sees the dead host's post land;
- ``sent``: the host whose post just landed on the Ledger, polled every 2 ms;
- ``random``: the host a run-now was fired at, a random moment later.

The standalone Ledger outlives every kill, so a post held at ``pending`` lands once the lock is
given back; the survivors' recovery (or the victim's own, when it restarts) re-sends the action
with its original key and the Ledger answers with the first result (docs/storage.md, "Recovery
across hosts"). A killed host restarts in the background with the same data dir and port while
the others go on; a phase waits only for two hosts to be up. At the end the same checks as the
one-host soak, and every host did part of the work.
"""

from __future__ import annotations

import os
import random
import re
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row
from support import crash_soak, heartbeat_scripts
from support.fake_ollama import FakeOllama, Reply
from support.hosts import HEARTBEAT_LOOP_ONLY, hosts
from support.ledger_lock import PgLedgerLock
from support.service import Service
from support.waiting import wait_for

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

# The soak's pace is the hosts' restarts (two may be down at once): 1.5 to 3 s a kill on 2 cores.
KILLS = max(20, int(os.environ.get("CRT_TEST_KILLS", "20")))
HOSTS = 3
THREADS = [f"t{i}" for i in range(6)]
HOST_ENV = {**HEARTBEAT_LOOP_ONLY, "CRT_LLM_TIMEOUT_SECONDS": "10"}
HOST_LINE = re.compile(r"my owner's day, from host (\d+)")
TITLE = re.compile(r"^Heartbeat note (\d+) from host (\d+)$")
RESENT = re.compile(r"recovery: \d+ interrupted run\(s\) closed, (\d+) pending action\(s\) re-sent")


def heartbeat_md(i: int) -> str:
    checklist = f"- Share one useful note about my owner's day, from host {i}\n"
    return f"# HEARTBEAT.md\n\n## Checklist\n{checklist}"


class Fleet:
    """The hosts, which of them are up, and their restarts in the background."""

    def __init__(self, started: list[Service]) -> None:
        self.hosts = started
        self._up = set(range(len(started)))
        self._mutex = threading.Lock()
        self._restarts: list[threading.Thread] = []
        self._errors: list[BaseException] = []

    def up(self) -> set[int]:
        with self._mutex:
            if self._errors:
                raise AssertionError(f"a host did not restart: {self._errors[0]}")
            return set(self._up)

    def kill(self, i: int) -> None:
        with self._mutex:
            self._up.discard(i)
        assert self.hosts[i].stop(sig=signal.SIGKILL) == -signal.SIGKILL
        restart = threading.Thread(target=self._restart, args=(i,), name=f"restart-{i}")
        restart.start()
        self._restarts.append(restart)

    def _restart(self, i: int) -> None:
        try:
            self.hosts[i].start(timeout=60)
        except BaseException as exc:  # reported by up()
            with self._mutex:
                self._errors.append(exc)
            return
        with self._mutex:
            self._up.add(i)

    def wait_up(self, n: int) -> set[int]:
        """At least ``n`` hosts up (one to kill, the others going on); which."""

        def enough() -> set[int] | None:
            up = self.up()
            return up if len(up) >= n else None

        found: set[int] = wait_for(enough, timeout=60, interval=0.02)
        return found

    def close(self) -> None:
        """Wait for the restarts under way (none may start a process after the test)."""
        for restart in self._restarts:
            restart.join(90)

    def join(self) -> None:
        """Every host back up."""
        self.close()
        assert self.up() == set(range(len(self.hosts)))


@dataclass(frozen=True)
class Call:
    n: int  # the note's number
    host: int
    held: bool  # asked while the fake held its replies


class TaggedPoster:
    """Answers every heartbeat decision with a new post titled by number and asking host, and
    takes the Ledger lock, when armed, for a host that is up."""

    def __init__(self, fake: FakeOllama, lock: PgLedgerLock, up: Callable[[], set[int]]) -> None:
        self.fake = fake
        self.lock = lock
        self.up = up
        self.calls: list[Call] = []
        self.locked: list[tuple[str, int]] = []  # the title and host of the answer that locked
        self._mutex = threading.Lock()

    def __call__(self, request: dict[str, Any]) -> Reply:
        tag = HOST_LINE.search(heartbeat_scripts.prompt_text(request))
        assert tag is not None, "each host's HEARTBEAT.md is in its prompt"
        host = int(tag.group(1))
        with self._mutex:
            call = Call(len(self.calls) + 1, host, held=not self.fake.release.is_set())
            self.calls.append(call)
        title = f"Heartbeat note {call.n} from host {host}"
        if host in self.up() and self.lock.take():
            self.locked.append((title, host))
        action = {"type": "post", "submolt": "general", "title": title,
                  "content": f"Observation number {call.n} from my owner's thread."}  # fmt: skip
        return Reply(content=heartbeat_scripts.decision([action], f"posted note {call.n}"))


def one(conn: psycopg.Connection[dict[str, Any]], sql: str, *args: object) -> dict[str, Any] | None:
    return conn.execute(sql, args).fetchone()  # type: ignore[arg-type]


@pytest.mark.timeout(240)
def test_three_hosts_sigkilled_at_random_moments_never_post_twice(
    tmp_path: Path, database: str, ledger_database: str, fake_ollama: FakeOllama
) -> None:
    rng = random.Random(int(os.environ.get("CRT_TEST_SEED", "5")))
    lock = PgLedgerLock(ledger_database)
    env = {**HOST_ENV, "CRT_OLLAMA_HOST": fake_ollama.url}
    kills: Counter[str] = Counter()
    clients: list[threading.Thread] = []
    with (
        hosts(
            tmp_path, database, HOSTS, env, ledger_database_url=ledger_database,
            heartbeat_md=heartbeat_md,
        ) as (_, started),
        psycopg.connect(database, autocommit=True, row_factory=dict_row) as session,
        psycopg.connect(ledger_database, autocommit=True, row_factory=dict_row) as ledger,
    ):  # fmt: skip
        fleet = Fleet(started)
        poster = TaggedPoster(fake_ollama, lock, fleet.up)
        heartbeat_scripts.install(fake_ollama, poster)
        crash_soak.configure(started[0].url, THREADS)

        def fire(up: set[int]) -> int:
            """run-now of a random thread at a random host that is up; that host."""
            host = rng.choice(sorted(up))
            clients.append(crash_soak.fire_run_now(started[host].url, rng.choice(THREADS)))
            return host

        def held_call(since: int) -> list[int]:
            up = fleet.up()
            return [c.host for c in poster.calls[since:] if c.held and c.host in up]

        def pending_post(title: str) -> bool:
            return one(session, "SELECT id FROM heartbeat_actions WHERE state = 'pending' "
                       "AND payload_json::jsonb ->> 'title' = %s", title) is not None  # fmt: skip

        def insert_waits() -> bool:
            """A Ledger write is waiting for the lock on ``posts`` (it holds the others back)."""
            sql = ("SELECT 1 AS w FROM pg_locks l JOIN pg_class c ON c.oid = l.relation "
                   "WHERE c.relname = 'posts' AND NOT l.granted")  # fmt: skip
            return one(ledger, sql) is not None

        def landed(title: str) -> bool:
            return one(ledger, "SELECT id FROM posts WHERE title = %s", title) is not None

        def new_post(after_seq: int, first_n: int) -> list[int]:
            up = fleet.up()
            rows = ledger.execute("SELECT title FROM posts WHERE seq > %s", (after_seq,))
            numbered = [TITLE.match(r["title"]) for r in rows.fetchall()]
            return [int(m[2]) for m in numbered if m and int(m[1]) >= first_n and int(m[2]) in up]

        soak_started = time.monotonic()
        waited_for_hosts = 0.0  # of the soak's time: for a second host to be back up
        try:
            for phase in crash_soak.phase_order(KILLS, rng):
                waiting = time.monotonic()
                up = fleet.wait_up(2)
                waited_for_hosts += time.monotonic() - waiting
                if phase == "llm":
                    since = len(poster.calls)
                    fake_ollama.release.clear()
                    fire(up)
                    victim = wait_for(partial(held_call, since), timeout=20)[0]
                elif phase == "pending":
                    poster.locked.clear()
                    lock.armed.set()
                    fire(up)
                    title, victim = wait_for(lambda: poster.locked, timeout=20)[0]
                    wait_for(partial(pending_post, title), timeout=20)
                    wait_for(insert_waits, timeout=20)
                    assert not landed(title), "the victim's post is held back by the lock"
                elif phase == "sent":
                    row = one(ledger, "SELECT COALESCE(MAX(seq), 0) AS seq FROM posts")
                    assert row is not None
                    first_n = len(poster.calls) + 1
                    fire(up)
                    after = partial(new_post, row["seq"], first_n)
                    victim = wait_for(after, timeout=20, interval=0.002)[0]
                else:
                    victim = fire(up)
                    # A random moment is the point here, not waiting for something to happen.
                    threading.Event().wait(rng.uniform(0.0, 0.4))
                fleet.kill(victim)
                kills[phase] += 1
                lock.release()
                fake_ollama.release.set()
                if phase == "pending":
                    # The Ledger finishes the dead host's request: its post lands, unrecorded.
                    wait_for(partial(landed, title), timeout=20)

            # -- after the last kill: every host back, recovery run, every thread works ------
            fleet.join()
            soak_seconds = time.monotonic() - soak_started
        finally:
            lock.release()
            fake_ollama.release.set()
            fleet.close()
        for client in clients:
            client.join(10)
        crash_soak.every_thread_runs_again([h.url for h in started], THREADS)
        for host in started:
            host.stop()  # graceful (the loops are stopped: no run is in flight)
        resent = sum(int(n) for h in started for n in RESENT.findall(h.log()))
        runs = session.execute("SELECT outcome, reason FROM heartbeat_runs").fetchall()
        actions = session.execute(
            "SELECT state, ledger_id, payload_json::jsonb ->> 'title' AS title, error "
            "FROM heartbeat_actions WHERE type = 'post'"
        ).fetchall()
        posts = ledger.execute("SELECT id, title FROM posts").fetchall()
    figures = crash_soak.check_after_kills("crash safety, 3 hosts", kills, runs, actions, posts)
    calls = Counter(c.host for c in poster.calls)
    posted = Counter(int(m[2]) for p in posts if (m := TITLE.match(p["title"])))
    print(
        f"crash safety, 3 hosts: decisions per host {[calls[i] for i in range(HOSTS)]}, "
        f"posts per host {[posted[i] for i in range(HOSTS)]}, {figures['posts']} posts, "
        f"{resent} pending actions re-sent by recovery; "
        f"{sum(kills.values())} kills and restarts in {soak_seconds:.1f} s "
        f"({waited_for_hosts:.1f} s of it waiting for a restart)"
    )
    assert all(posted[i] > 0 for i in range(HOSTS)), f"a host posted nothing: {posted}"
    # Each ``pending`` kill left its victim's action pending while its post waited on the lock:
    # some host's recovery re-sent it (the Ledger answering with the post that landed).
    assert resent >= kills["pending"], (resent, kills)
    assert sum(posted.values()) == len(posts), "every post names the host that asked for it"
