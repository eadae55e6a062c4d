"""Several hosts, one agent: three service processes on one PostgreSQL database.

Each host has its own data dir and workspace and shares ``CRT_DATABASE_URL`` and one Ledger.
Twelve threads heartbeat every 10 s (the shortest interval a config accepts) for a minute, with
a model that takes half a second; the test counts what the fake Ollama was asked, the runs, the
outbox and the Ledger's posts: every slot runs once, on one host, every host does part of the
work, and no post lands twice, also when one host is SIGKILLed in the middle of a run.
"""

from __future__ import annotations

import itertools
import re
import signal
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from psycopg.rows import dict_row
from support import heartbeat_scripts, llm_scripts
from support.fake_ollama import FakeOllama, Reply
from support.hosts import HEARTBEAT_LOOP_ONLY, hosts
from support.service import Service
from support.waiting import wait_for

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

HOSTS = 3
THREADS = [f"t{i:02d}" for i in range(12)]
EVERY = 10
WINDOW = 60  # seconds the three hosts share the heartbeats
LLM_SECONDS = 0.5
HOST_ENV = {
    **HEARTBEAT_LOOP_ONLY,
    # A dead host's lease expires 3 + 2 s after its claim; another host then recovers the run.
    "CRT_LLM_TIMEOUT_SECONDS": "3",
    "CRT_HEARTBEAT_LEASE_MARGIN_SECONDS": "2",
}
RECOVERED = re.compile(r"recovery: [1-9]\d* interrupted run")
DUE_LINE = re.compile(r"\[HEARTBEAT_LOOP\] Heartbeat due for thread: (t\d+)")


def slow_poster(request: dict[str, Any]) -> Reply:
    reply = heartbeat_scripts.poster(request)
    reply.delay = LLM_SECONDS
    return reply


def configure(host: Service) -> None:
    for thread_id in THREADS:
        r = httpx.post(
            f"{host.url}/api/threads/{thread_id}/heartbeat/config",
            json={"enabled": True, "every_seconds": EVERY, "target": "post",
                  "skip_when_unchanged": False},
            timeout=10,
        )  # fmt: skip
        assert r.status_code == 200, r.text


def runs_by_host(host: Service) -> Counter[str]:
    return Counter(DUE_LINE.findall(host.log()))


def read(url: str, sql: str) -> list[dict[str, Any]]:
    with psycopg.connect(url, row_factory=dict_row) as conn:
        return conn.execute(sql).fetchall()  # type: ignore[arg-type]


def finished_runs(url: str) -> int:
    rows = read(url, "SELECT COUNT(*) AS n FROM heartbeat_runs WHERE outcome = 'acted'")
    return int(rows[0]["n"])


def all_posts(ledger_url: str) -> list[dict[str, Any]]:
    """Every post on the Ledger, a page (at most 100) at a time: a minute posts more."""
    posts: list[dict[str, Any]] = []
    while True:
        params: dict[str, str | int] = {"sort": "new", "limit": 100, "offset": len(posts)}
        page = httpx.get(f"{ledger_url}/posts", params=params).json()["posts"]
        posts += page
        if len(page) < 100:
            return posts


def stop_hosts(hosts: Sequence[Service]) -> None:
    """Stop the hosts' heartbeat loops, then the hosts. Stopping a host abandons a call in
    flight: an LLM call's run is closed as interrupted, and a Ledger call's action stays
    pending for the next start to send. Stopping the loops first lets every run finish, so
    each LLM call has its run and no action is left pending."""
    for host in hosts:
        r = httpx.post(f"{host.url}/api/heartbeat/stop", timeout=60)
        assert r.status_code == 200, r.text
    for host in hosts:
        host.stop()
        assert "Traceback" not in host.log(), host.log()


def check_exactly_once(
    url: str, ledger_url: str, fake: FakeOllama, *, in_flight: int
) -> dict[str, int]:
    """The invariants after every host has stopped; ``in_flight``: at most this many LLM calls
    were made by runs a killed host never recorded (they were closed as interrupted)."""
    runs = read(
        url,
        "SELECT run_id, thread_id, outcome, reason, started_at, finished_at FROM heartbeat_runs "
        "ORDER BY thread_id, started_at",
    )
    assert all(r["outcome"] != "running" for r in runs), "a run was left running"
    real = [r for r in runs if r["reason"] != "busy"]
    for thread_id, group in itertools.groupby(real, key=lambda r: r["thread_id"]):
        for a, b in itertools.pairwise(list(group)):
            # One run per slot, never two at once: the next starts after this one finished,
            # and a slot later (an interrupted run is retried after a short backoff).
            assert a["finished_at"] <= b["started_at"], f"overlapping runs in {thread_id}"
            if a["reason"] != "interrupted":
                assert b["started_at"] - a["started_at"] >= EVERY / 2, (
                    f"two runs in one slot: {a} {b}"
                )
    interrupted = [r for r in real if r["reason"] == "interrupted"]
    decided = [r for r in real if r["outcome"] != "skipped" and r["reason"] != "interrupted"]
    calls = fake.calls_for("HeartbeatDecision")
    assert len(decided) <= len(calls) <= len(decided) + in_flight, (len(calls), len(decided))
    sent = read(
        url,
        "SELECT run_id, ledger_id, idempotency_key FROM heartbeat_actions "
        "WHERE state = 'sent' AND type = 'post'",
    )
    acted = [r for r in real if r["outcome"] == "acted"]
    assert Counter(r["run_id"] for r in sent) <= Counter(r["run_id"] for r in runs)
    assert {r["run_id"] for r in acted} <= {r["run_id"] for r in sent}
    assert not read(url, "SELECT id FROM heartbeat_actions WHERE state = 'pending'")
    posts = all_posts(ledger_url)
    titles = Counter(p["title"] for p in posts)
    assert titles and max(titles.values()) == 1, f"duplicate posts: {titles}"
    assert {p["id"] for p in posts} == {r["ledger_id"] for r in sent}
    return {"runs": len(real), "acted": len(acted), "interrupted": len(interrupted),
            "llm_calls": len(calls), "posts": len(posts)}  # fmt: skip


def test_three_hosts_share_the_heartbeats_exactly_once(
    tmp_path: Path, database: str, fake_ollama: FakeOllama
) -> None:
    heartbeat_scripts.install(fake_ollama, slow_poster)
    env = {**HOST_ENV, "CRT_OLLAMA_HOST": fake_ollama.url}
    with hosts(tmp_path, database, HOSTS, env) as (ledger, started):
        configure(started[0])

        def acted_per_thread() -> Counter[str]:
            """Each thread's acted runs started in the minute from the first run's start."""
            rows = read(
                database,
                "SELECT thread_id, COUNT(*) AS n FROM heartbeat_runs WHERE outcome = 'acted' "
                "AND started_at <= (SELECT MIN(started_at) FROM heartbeat_runs) + "
                f"{WINDOW} GROUP BY thread_id",
            )
            return Counter({r["thread_id"]: int(r["n"]) for r in rows})

        def minute_done() -> bool:
            first = read(database, "SELECT MIN(started_at) AS t FROM heartbeat_runs")[0]["t"]
            return first is not None and time.time() >= first + WINDOW

        # The heartbeats run for a whole minute, shared by the hosts: every thread is due every
        # 10 s, so each acts at least five times in it (six slots, one lost to the 1 s tick).
        wait_for(minute_done, timeout=WINDOW + 30, interval=0.5)
        per_thread = acted_per_thread()
        assert all(per_thread[t] >= WINDOW // EVERY - 1 for t in THREADS), per_thread
        stop_hosts(started)
        per_host = [sum(runs_by_host(h).values()) for h in started]
        figures = check_exactly_once(database, ledger.url, fake_ollama, in_flight=0)
    assert all(n > 0 for n in per_host), f"a host did no work: {per_host}"
    assert sum(per_host) >= figures["runs"] - figures["interrupted"]
    print(f"multi-host: {WINDOW} s, per host {per_host}, {figures}")


def test_a_killed_host_is_recovered_by_another_sending_once(
    tmp_path: Path, database: str, fake_ollama: FakeOllama
) -> None:
    heartbeat_scripts.install(fake_ollama, slow_poster)
    env = {**HOST_ENV, "CRT_OLLAMA_HOST": fake_ollama.url}
    with hosts(tmp_path, database, HOSTS, env) as (ledger, started):
        configure(started[0])
        victim = started[1]
        assert victim.proc is not None
        pid = victim.proc.pid

        def victim_mid_run() -> bool:
            return bool(read(
                database,
                "SELECT r.run_id FROM heartbeat_runs r JOIN leases l "
                "ON l.name = 'hb:' || r.thread_id "
                f"WHERE r.outcome = 'running' AND l.owner LIKE '%:{pid}:%'",
            ))  # fmt: skip

        wait_for(victim_mid_run, timeout=40, interval=0.02)
        victim.stop(signal.SIGKILL)
        killed_at = time.time()
        survivors = [started[0], started[2]]

        def recovered() -> bool:
            return any(RECOVERED.search(h.log()) for h in survivors)

        wait_for(recovered, timeout=30, interval=0.2)
        recovered_in = time.time() - killed_at
        done_at_recovery = finished_runs(database)
        # The survivors go on: another round of every thread after the recovery.
        wait_for(
            lambda: finished_runs(database) >= done_at_recovery + len(THREADS),
            timeout=45,
            interval=0.5,
        )
        stop_hosts(survivors)
        interrupted = read(
            database, "SELECT run_id FROM heartbeat_runs WHERE reason = 'interrupted'"
        )
        # The victim's runs in flight may have called the LLM; they were never recorded.
        figures = check_exactly_once(database, ledger.url, fake_ollama, in_flight=len(interrupted))
    per_host = [sum(runs_by_host(h).values()) for h in started]
    assert all(n > 0 for n in per_host), f"a host did no work: {per_host}"
    assert figures["interrupted"] >= 1
    print(f"multi-host kill: per host {per_host}, recovered in {recovered_in:.1f} s, {figures}")


PASS_LINE = re.compile(r"\[REFLECTION_LOOP\] pass: \d+ thread\(s\), (\d+) processed")


def test_the_thinking_loops_split_threads_across_hosts_scoring_once(
    tmp_path: Path, database: str, fake_ollama: FakeOllama
) -> None:
    llm_scripts.install_thinking_routes(fake_ollama)
    fake_ollama.route("ImportanceScores", slow_scorer)
    env = {
        **HOST_ENV,
        "CRT_OLLAMA_HOST": fake_ollama.url,
        "CRT_HEARTBEAT_LOOP_ENABLED": "false",
        "CRT_REFLECTION_LOOP_ENABLED": "true",
        "CRT_REFLECTION_LOOP_SECONDS": "1",
        "CRT_PERSONALITY_LOOP_ENABLED": "true",
        "CRT_PERSONALITY_LOOP_SECONDS": "1",
    }
    with hosts(tmp_path, database, HOSTS, env) as (_, started):
        # Messages arrive through every host while the passes run: ids commit concurrently.
        for round_ in range(4):
            for i, thread_id in enumerate(THREADS):
                host = started[(i + round_) % HOSTS]
                r = httpx.post(
                    f"{host.url}/api/threads/{thread_id}/messages",
                    json={"content": f"Round {round_}: I felt stressed about the deadline."},
                    timeout=10,
                )
                assert r.status_code == 201, r.text

        def unscored() -> int:
            rows = read(database, "SELECT COUNT(*) AS n FROM messages WHERE importance IS NULL")
            return int(rows[0]["n"])

        def learnt() -> int:
            rows = read(
                database,
                "SELECT COALESCE(SUM((profile_json::jsonb ->> 'messages_seen')::int), 0) AS n "
                "FROM personality_profiles",
            )
            return int(rows[0]["n"])

        wait_for(lambda: unscored() == 0, timeout=60, interval=0.3)
        wait_for(lambda: learnt() >= 4 * len(THREADS), timeout=60, interval=0.3)
        for host in started:
            host.stop()
            assert "Traceback" not in host.log(), host.log()
    scored = Counter(
        itertools.chain.from_iterable(
            [mid for mid, _, _ in llm_scripts.prompt_messages(c)]
            for c in fake_ollama.calls_for("ImportanceScores")
        )
    )
    ids = [r["id"] for r in read(database, "SELECT id FROM messages")]
    assert len(ids) == 4 * len(THREADS)
    assert sorted(scored) == sorted(ids), "every message is shown to the scorer"
    assert max(scored.values()) == 1, f"messages scored twice: {scored}"
    # The personality loop, its passes split the same way: each message learnt from once.
    shown = Counter(
        itertools.chain.from_iterable(
            re.findall(r"\[id (\d+)\]", llm_scripts.prompt_text(c))
            for c in fake_ollama.calls_for("PersonalityUpdate")
        )
    )
    if shown:
        assert max(shown.values()) == 1, f"messages shown to the personality loop twice: {shown}"
    assert learnt() == len(ids), "each message counted once in the profiles"
    per_host = [sum(int(n) for n in PASS_LINE.findall(h.log())) for h in started]
    assert all(n > 0 for n in per_host), f"a host scored nothing: {per_host}"
    print(f"multi-host scoring: threads processed per host {per_host}, {len(ids)} messages once")


def slow_scorer(request: dict[str, Any]) -> Reply:
    reply = llm_scripts.score_every_message(request)
    return Reply(content=reply, delay=0.2) if isinstance(reply, str) else reply


def test_a_host_killed_mid_send_is_recovered_by_another_posting_once(
    tmp_path: Path, database: str, ledger_database: str, fake_ollama: FakeOllama
) -> None:
    """With the Ledger on PostgreSQL too: its idempotency record answers the re-send."""
    heartbeat_scripts.install(fake_ollama, slow_poster)
    env = {**HOST_ENV, "CRT_OLLAMA_HOST": fake_ollama.url}
    with hosts(
        tmp_path, database, HOSTS, env, proxied_host=1, ledger_database_url=ledger_database
    ) as (ledger, started):
        assert ledger.proxy is not None
        configure(started[0])
        victim = started[1]
        # The victim's post reached the Ledger; its answer is held: the action is pending.
        wait_for(ledger.proxy.held.is_set, timeout=45, interval=0.05)
        pending = read(database, "SELECT id, idempotency_key FROM heartbeat_actions "
                                 "WHERE state = 'pending'")  # fmt: skip
        assert pending, "the victim's action is pending while its post is held"
        victim.stop(signal.SIGKILL)
        survivors = [started[0], started[2]]
        resent = re.compile(r"recovery: \d+ interrupted run\(s\) closed, [1-9]\d* pending")
        wait_for(lambda: any(resent.search(h.log()) for h in survivors), timeout=40, interval=0.2)
        keys = {r["idempotency_key"] for r in pending}
        sent = read(database, "SELECT idempotency_key, ledger_id FROM heartbeat_actions "
                              "WHERE state = 'sent'")  # fmt: skip
        assert keys <= {r["idempotency_key"] for r in sent}, "re-sent with the original key"
        done_at_recovery = finished_runs(database)
        wait_for(lambda: finished_runs(database) >= done_at_recovery + 4, timeout=45, interval=0.5)
        stop_hosts(survivors)
        interrupted = read(
            database, "SELECT run_id FROM heartbeat_runs WHERE reason = 'interrupted'"
        )
        figures = check_exactly_once(database, ledger.url, fake_ollama, in_flight=len(interrupted))
    stored = read(ledger_database, "SELECT COUNT(*) AS n FROM posts")[0]["n"]
    assert stored == figures["posts"], "the Ledger's posts are in its PostgreSQL database"
    print(f"multi-host mid-send kill: {figures}")
