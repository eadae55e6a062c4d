"""The SIGKILL soak's shared parts: its kill phases, run-now fired at a service, the heartbeat
config its threads get, and what must hold after the last kill.

Used by tests/system/test_crash_safety.py (one service on SQLite) and
tests/system/test_crash_safety_hosts.py (three services on one PostgreSQL database).
"""

from __future__ import annotations

import contextlib
import itertools
import random
import threading
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import httpx

#: Where a kill lands: mid-LLM-call, with the action ``pending`` while the Ledger's write waits,
#: right after a post landed on the Ledger, and at a random moment after a run-now.
PHASES = ("llm", "pending", "sent", "random")
#: Every thread heartbeats every 10 s (the shortest interval a config accepts), always posting.
HEARTBEAT_CONFIG = {
    "enabled": True,
    "every_seconds": 10,
    "target": "post",
    "skip_when_unchanged": False,
}


def phase_order(kills: int, rng: random.Random) -> list[str]:
    """``kills`` phases, each of :data:`PHASES` as often as the others (give or take one)."""
    phases = list(itertools.islice(itertools.cycle(PHASES), kills))
    rng.shuffle(phases)
    return phases


def configure(url: str, threads: Iterable[str]) -> None:
    for thread_id in threads:
        r = httpx.post(
            f"{url}/api/threads/{thread_id}/heartbeat/config", json=HEARTBEAT_CONFIG, timeout=10
        )
        assert r.status_code == 200, r.text


def fire_run_now(url: str, thread_id: str) -> threading.Thread:
    """POST run-now in a helper thread; the kill cuts it off, which is expected."""

    def go() -> None:
        with contextlib.suppress(httpx.HTTPError):
            httpx.post(f"{url}/api/threads/{thread_id}/heartbeat/run-now", timeout=30)

    thread = threading.Thread(target=go, name="run-now-client", daemon=True)
    thread.start()
    return thread


def every_thread_runs_again(urls: Sequence[str], threads: Sequence[str]) -> None:
    """After the last restart: stop every service's heartbeat loop, then run each thread now,
    spread over the services; each must act."""
    # The loop's own runs would hold a thread's lease and answer run-now 409; stopping it waits
    # for those to finish, so only a lease or a run that recovery failed to clear can make the
    # run-nows below fail.
    for url in urls:
        r = httpx.post(f"{url}/api/heartbeat/stop", timeout=60)
        assert r.status_code == 200, r.text
    for i, thread_id in enumerate(threads):
        url = urls[i % len(urls)]
        r = httpx.post(f"{url}/api/threads/{thread_id}/heartbeat/run-now", timeout=30)
        assert r.status_code == 200, f"{thread_id} after a crash: {r.status_code} {r.text}"
        assert r.json()["outcome"] == "acted", r.json()


def check_after_kills(
    label: str,
    kills: Counter[str],
    runs: Sequence[Mapping[str, Any]],
    actions: Sequence[Mapping[str, Any]],
    posts: Sequence[Mapping[str, Any]],
) -> dict[str, int]:
    """What must hold once every service stopped gracefully after the soak: ``runs`` (outcome,
    reason), the post ``actions`` (state, ledger_id) and the Ledger's ``posts`` (id, title).
    Prints the figures (pytest -s) and returns them."""
    running = [dict(r) for r in runs if r["outcome"] == "running"]
    pending = [dict(a) for a in actions if a["state"] == "pending"]
    titles = Counter(p["title"] for p in posts)
    duplicates = {t: n for t, n in titles.items() if n > 1}
    sent_ids = Counter(a["ledger_id"] for a in actions if a["state"] == "sent")
    interrupted = sum(1 for r in runs if r["reason"] == "interrupted")
    figures = {
        "kills": sum(kills.values()),
        "runs": len(runs),
        "interrupted": interrupted,
        "posts": len(posts),
        "duplicates": len(duplicates),
        "pending": len(pending),
        "running": len(running),
    }
    print(  # the figures for the closing note
        f"\n{label}: {figures['kills']} kills {dict(kills)}, {len(runs)} runs "
        f"({interrupted} interrupted), {len(posts)} posts, duplicates {len(duplicates)}, "
        f"pending {len(pending)}, running {len(running)}"
    )
    assert figures["kills"] >= 20
    assert not running, running
    assert not pending, pending
    assert not duplicates, duplicates
    assert posts, "heartbeats posted"
    for post in posts:
        n = sent_ids[post["id"]]
        assert n == 1, f"post {dict(post)} has {n} sent actions"
    assert set(sent_ids) <= {p["id"] for p in posts}, "a sent action whose post does not exist"
    assert interrupted >= kills["llm"], "runs cut off mid-LLM-call are recorded as interrupted"
    return figures
