"""A flood of run-now requests against a slow model, on the real ``uvicorn crt_api:app``.

Before: each run-now waited for the single LLM slot without a timeout while holding one of the
server's worker threads, so 50 of them froze ``/health`` and the dashboard for minutes and
SIGTERM waited for all of them. Now every run-now is answered (200, or 429 with Retry-After
and a sentence), reads stay fast throughout, and shutdown is bounded.
"""

from __future__ import annotations

import signal
import statistics
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from support import heartbeat_scripts
from support.fake_ollama import FakeOllama, Reply
from support.service import Service
from support.waiting import wait_for

# Their bounds are wall-clock seconds: under `-n 2 --dist loadgroup` they run one after
# another on one worker, never beside each other.
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("wall-clock")]

FLOOD = 50
MODEL_SECONDS = 3.0  # each heartbeat decision takes the fake model this long
HEARTBEAT_MD = "# HEARTBEAT.md\n\n## Checklist\n- Read the feed and answer comments.\n"
# What "fast" means on a shared 2-core machine running other test suites at the same time.
READ_LIMIT_SECONDS = 1.0


@pytest.fixture
def service(tmp_path: Path, fake_ollama: FakeOllama) -> Iterator[Service]:
    silence = heartbeat_scripts.decision([], "nothing to add")
    fake_ollama.route("HeartbeatDecision", lambda req: Reply(content=silence, delay=MODEL_SECONDS))
    (tmp_path / "HEARTBEAT.md").write_text(HEARTBEAT_MD, encoding="utf-8")
    svc = Service(
        tmp_path,
        env={
            "CRT_OLLAMA_HOST": fake_ollama.url,
            "CRT_REFLECTION_LOOP_ENABLED": "false",
            "CRT_PERSONALITY_LOOP_ENABLED": "false",
            "CRT_JOURNAL_SELF_REPLY_LOOP_ENABLED": "false",
            "CRT_LEDGER_REQUESTS_PER_MINUTE": "1000",
        },
    )
    with svc:
        with httpx.Client(base_url=svc.url, timeout=10) as client:
            for i in range(FLOOD):
                assert client.post("/api/threads", json={"thread_id": f"t{i}"}).status_code in (
                    200,
                    201,
                )
        yield svc


def _flood(pool: ThreadPoolExecutor, url: str) -> list[Future[tuple[int, dict[str, str], float]]]:
    def one(i: int) -> tuple[int, dict[str, str], float]:
        # Timed from the request, not from building the client (50 SSL contexts cost seconds).
        with httpx.Client(timeout=60) as client:
            started = time.monotonic()
            response = client.post(f"{url}/api/threads/t{i}/heartbeat/run-now")
        return response.status_code, dict(response.headers), time.monotonic() - started

    return [pool.submit(one, i) for i in range(FLOOD)]


def _read_latencies(url: str, rounds: int) -> list[float]:
    took: list[float] = []
    with httpx.Client(base_url=url, timeout=30) as client:
        for _ in range(rounds):
            for path in ("/health", "/", "/api/threads", "/api/heartbeat/status"):
                started = time.monotonic()
                assert client.get(path).status_code == 200
                took.append(time.monotonic() - started)
    return took


def test_fifty_run_nows_leave_the_service_responsive(service: Service) -> None:
    with ThreadPoolExecutor(max_workers=FLOOD) as pool:
        started = time.monotonic()
        futures = _flood(pool, service.url)
        reads = _read_latencies(service.url, rounds=10)
        answers = [f.result(timeout=60) for f in futures]
        all_answered = time.monotonic() - started
    codes = [code for code, _, _ in answers]
    assert set(codes) <= {200, 429}, codes
    assert codes.count(200) >= 1
    refused = [(headers, took) for code, headers, took in answers if code == 429]
    assert len(refused) >= FLOOD - 3
    assert all(int(headers["retry-after"]) > 0 for headers, _ in refused)
    assert max(reads) < READ_LIMIT_SECONDS, sorted(reads)[-5:]
    # One model call (3 s), a second admitted run after it, and the last waiter's 5 s give-up.
    assert all_answered < 20, all_answered
    print(
        f"\nflood: {codes.count(200)} ran, {len(refused)} refused (429); all answered in "
        f"{all_answered:.1f} s; refusals took median "
        f"{statistics.median(t for _, t in refused) * 1000:.0f} ms; "
        f"reads during it: median {statistics.median(reads) * 1000:.0f} ms, "
        f"max {max(reads) * 1000:.0f} ms over {len(reads)}"
    )
    with httpx.Client(base_url=service.url, timeout=10) as client:
        detail = client.post("/api/threads/t0/heartbeat/run-now")
        assert detail.status_code == 200  # the flood is over: a run-now runs again
        history = client.get("/api/threads/t1/heartbeat/history").json()["runs"]
        assert all(r["outcome"] in ("silent", "skipped") for r in history)


def test_sigterm_during_a_flood_stops_in_bounded_time(service: Service) -> None:
    with ThreadPoolExecutor(max_workers=FLOOD) as pool:
        futures = _flood(pool, service.url)

        # Wait until the model is busy with one of them, then ask the service to stop.
        def busy() -> bool:
            status = httpx.get(service.url + "/api/heartbeat/status", timeout=5).json()
            return bool(status["runs_by_outcome"]) or sum(f.done() for f in futures) >= FLOOD - 3

        wait_for(busy, timeout=10, interval=0.05)
        started = time.monotonic()
        code = service.stop(signal.SIGTERM, timeout=30)
        stopped = time.monotonic() - started
        closed = 0
        for f in futures:
            try:
                f.result(timeout=30)
            except httpx.HTTPError:
                closed += 1  # a connection the stopping server closed is an answer too
    # uvicorn re-raises the SIGTERM it handled once its graceful shutdown is done.
    assert code in (0, -signal.SIGTERM), code
    assert "CRT Loops stopped" in service.log()
    # The running model call (3 s) may finish; nothing waits behind it for minutes.
    assert stopped < 12, stopped
    print(
        f"\nSIGTERM with {FLOOD} run-nows pending: stopped in {stopped:.1f} s "
        f"({closed} connections closed unanswered)"
    )
