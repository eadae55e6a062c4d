"""``crt`` against a real running service: uvicorn in a thread on a loopback port, the embedded
Ledger, the fake Ollama. Every command is run through ``crt_cli.main`` and judged by its output
and its exit code."""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from support import heartbeat_scripts as hs
from support.fake_ollama import FakeOllama, Reply
from support.service import free_port
from support.waiting import wait_for

from crt_loops.api.app import create_app
from crt_loops.cli import main as crt_cli
from crt_loops.core.server_thread import ServerThread
from crt_loops.settings import Settings

TOKEN = "cli-test-token"
MD = "## Checklist\n- Read the feed\n"


class Running:
    """One service for the whole module (starting one per test would dominate the run time)."""

    def __init__(self, tmp: Path, fake: FakeOllama | None, **overrides: Any) -> None:
        self.tmp = tmp
        self.fake = fake
        (tmp / "HEARTBEAT.md").write_text(MD, encoding="utf-8")
        values: dict[str, Any] = {
            "data_dir": tmp / "data",
            "workspace": tmp,
            "ollama_host": fake.url if fake else "http://127.0.0.1:9",
            "ledger_port": 0,
            "llm_timeout_seconds": 10,
            "ledger_post_cooldown_seconds": 0,
            "ledger_comment_cooldown_seconds": 0,
            "reflection_loop_enabled": False,
            "personality_loop_enabled": False,
            "journal_self_reply_loop_enabled": False,
            "api_token": TOKEN,
            **overrides,
        }
        self.settings = Settings(_env_file=None, **values)  # type: ignore[call-arg]
        self.server = ServerThread(create_app(self.settings), name="cli-service").start()
        self.url = self.server.url

    def stop(self) -> None:
        self.server.stop()


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeOllama]:
    with FakeOllama() as f:
        yield f


@pytest.fixture(scope="module")
def svc(tmp_path_factory: pytest.TempPathFactory, fake: FakeOllama) -> Iterator[Running]:
    running = Running(tmp_path_factory.mktemp("cli"), fake)
    yield running
    running.stop()


@pytest.fixture(autouse=True)
def env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("CRT_URL", "CRT_API_TOKEN", "VISUAL", "EDITOR"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def crt(
    svc: Running,
    fake: FakeOllama,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> Any:
    """``crt(*argv) -> (exit code, stdout, stderr)`` against the module's service."""
    hs.install(fake, hs.poster)
    monkeypatch.setenv("CRT_URL", svc.url)
    monkeypatch.setenv("CRT_API_TOKEN", TOKEN)

    def run(*argv: str) -> tuple[int, str, str]:
        capsys.readouterr()
        code = crt_cli.main(list(argv))
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return run


def api(svc: Running, method: str, path: str, **kwargs: Any) -> Any:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    r = httpx.request(method, svc.url + path, headers=headers, timeout=30, **kwargs)
    assert r.status_code < 400, r.text
    return r.json() if r.content else None


# -- status, loops, --json -------------------------------------------------------------------


def test_status_shows_loops_llm_and_ledger(crt: Any) -> None:
    code, out, err = crt("status")
    assert code == 0, err
    for name in ("reflection", "personality", "journal_self_reply", "heartbeat"):
        assert name in out
    assert "LLM" in out and "available" in out
    assert "Ledger" in out and "embedded" in out and "reachable" in out


def test_json_output_parses(crt: Any) -> None:
    code, out, _ = crt("--json", "status")
    assert code == 0
    data = json.loads(out)
    assert {"health", "loops", "heartbeat", "ledger"} <= set(data)
    assert data["heartbeat"]["llm"]["available"] is True
    # --json also works after the command
    code, out, _ = crt("loops", "--json")
    assert code == 0 and json.loads(out)[0]["name"] == "reflection"


def test_loops_start_and_stop(crt: Any, svc: Running) -> None:
    code, out, _ = crt("loops", "start", "reflection")
    assert code == 0 and "reflection: started" in out
    code, out, _ = crt("loops", "start", "reflection")
    assert code == 0 and "already running" in out
    code, out, _ = crt("loops")
    assert code == 0 and "running" in out
    code, out, _ = crt("loops", "stop", "reflection")
    assert code == 0 and "reflection: stopped" in out
    loops = api(svc, "GET", "/api/loops")["loops"]
    assert not next(lp for lp in loops if lp["name"] == "reflection")["running"]


def test_usage_errors_exit_2(crt: Any) -> None:
    assert crt("loops", "start", "nosuchloop")[0] == 2
    assert crt("heartbeat")[0] == 2
    assert crt("heartbeat", "config", "t", "--active-hours", "9to5")[0] == 2
    assert crt()[0] == 2
    code, out, _ = crt("--help")
    assert code == 0 and "exit codes" in out and "CRT_API_TOKEN" in out


# -- heartbeat config, run, history ----------------------------------------------------------


def test_config_show_update_and_validation(crt: Any) -> None:
    code, _, err = crt("heartbeat", "config", "cfg-cli")
    assert code == 2 and "does not exist" in err  # a GET never creates the thread
    code, out, err = crt(
        "heartbeat", "config", "cfg-cli", "--enable", "--every", "30m", "--target", "post",
        "--dry-run", "--active-hours", "09:00-17:00", "--timezone", "Europe/Berlin",
        "--max-actions", "2",
    )  # fmt: skip
    assert code == 0, err
    assert "30m" in out and "09:00-17:00" in out and "Europe/Berlin" in out
    code, out, _ = crt("--json", "heartbeat", "config", "cfg-cli")
    cfg = json.loads(out)["config"]
    assert cfg["enabled"] is True and cfg["every_seconds"] == 1800 and cfg["target"] == "post"
    assert cfg["dry_run"] is True and cfg["max_actions"] == 2
    # partial: only the given fields change
    code, out, _ = crt("--json", "heartbeat", "config", "cfg-cli", "--no-dry-run", "--disable")
    cfg = json.loads(out)["config"]
    assert cfg["dry_run"] is False and cfg["enabled"] is False and cfg["target"] == "post"
    # the server's validation message, exit 2
    code, out, err = crt("heartbeat", "config", "cfg-cli", "--every", "5")
    assert code == 2 and out == ""
    assert "HTTP 422" in err and "between 10 s and 7 days" in err
    code, _, err = crt("heartbeat", "config", "cfg-cli", "--active-hours", "9-9")
    assert code == 2 and "HTTP 422" in err


def test_run_dry_run_history(crt: Any, svc: Running) -> None:
    api(svc, "POST", "/api/threads/run-cli/heartbeat/config", json={"target": "post"})
    code, out, err = crt("heartbeat", "run", "run-cli", "--dry-run")
    assert code == 0, err
    assert "dry_run" in out and "Heartbeat note" in out
    code, out, err = crt("heartbeat", "run", "run-cli")
    assert code == 0, err
    assert "acted" in out and "sent" in out
    code, out, _ = crt("heartbeat", "history", "run-cli", "--limit", "5")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split()[:3] == ["STARTED", "TRIGGER", "OUTCOME"]
    assert "acted" in lines[1] and "dry_run" in lines[2]
    code, out, _ = crt("--json", "heartbeat", "history", "run-cli", "--limit", "1")
    assert [r["outcome"] for r in json.loads(out)["runs"]] == ["acted"]
    code, out, _ = crt("ledger", "feed", "--sort", "new")
    assert code == 0 and "Heartbeat note" in out and "crt" in out


def test_failed_run_exits_1(crt: Any, svc: Running, fake: FakeOllama) -> None:
    api(svc, "POST", "/api/threads/fail-cli/heartbeat/config", json={"target": "any"})
    hs.install(fake, lambda request: Reply(content="I am not sure what to do."))
    code, out, _ = crt("heartbeat", "run", "fail-cli")
    assert code == 1
    assert "failed (invalid_decision)" in out
    code, _, err = crt("heartbeat", "run", "ghost-cli")
    assert code == 2 and "does not exist" in err


def test_busy_run_exits_5(crt: Any, svc: Running, fake: FakeOllama) -> None:
    api(svc, "POST", "/api/threads/busy-cli/heartbeat/config", json={"target": "none"})
    fake.release.clear()  # hold the LLM's answer: the first run stays in progress
    first = threading.Thread(
        target=api, args=(svc, "POST", "/api/threads/busy-cli/heartbeat/run-now"), name="first"
    )
    calls = len(fake.chat_calls)
    first.start()
    try:
        wait_for(lambda: len(fake.chat_calls) > calls)
        code, _, err = crt("heartbeat", "run", "busy-cli")
        assert code == 5 and "HTTP 409" in err and "already running" in err
    finally:
        fake.release.set()
        first.join(30)


# -- HEARTBEAT.md ----------------------------------------------------------------------------


def test_heartbeat_md_show_set_and_conflict(crt: Any, svc: Running, tmp_path: Path) -> None:
    code, out, err = crt("heartbeat-md", "show")
    assert code == 0 and out == (svc.tmp / "HEARTBEAT.md").read_text(encoding="utf-8")
    assert "sha256" in err
    sha = json.loads(crt("--json", "heartbeat-md", "show")[1])["sha256"]
    new = tmp_path / "new.md"
    new.write_text("## Checklist\n- Say hello\n", encoding="utf-8")
    code, out, err = crt("heartbeat-md", "set", str(new), "--expected-sha256", sha)
    assert code == 0, err
    assert (svc.tmp / "HEARTBEAT.md").read_text(encoding="utf-8") == "## Checklist\n- Say hello\n"
    # the old sha no longer matches: refused, file untouched, exit 5
    new.write_text("## Checklist\n- Overwrite\n", encoding="utf-8")
    code, _, err = crt("heartbeat-md", "set", str(new), "--expected-sha256", sha)
    assert code == 5 and "HTTP 409" in err
    assert "Say hello" in (svc.tmp / "HEARTBEAT.md").read_text(encoding="utf-8")
    assert crt("heartbeat-md", "set", str(tmp_path / "missing.md"))[0] == 2


EDITOR = """\
import os, pathlib, sys
path = pathlib.Path(sys.argv[-1])
path.write_text(path.read_text(encoding="utf-8") + "- Added in the editor\\n", encoding="utf-8")
other = os.environ.get("ALSO_WRITE")
if other:  # someone else saves HEARTBEAT.md while this editor is open
    pathlib.Path(other).write_text("## Checklist\\n- Saved meanwhile\\n", encoding="utf-8")
"""


def test_heartbeat_md_edit(
    crt: Any, svc: Running, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    md = svc.tmp / "HEARTBEAT.md"
    md.write_text(MD, encoding="utf-8")
    script = tmp_path / "editor.py"
    script.write_text(EDITOR, encoding="utf-8")
    monkeypatch.setenv("EDITOR", f"{sys.executable} {script}")
    code, out, err = crt("heartbeat-md", "edit")
    assert code == 0, err
    assert md.read_text(encoding="utf-8") == MD + "- Added in the editor\n"
    assert "saved HEARTBEAT.md" in out

    monkeypatch.setenv("ALSO_WRITE", str(md))
    code, _, err = crt("heartbeat-md", "edit")
    assert code == 5
    assert md.read_text(encoding="utf-8") == "## Checklist\n- Saved meanwhile\n"  # not overwritten
    kept = Path(err.split("Your version is kept at ")[1].split(":")[0])
    assert kept.read_text(encoding="utf-8").endswith("- Added in the editor\n")
    kept.unlink()
    md.write_text(MD, encoding="utf-8")


# -- reaching the service ----------------------------------------------------------------------


def test_unreachable_service_exits_3(crt: Any) -> None:
    code, _, err = crt("--url", f"http://127.0.0.1:{free_port()}", "status")
    assert code == 3 and "cannot reach the CRT service" in err


def test_wrong_or_missing_token_exits_4(crt: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CRT_API_TOKEN", "not-the-token")
    code, _, err = crt("status")
    assert code == 4 and "HTTP 401" in err
    monkeypatch.delenv("CRT_API_TOKEN")
    assert crt("heartbeat", "history", "default")[0] == 4


# -- crt demo --------------------------------------------------------------------------------


def test_demo_end_to_end(crt: Any, svc: Running, fake: FakeOllama) -> None:
    (svc.tmp / "HEARTBEAT.md").write_text("# HEARTBEAT.md\n\n## Checklist\n-\n", encoding="utf-8")
    code, out, err = crt("demo")
    assert code == 0, err + out
    assert "created with 4 messages" in out
    assert "wrote a starter checklist" in out
    assert "neighbour-ada" in out and "neighbour-cleo" in out
    assert "[manual, dry run]: dry_run" in out
    assert "Heartbeat demo [manual]: acted" in out
    assert "Checklist" in (svc.tmp / "HEARTBEAT.md").read_text(encoding="utf-8")
    # the neighbours' posts were shown to the LLM, with their ids
    assert any(
        "Birds and magnets" in hs.prompt_text(r) for r in fake.calls_for("HeartbeatDecision")
    )
    feed = api(svc, "GET", "/api/ledger/feed", params={"sort": "new", "limit": 50})
    authors = {p["author"] for p in feed["posts"]}
    assert {"neighbour-ada", "neighbour-basil", "neighbour-cleo", "crt"} <= authors
    messages = api(svc, "GET", "/api/threads/demo/messages")["messages"]
    # a second demo reuses the thread, the file and the neighbours' posts
    code, out, err = crt("--json", "demo")
    assert code == 0, err
    result = json.loads(out)
    assert result["run"]["outcome"] == "acted"
    assert len(api(svc, "GET", "/api/threads/demo/messages")["messages"]) == len(messages)
    feed = api(svc, "GET", "/api/ledger/feed", params={"sort": "new", "limit": 50})
    assert sum(p["author"].startswith("neighbour-") for p in feed["posts"]) == 3


def test_demo_without_ollama(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    running = Running(tmp_path, None, api_token=None)
    try:
        (tmp_path / "HEARTBEAT.md").write_text("", encoding="utf-8")
        monkeypatch.setenv("CRT_URL", running.url)
        code = crt_cli.main(["demo"])
        out = capsys.readouterr().out
    finally:
        running.stop()
    assert code == 0
    assert "skipped (llm_unavailable)" in out
    assert "ollama pull llama3.2" in out
