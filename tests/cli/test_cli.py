"""``crt`` against a real running service: uvicorn in a thread on a loopback port, the embedded
Ledger, the fake Ollama. Every command is run through ``crt_cli.main`` and judged by its output
and its exit code."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support import heartbeat_scripts as hs
from support.fake_ollama import FakeOllama, Reply
from support.service import free_port
from support.waiting import wait_for

from crt_loops.api.app import create_app
from crt_loops.cli import main as crt_cli
from crt_loops.cli.args import service_url
from crt_loops.core.http_client import new_client
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
    with new_client(timeout=30) as http:
        r = http.request(method, svc.url + path, headers=headers, **kwargs)
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


# -- the newcomer's commands: --version, threads, chat, errors -------------------------------


def test_version(crt: Any) -> None:
    with pytest.raises(SystemExit) as exited:
        crt_cli.build_parser().parse_args(["--version"])
    assert exited.value.code == 0


def test_crt_follows_host_and_port_like_make_run(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PORT", "8123")
    monkeypatch.setenv("HOST", "0.0.0.0")
    assert service_url() == "http://127.0.0.1:8123"
    monkeypatch.setenv("CRT_URL", "http://example.test:9")
    assert service_url() == "http://example.test:9"


def test_threads_list_show_and_messages_with_scores(crt: Any, svc: Running) -> None:
    api(svc, "POST", "/api/threads", json={"thread_id": "cli-chat", "title": "CLI chat"})
    for text in ("first words", "second words", "third words"):
        api(svc, "POST", "/api/threads/cli-chat/messages", json={"content": text})
    code, out, err = crt("threads")
    assert code == 0, err
    assert "cli-chat" in out and "CLI chat" in out
    code, out, err = crt("threads", "show", "cli-chat")
    assert code == 0, err
    assert "user: third words" in out
    code, out, err = crt("threads", "messages", "cli-chat", "--limit", "2")
    assert code == 0, err
    assert "IMPORTANCE" in out and "third words" in out and "first words" not in out
    code, out, _ = crt("threads", "messages", "cli-chat", "--json")
    assert code == 0 and [m["content"] for m in json.loads(out)["messages"]][-1] == "third words"


def test_chat_with_a_message_prints_the_reply(crt: Any, fake: FakeOllama) -> None:
    fake.set_responder(lambda request: "Glad to hear it. How was the first day?")
    code, out, err = crt("chat", "cli-chat", "I", "started", "a", "new", "job")
    assert code == 0, err
    assert out.strip() == "Glad to hear it. How was the first day?"
    sent = fake.chat_calls[-1]["messages"][-1]["content"]
    assert sent == "I started a new job"


def test_chat_without_a_message_is_a_conversation(
    crt: Any, fake: FakeOllama, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake.set_responder(lambda request: "reply to " + request["messages"][-1]["content"])
    monkeypatch.setattr(sys, "stdin", io.StringIO("hello\nand more\n\nnot sent\n"))
    code, out, err = crt("chat", "cli-chat")
    assert code == 0, err
    assert out.splitlines() == ["reply to hello", "reply to and more"]


def test_chat_prints_the_reply_while_the_model_is_still_writing(
    svc: Running, fake: FakeOllama
) -> None:
    # The model writes "Hello" and holds the rest until the test has seen it: the first word
    # must reach the terminal while the call is still in flight.
    rest = threading.Event()
    fake.set_responder(lambda request: Reply(content="Hello there, friend.", rest_after=rest))
    env = {"CRT_URL": svc.url, "CRT_API_TOKEN": TOKEN, "PATH": "/usr/bin:/bin"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "crt_loops.cli.main", "chat", "cli-stream", "hi"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    assert proc.stdout is not None
    seen = b""
    while b"Hello" not in seen:
        byte = proc.stdout.read(1)
        assert byte, f"crt ended before the first word: {seen!r}"
        seen += byte
    assert fake.in_flight == 1 and proc.poll() is None
    rest.set()
    tail, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 0, stderr
    assert (seen + tail).decode() == "Hello there, friend.\n"


def test_chat_failing_mid_reply_says_so_with_the_exit_code_of_a_5xx(
    crt: Any, fake: FakeOllama
) -> None:
    fake.set_responder(lambda request: Reply(content="Let me", stream_error="runner crashed"))
    code, out, err = crt("chat", "cli-chat", "tell me more")
    assert code == crt_cli.EXIT_FAILED
    assert out == "Let\n" and "runner crashed" in err and "saved" in err


def test_errors_are_json_under_json_and_bad_options_are_usage_errors(crt: Any) -> None:
    code, out, err = crt("--json", "threads", "show", "no-such-thread")
    assert code == 2 and out == ""
    error = json.loads(err)
    assert error["exit_code"] == 2 and "404" in error["error"]
    code, _, err = crt("status", "--timeout", "-1")
    assert code == 2 and "must be a positive number of seconds" in err
    code, _, err = crt("--json", "threads", "messages", "default", "--limit", "0")
    assert code == 2 and json.loads(err)["error"].endswith("must be at least 1, got 0")
    assert "Traceback" not in err


def test_a_closed_pipe_is_not_a_traceback(svc: Running) -> None:
    env = {"CRT_URL": svc.url, "CRT_API_TOKEN": TOKEN, "PATH": "/usr/bin:/bin"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "crt_loops.cli.main", "threads", "messages", "default"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # like `| head` exiting before crt writes
    with proc.stderr:
        stderr = proc.stderr.read().decode()
    assert proc.wait(30) in (0, crt_cli.EXIT_BROKEN_PIPE)
    assert "Traceback" not in stderr and "BrokenPipeError" not in stderr


def test_status_says_the_heartbeat_loop_is_stopped_instead_of_a_due_time(
    crt: Any, svc: Running
) -> None:
    api(svc, "POST", "/api/threads/default/heartbeat/config", json={"enabled": True})
    api(svc, "POST", "/api/heartbeat/stop")
    code, out, err = crt("status")
    assert code == 0, err
    heartbeat_line = next(line for line in out.splitlines() if line.startswith("Heartbeat"))
    assert "the loop is stopped, no run is due" in heartbeat_line
    assert "next due" not in heartbeat_line


def test_a_run_prints_the_shared_headline(crt: Any, fake: FakeOllama) -> None:
    hs.install(fake, hs.silent)
    code, out, err = crt("heartbeat", "run", "default", "--dry-run")
    assert code == 0, err
    assert "Dry run: the model proposed nothing" in out


def test_heartbeat_prompt_shows_what_the_latest_run_sent(crt: Any, fake: FakeOllama) -> None:
    hs.install(fake, hs.silent)
    code, _, err = crt("heartbeat", "run", "default", "--dry-run")
    assert code == 0, err
    code, out, err = crt("heartbeat", "prompt", "default")
    assert code == 0, err
    assert out.startswith("# run ") and "## system" in out and "## user" in out
    assert "Decide now" in out  # the end of the prompt, whole
    assert TOKEN not in out


# -- approvals -------------------------------------------------------------------------------


def test_approvals_list_approve_edited_reject_and_the_conflict_exit(crt: Any) -> None:
    code, _, err = crt("heartbeat", "config", "appr", "--enable", "--approval", "posts")
    assert code == 0, err
    ids = []
    for _ in range(2):
        code, out, err = crt("--json", "heartbeat", "run", "appr")
        assert code == 0, err
        run = json.loads(out)
        assert run["outcome"] == "proposed"
        ids.append(run["actions"][0]["action_id"])
    code, out, _ = crt("approvals", "--thread", "appr")
    assert code == 0 and "EXPIRES" in out, out
    assert all(f"\n{i} " in out for i in ids), (ids, out)
    code, out, err = crt("approvals", "approve", str(ids[0]), "--content", "Edited from the CLI.")
    assert code == 0, err
    assert "sent" in out and "Edited from the CLI." in out
    code, out, _ = crt("approvals", "reject", str(ids[1]), "--reason", "not my style")
    assert code == 0 and "rejected" in out
    code, _, err = crt("approvals", "approve", str(ids[1]))
    assert code == 5 and "rejected" in err
    code, out, _ = crt("approvals", "list", "--thread", "appr")
    assert code == 0 and "nothing is waiting" in out
