"""The real server under a flood of bytes and a full disk.

- A 400 MiB chunked body, against the API's routes and the embedded Ledger of one real service
  process: each answers a JSON 413 after about a megabyte, and the process's memory stays flat
  (before the fix the Ledger buffered the whole body: 52 -> 453 MB, never released). A client
  that keeps sending all 400 MiB after the 413 has them read and dropped (uvicorn drains the
  body to keep the connection): memory stays flat too.
- A full disk: the service process gets a file size limit of 0 (``prlimit``), so every write it
  makes fails as on a full disk; writes answer JSON 503 with Retry-After, ``/health`` says
  degraded with HTTP 503, and a run-now refused meanwhile is in the history as
  ``failed``/``db_error`` once the limit is lifted.
"""

from __future__ import annotations

import json
import resource
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from support.chunked import rss_kib, send_chunked
from support.service import Service
from support.waiting import wait_for

pytestmark = pytest.mark.slow

BODY = 400 * 1024 * 1024
FLAT_KIB = 30 * 1024  # growth allowed for a whole series of floods: sockets, buffers, caches


@pytest.fixture
def service(tmp_path: Path) -> Iterator[Service]:
    (tmp_path / "HEARTBEAT.md").write_text("## Checklist\n- Read the feed\n", encoding="utf-8")
    with Service(tmp_path) as svc:
        yield svc


def test_a_400_mib_chunked_body_is_a_json_413_and_memory_stays_flat(service: Service) -> None:
    assert service.proc is not None
    pid = service.proc.pid
    ledger = httpx.get(service.url + "/api/ledger/status", timeout=10).json()["url"]
    ledger_port = int(ledger.rsplit(":", 1)[1].split("/", 1)[0])
    targets = [
        (service.port, "/api/heartbeat/heartbeat.md"),
        (service.port, "/api/threads/default/heartbeat/config"),
        (service.port, "/api/threads/default/messages"),
        (ledger_port, "/api/v1/agents/register"),
        (ledger_port, "/api/v1/posts"),
    ]
    rss_before, peak_before = rss_kib(pid)
    for port, path in targets:
        result = send_chunked("127.0.0.1", port, path, BODY)
        assert result.status == 413, (path, result)
        answer = json.loads(result.body)
        text = answer.get("detail") or answer.get("error")
        assert "request body too large" in text, answer
        assert result.sent < 64 * 1024 * 1024, (path, result.sent)
    # A client that ignores the 413 and sends all 400 MiB anyway.
    stubborn = send_chunked("127.0.0.1", ledger_port, "/api/v1/posts", BODY, stop_at_answer=False)
    assert stubborn.status == 413
    rss_after, peak_after = rss_kib(pid)
    assert rss_after - rss_before < FLAT_KIB, (rss_before, rss_after)
    assert peak_after - peak_before < FLAT_KIB, (peak_before, peak_after)
    assert httpx.get(service.url + "/health", timeout=10).status_code == 200
    assert "Traceback" not in service.log()


def test_a_full_disk_is_a_503_and_the_refused_run_is_recorded_afterwards(
    service: Service,
) -> None:
    assert service.proc is not None
    pid = service.proc.pid
    url = service.url
    assert (
        httpx.post(url + "/api/threads/default/messages", json={"content": "hi"}).status_code == 201
    )
    _, hard = resource.prlimit(pid, resource.RLIMIT_FSIZE)
    resource.prlimit(pid, resource.RLIMIT_FSIZE, (0, hard))  # every file write now fails
    try:
        r = httpx.post(url + "/api/threads/default/messages", json={"content": "lost?"}, timeout=30)
        assert r.status_code == 503, r.text
        assert int(r.headers["retry-after"]) > 0
        assert "the database" in r.json()["detail"]
        health = httpx.get(url + "/health", timeout=10)
        assert health.status_code == 503
        assert health.json()["db"] == "degraded"
        assert health.json()["db_problem"] in ("full", "io_error")
        r = httpx.post(url + "/api/threads/default/heartbeat/run-now", timeout=60)
        assert r.status_code == 503, r.text
        assert "recorded as failed/db_error" in r.json()["detail"]
        # Reads still work.
        assert httpx.get(url + "/api/threads/default/messages").status_code == 200
    finally:
        resource.prlimit(pid, resource.RLIMIT_FSIZE, (hard, hard))

    def recorded() -> list[dict[str, object]]:
        runs: list[dict[str, object]] = httpx.get(
            url + "/api/threads/default/heartbeat/history", timeout=10
        ).json()["runs"]
        return runs

    runs = wait_for(recorded, timeout=60, interval=0.2)
    assert [(r["outcome"], r["reason"]) for r in runs] == [("failed", "db_error")]
    wait_for(lambda: httpx.get(url + "/health", timeout=10).status_code == 200, timeout=30)
    assert (
        httpx.post(url + "/api/threads/default/messages", json={"content": "back"}).status_code
        == 201
    )
    contents = [
        m["content"] for m in httpx.get(url + "/api/threads/default/messages").json()["messages"]
    ]
    assert contents == ["hi", "back"]
