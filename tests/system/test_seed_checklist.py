"""The seed's testing checklist, item by item, driven by its own curl commands against the real
service (uvicorn subprocess), a fake Ollama on loopback and the embedded Ledger."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from support import heartbeat_scripts
from support.fake_ollama import FakeOllama
from support.service import Service
from support.waiting import wait_for

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("curl") is None, reason="the seed's commands need curl"),
]

SEED_MD = """# HEARTBEAT.md in workspace root

## Checklist
- Check for urgent items
- Review recent posts

## Rules
If 3+ urgent → post summary.
If contradictions → comment on feed.

## Proactive Behaviors
- Vote on polls
- Monitor key users
"""


@pytest.fixture
def service(tmp_path: Path, fake_ollama: FakeOllama) -> Iterator[Service]:
    heartbeat_scripts.install(fake_ollama, heartbeat_scripts.poster)
    (tmp_path / "HEARTBEAT.md").write_text(SEED_MD, encoding="utf-8")
    svc = Service(
        tmp_path,
        env={
            "CRT_HEARTBEAT_LOOP_ENABLED": "true",
            "CRT_OLLAMA_HOST": fake_ollama.url,
            "CRT_LEDGER_POST_COOLDOWN_SECONDS": "0",
            "CRT_REFLECTION_LOOP_ENABLED": "false",
            "CRT_PERSONALITY_LOOP_ENABLED": "false",
            "CRT_JOURNAL_SELF_REPLY_LOOP_ENABLED": "false",
        },
    )
    with svc:
        yield svc


def test_seed_checklist(service: Service, fake_ollama: FakeOllama) -> None:
    # [x] API starts without errors
    assert "Traceback" not in service.log()

    # [x] Heartbeat loop starts when enabled / Status endpoint reports loop running
    code, body = service.curl("curl http://localhost:8000/api/heartbeat/status")
    status = json.loads(body)
    assert code == 200
    assert status["enabled"] is True and status["running"] is True
    assert status["interval_seconds"] == 1800
    assert status["llm"]["available"] is True

    # [x] Can GET config for thread
    code, body = service.curl("curl http://localhost:8000/api/threads/default/heartbeat/config")
    assert code == 200
    view = json.loads(body)
    assert view["thread_id"] == "default" and view["config"]["enabled"] is False

    # [x] Can POST config for thread (the seed's `every` alias, answered as every_seconds)
    code, body = service.curl(
        """curl -X POST http://localhost:8000/api/threads/default/heartbeat/config \\
  -H "Content-Type: application/json" \\
  -d '{"enabled": true, "every": 1800, "target": "none"}'"""
    )
    assert code == 200, body
    cfg = json.loads(body)["config"]
    assert cfg["enabled"] is True and cfg["every_seconds"] == 1800 and cfg["target"] == "none"

    # [x] Can run heartbeat manually (target none: decided, recorded blocked, nothing sent)
    code, body = service.curl(
        "curl -X POST http://localhost:8000/api/threads/default/heartbeat/run-now"
    )
    assert code == 200, body
    run = json.loads(body)
    assert run["trigger"] == "manual"
    assert (run["outcome"], run["reason"]) == ("silent", "target")
    assert [a["state"] for a in run["actions"]] == ["blocked"]

    # [x] Logs show [HEARTBEAT_LOOP] prefix
    wait_for(lambda: "[HEARTBEAT_LOOP] Checker loop running" in service.log())

    # [x] Can read/write HEARTBEAT.md (the seed's POST has no JSON Content-Type)
    code, body = service.curl("curl http://localhost:8000/api/heartbeat/heartbeat.md")
    assert code == 200 and json.loads(body)["content"] == SEED_MD
    code, body = service.curl(
        """curl -X POST http://localhost:8000/api/heartbeat/heartbeat.md \\
  -d '{"content": "..."}'"""
    )
    assert code == 200, body
    assert json.loads(body)["content"] == "..."
    assert (service.tmp / "HEARTBEAT.md").read_text(encoding="utf-8") == "..."

    # [x] Stop endpoint stops loop gracefully
    code, body = service.curl("curl -X POST http://localhost:8000/api/heartbeat/stop")
    assert code == 200 and json.loads(body)["running"] is False
    code, body = service.curl("curl http://localhost:8000/api/heartbeat/status")
    assert json.loads(body)["running"] is False
    # and it starts again at run time
    code, body = service.curl("curl -X POST http://localhost:8000/api/heartbeat/start")
    assert code == 200 and json.loads(body)["running"] is True
    assert "Traceback" not in service.log()


def test_scheduled_heartbeat_posts_on_its_own(service: Service, fake_ollama: FakeOllama) -> None:
    """End to end: every_seconds 10 posts on the embedded Ledger with no manual trigger."""
    r = httpx.post(
        service.url + "/api/threads/default/heartbeat/config",
        json={"enabled": True, "every_seconds": 10, "target": "post", "skip_when_unchanged": False},
    )
    assert r.status_code == 200, r.text

    def acted_runs() -> list[dict[str, object]]:
        runs = httpx.get(service.url + "/api/threads/default/heartbeat/history").json()["runs"]
        return [run for run in runs if run["outcome"] == "acted"]

    runs = wait_for(lambda: len(acted_runs()) >= 2 and acted_runs(), timeout=60)
    assert all(run["trigger"] == "schedule" for run in runs)
    feed = httpx.get(service.url + "/api/ledger/feed", params={"sort": "new"}).json()
    titles = {p["title"] for p in feed["posts"]}
    for run in runs:
        (action,) = run["actions"]  # type: ignore[misc]
        assert action["state"] == "sent" and action["ledger_id"]
        assert action["title"] in titles
    assert "[HEARTBEAT_LOOP] Heartbeat due for thread: default" in service.log()
    assert '[HEARTBEAT_LOOP] Executed action: post (title: "Heartbeat note' in service.log()
