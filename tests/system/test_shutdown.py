"""Ctrl-C stops the real service within 3 s even while a model or the Ledger is answering.

The service runs as a subprocess (``crt serve``, what ``make run`` runs, and the seed's
``uvicorn crt_api:app``) against a fake Ollama that holds its reply, with a heartbeat run in
flight. SIGINT must end the process within 3 s, with the run recorded ``failed``/``interrupted``
and no traceback in the log; a second SIGINT exits at once. With a Ledger write held instead
(its database locked from outside), the stop keeps the same bound and the post still lands
exactly once: the next start sends the pending action with its original key.
"""

from __future__ import annotations

import contextlib
import re
import signal
import socket
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from support import heartbeat_scripts
from support.fake_ollama import FakeOllama, Reply
from support.ledger_lock import LedgerLock
from support.service import Service
from support.waiting import wait_for

# Their bounds are wall-clock seconds: under `-n 2 --dist loadgroup` they run one after
# another on one worker, never beside each other.
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("wall-clock")]

STOP_BUDGET_SECONDS = 3.0
INSTRUCTIONS = "## Checklist\n- Read the feed and comment when you can add something.\n"


def start_with_run_in_flight(
    tmp_path: Path, fake: FakeOllama, launcher: str
) -> tuple[Service, dict[str, Any]]:
    (tmp_path / "HEARTBEAT.md").write_text(INSTRUCTIONS)
    env = {
        "CRT_OLLAMA_HOST": fake.url,
        "CRT_REFLECTION_LOOP_ENABLED": "false",
        "CRT_PERSONALITY_LOOP_ENABLED": "false",
        "CRT_JOURNAL_SELF_REPLY_LOOP_ENABLED": "false",
        "CRT_HEARTBEAT_LOOP_ENABLED": "true",
    }
    service = Service(tmp_path, env=env, launcher=launcher).start()
    httpx.post(
        f"{service.url}/api/threads/default/heartbeat/config", json={"enabled": True}, timeout=10
    ).raise_for_status()
    answer: dict[str, Any] = {}

    def run_now() -> None:
        try:
            answer["response"] = httpx.post(
                f"{service.url}/api/threads/default/heartbeat/run-now", timeout=30
            )
        except httpx.HTTPError as exc:  # the service may close the connection as it stops
            answer["error"] = exc

    caller = threading.Thread(target=run_now, name="run-now-caller")
    caller.start()
    answer["thread"] = caller
    wait_for(lambda: fake.in_flight >= 1, timeout=20)
    return service, answer


LINE_RE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} [A-Z]+ \[[^\]]+\] [\w.]+: ")


def assert_log_orients(log: str, port: int) -> None:
    """``crt serve``'s log: one format, one uvicorn start line, the banner, no polling lines."""
    lines = [line for line in log.splitlines() if line.strip()]
    assert [line for line in lines if not LINE_RE.match(line)] == []
    assert sum("Uvicorn running on" in line for line in lines) == 1
    assert sum("Application startup complete" in line for line in lines) == 1
    assert f"dashboard  http://127.0.0.1:{port}/" in log
    assert f"API docs   http://127.0.0.1:{port}/docs" in log
    assert "model llama3.2:latest: reachable" in log
    assert "Ledger     embedded at http://127.0.0.1:" in log
    # Service.start() polled GET /health: reads are not access-logged by default; writes are.
    assert '"GET /health' not in log
    assert '"POST /api/threads/default/heartbeat/config HTTP/1.1" 200' in log


def interrupt(service: Service, *signals: int) -> tuple[int, float]:
    assert service.proc is not None
    proc = service.proc
    started = time.monotonic()
    for sig in signals:
        proc.send_signal(sig)
    code = proc.wait(30)
    service.proc = None
    return code, time.monotonic() - started


@pytest.mark.parametrize("launcher", ["crt", "uvicorn"])
def test_ctrl_c_with_an_llm_call_in_flight_stops_within_3_s(tmp_path: Path, launcher: str) -> None:
    with FakeOllama() as fake:
        fake.release.clear()  # the model never answers while the service is up
        service, answer = start_with_run_in_flight(tmp_path, fake, launcher)
        try:
            code, took = interrupt(service, signal.SIGINT)
        finally:
            fake.release.set()
            answer["thread"].join(30)
        print(f"{launcher}: SIGINT to exit with an LLM call in flight: {took:.2f} s")
        log = service.log()
        assert took < STOP_BUDGET_SECONDS, log
        assert code == 0, log
        assert "CRT Loops stopped" in log
        assert "Traceback" not in log, log
        assert "abandoned 1 LLM call(s) in flight" in log
        if launcher == "crt":
            assert_log_orients(log, service.port)
        # The run was recorded as interrupted, by the run itself before the DB closed.
        again = Service(tmp_path, env=service.env | {"CRT_HEARTBEAT_LOOP_ENABLED": "false"})
        again.port, again.log_path = service.port, service.log_path
        with again:
            runs = httpx.get(
                f"{again.url}/api/threads/default/heartbeat/history", timeout=10
            ).json()["runs"]
        assert [(r["outcome"], r["reason"]) for r in runs][:1] == [("failed", "interrupted")]


def test_a_second_ctrl_c_exits_at_once(tmp_path: Path) -> None:
    # A request whose body never arrives holds uvicorn's drain (1 s): the second SIGINT lands
    # while the first stop is still going. Two signals sent back to back would merge into one.
    service = Service(tmp_path, launcher="crt").start()
    assert service.proc is not None
    with socket.create_connection(("127.0.0.1", service.port), timeout=10) as held:
        held.sendall(
            b"POST /api/threads/default/messages HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{"
        )
        started = time.monotonic()
        service.proc.send_signal(signal.SIGINT)
        wait_for(lambda: "Waiting for connections to close" in service.log(), timeout=5)
        service.proc.send_signal(signal.SIGINT)
        code = service.proc.wait(30)
        took = time.monotonic() - started
        service.proc = None
    log = service.log()
    assert code == 130, log
    assert took < STOP_BUDGET_SECONDS, log
    assert "Second interrupt: exiting now" in log


def test_ctrl_c_with_a_ledger_call_in_flight_stops_within_3_s_and_posts_once(
    tmp_path: Path,
) -> None:
    session_db = tmp_path / "data" / "crt.db"
    ledger_db = tmp_path / "data" / "ledger.db"
    lock = LedgerLock(ledger_db)

    def decide(request: dict[str, Any]) -> Reply:
        reply = heartbeat_scripts.poster(request)
        lock.take()  # the Ledger's write of this post now waits on its busy timeout
        return reply

    def scalar(path: Path, sql: str) -> int:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
        try:
            return int(conn.execute(sql).fetchone()[0])
        finally:
            conn.close()

    pending_sql = "SELECT COUNT(*) FROM heartbeat_actions WHERE state = 'pending'"
    with FakeOllama() as fake:
        heartbeat_scripts.install(fake, decide)
        (tmp_path / "HEARTBEAT.md").write_text(INSTRUCTIONS)
        env = {
            "CRT_OLLAMA_HOST": fake.url,
            "CRT_LEDGER_POST_COOLDOWN_SECONDS": "0",
            "CRT_REFLECTION_LOOP_ENABLED": "false",
            "CRT_PERSONALITY_LOOP_ENABLED": "false",
            "CRT_JOURNAL_SELF_REPLY_LOOP_ENABLED": "false",
            "CRT_HEARTBEAT_LOOP_ENABLED": "false",
        }
        service = Service(tmp_path, env=env, launcher="crt").start()
        caller: threading.Thread | None = None
        try:
            lock.armed.set()

            def run_now() -> None:
                with contextlib.suppress(httpx.HTTPError):  # cut off by the stop
                    httpx.post(f"{service.url}/api/threads/default/heartbeat/run-now", timeout=30)

            caller = threading.Thread(target=run_now, name="run-now-caller")
            caller.start()
            wait_for(
                lambda: lock.conn is not None and scalar(session_db, pending_sql) == 1,
                timeout=20,
            )
            code, took = interrupt(service, signal.SIGINT)
        finally:
            lock.release()
            if caller is not None:
                caller.join(30)
        print(f"SIGINT to exit with a Ledger write in flight: {took:.2f} s")
        log = service.log()
        assert took < STOP_BUDGET_SECONDS, log
        assert code == 0, log
        assert "Traceback" not in log, log
        assert scalar(ledger_db, "SELECT COUNT(*) FROM posts") == 0
        assert scalar(session_db, pending_sql) == 1  # the outbox kept it

        with Service(tmp_path, env=env, launcher="crt") as again:
            wait_for(lambda: scalar(ledger_db, "SELECT COUNT(*) FROM posts") == 1, timeout=20)
            wait_for(lambda: scalar(session_db, pending_sql) == 0, timeout=20)
            runs = httpx.get(
                f"{again.url}/api/threads/default/heartbeat/history", timeout=10
            ).json()["runs"]
        sent = scalar(session_db, "SELECT COUNT(*) FROM heartbeat_actions WHERE state = 'sent'")
        assert sent == 1 and scalar(ledger_db, "SELECT COUNT(*) FROM posts") == 1
        assert runs[0]["reason"] == "interrupted", runs[0]
