"""The HTTP API through the real lifespan (TestClient runs it): threads, messages, chat, loops,
heartbeat config/run-now/history/HEARTBEAT.md, and clear 4xx errors that write nothing."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from support import heartbeat_scripts as hs
from support.fake_ollama import FakeOllama, Reply
from support.service import LOCAL

from crt_loops.api.app import create_app
from crt_loops.settings import Settings


def detail(response: Any) -> str:
    return str(response.json()["detail"])


# -- threads and messages ------------------------------------------------------------------


def test_default_thread_exists_and_gets_never_create(client: TestClient) -> None:
    assert client.get("/api/threads/default").status_code == 200
    assert client.get("/api/threads/ghost").status_code == 404
    assert client.get("/api/threads/ghost/heartbeat/config").status_code == 404
    assert client.get("/api/threads/ghost/messages").status_code == 404
    assert client.get("/api/threads").json()["total"] == 1


def test_thread_crud(client: TestClient) -> None:
    r = client.post("/api/threads", json={"thread_id": "work", "title": "Work"})
    assert r.status_code == 201 and r.json()["created"] is True
    r = client.post("/api/threads", json={"thread_id": "work"})
    assert r.status_code == 200 and r.json()["created"] is False
    assert {t["thread_id"] for t in client.get("/api/threads").json()["threads"]} == {
        "default",
        "work",
    }
    assert client.delete("/api/threads/work").status_code == 204
    assert client.delete("/api/threads/work").status_code == 404
    assert client.delete("/api/threads/default").status_code == 409


@pytest.mark.parametrize("bad", ["a" * 65, "has space", "ünïcode", "dot.dot"])
def test_bad_thread_ids_are_422_naming_the_rule(client: TestClient, bad: str) -> None:
    r = client.get(f"/api/threads/{bad}/heartbeat/config")
    assert r.status_code == 422
    assert "^[A-Za-z0-9_-]{1,64}$" in detail(r)
    r = client.post(f"/api/threads/{bad}/messages", json={"content": "hi"})
    assert r.status_code == 422
    assert client.get("/api/threads").json()["total"] == 1  # nothing written


def test_messages_roundtrip_and_validation(client: TestClient) -> None:
    r = client.post("/api/threads/notes/messages", json={"role": "user", "content": "Hello"})
    assert r.status_code == 201
    message = r.json()
    assert message["thread_id"] == "notes" and message["importance"] is None
    assert message["created_at"].endswith("Z")
    listed = client.get("/api/threads/notes/messages").json()["messages"]
    assert [m["content"] for m in listed] == ["Hello"]
    r = client.post("/api/threads/notes/messages", json={"role": "robot", "content": "x"})
    assert r.status_code == 422 and "role" in r.text
    r = client.post("/api/threads/notes/messages", json={"content": ""})
    assert r.status_code == 422
    r = client.post("/api/threads/notes/messages", json={"content": "x", "extra": 1})
    assert r.status_code == 422 and "extra" in r.text
    assert len(client.get("/api/threads/notes/messages").json()["messages"]) == 1


# -- chat ----------------------------------------------------------------------------------


def test_chat_replies_and_stores_both_messages(client: TestClient, fake_ollama: FakeOllama) -> None:
    fake_ollama.set_responder(lambda req: "Nice to hear from you.")
    r = client.post("/api/threads/default/chat", json={"message": "Hi there"})
    assert r.status_code == 200, r.text
    assert r.json()["reply"] == "Nice to hear from you."
    contents = [
        m["content"] for m in client.get("/api/threads/default/messages").json()["messages"]
    ]
    assert contents == ["Hi there", "Nice to hear from you."]
    system = fake_ollama.chat_calls[-1]["messages"][0]
    assert system["role"] == "system" and "personal AI agent" in system["content"]


def test_chat_503_keeps_the_message_when_the_llm_is_down(
    client: TestClient, fake_ollama: FakeOllama
) -> None:
    fake_ollama.always(Reply(status=500, error="runner crashed"))
    r = client.post("/api/threads/default/chat", json={"message": "Are you there?"})
    assert r.status_code == 503
    assert "saved" in detail(r)
    contents = [
        m["content"] for m in client.get("/api/threads/default/messages").json()["messages"]
    ]
    assert contents == ["Are you there?"]


def _events(r: Any) -> list[dict[str, Any]]:
    assert r.headers["content-type"].startswith("application/x-ndjson"), r.text
    return [json.loads(line) for line in r.text.splitlines() if line.strip()]


def test_chat_streams_the_reply_as_it_is_written_then_the_stored_answer(
    client: TestClient, fake_ollama: FakeOllama
) -> None:
    fake_ollama.set_responder(lambda req: "Nice to hear from you again.")
    r = client.post("/api/threads/default/chat", json={"message": "Hi", "stream": True})
    assert r.status_code == 200
    events = _events(r)
    texts = [e["text"] for e in events if e["event"] == "text"]
    assert len(texts) == 6 and "".join(texts) == "Nice to hear from you again."
    done = events[-1]
    assert [e["event"] for e in events].count("done") == 1 and done["event"] == "done"
    assert done["reply"] == "Nice to hear from you again."
    stored = client.get("/api/threads/default/messages").json()["messages"]
    assert [m["content"] for m in stored] == ["Hi", "Nice to hear from you again."]
    assert done["assistant_message"]["id"] == stored[-1]["id"]
    assert fake_ollama.chat_calls[-1]["stream"] is True


def test_chat_stream_over_the_openai_backend(
    make_settings: Callable[..., Settings], fake_ollama: FakeOllama
) -> None:
    fake_ollama.set_responder(lambda req: "Two words.")
    settings = make_settings(
        ollama_host=fake_ollama.url + "/v1",
        llm_backend="openai",
        ollama_model="qwen3:8b",
        reflection_loop_enabled=False,
        personality_loop_enabled=False,
        journal_self_reply_loop_enabled=False,
    )
    with TestClient(create_app(settings), client=LOCAL) as c:
        r = c.post("/api/threads/default/chat", json={"message": "Hi", "stream": True})
    events = _events(r)
    assert [e["text"] for e in events if e["event"] == "text"] == ["Two", " words."]
    assert events[-1]["event"] == "done" and events[-1]["reply"] == "Two words."


def test_chat_stream_failing_mid_reply_ends_with_an_error_event_and_keeps_the_message(
    client: TestClient, fake_ollama: FakeOllama
) -> None:
    fake_ollama.always(Reply(content="I was about to", stream_error="runner crashed"))
    r = client.post("/api/threads/default/chat", json={"message": "Still there?", "stream": True})
    assert r.status_code == 200
    events = _events(r)
    assert events[0] == {"event": "text", "text": "I"}
    assert events[-1]["event"] == "error" and events[-1]["status"] == 503
    assert "runner crashed" in events[-1]["detail"] and "saved" in events[-1]["detail"]
    stored = client.get("/api/threads/default/messages").json()["messages"]
    assert [m["content"] for m in stored] == ["Still there?"]


def test_chat_stream_with_the_llm_down_is_a_plain_503(
    client: TestClient, fake_ollama: FakeOllama
) -> None:
    # The startup probe found the LLM up; once it has answered, the LLM goes away. The service
    # cannot know yet: the first streamed chat starts, and its failed call ends it with an
    # error event. From then on the LLM is known to be down, and a stream is a plain 503.
    probe = client.app.state.services.llm_probe  # type: ignore[attr-defined]
    probe.join(timeout=10)
    assert not probe.is_alive()
    fake_ollama.stop()
    r = client.post("/api/threads/default/chat", json={"message": "Hello?", "stream": True})
    assert r.status_code == 200 and _events(r)[-1]["event"] == "error"
    r = client.post("/api/threads/default/chat", json={"message": "Hello?", "stream": True})
    assert r.status_code == 503 and r.headers["content-type"].startswith("application/json")
    assert "saved" in detail(r)
    r = client.post("/api/threads/default/chat", json={"message": "x", "stream": "yes please"})
    assert r.status_code == 422 and "stream" in r.text


def test_many_configs_in_one_call_in_the_order_asked_with_the_missing_named(
    client: TestClient,
) -> None:
    client.post("/api/threads", json={"thread_id": "work"})
    client.post("/api/threads/work/heartbeat/config", json={"enabled": True, "every": "45m"})
    r = client.get(
        "/api/heartbeat/configs",
        params=[("thread_id", t) for t in ("work", "ghost", "default", "work")],
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert [c["thread_id"] for c in body["configs"]] == ["work", "default"]
    assert body["missing"] == ["ghost"]
    work = body["configs"][0]
    assert work == client.get("/api/threads/work/heartbeat/config").json()
    assert work["config"]["every_seconds"] == 2700 and work["config"]["enabled"] is True


def test_many_configs_refuses_bad_ids_and_too_many_naming_the_rule(client: TestClient) -> None:
    r = client.get("/api/heartbeat/configs", params={"thread_id": "has space"})
    assert r.status_code == 422 and "thread_id" in r.text and "^[A-Za-z0-9_-]{1,64}$" in r.text
    assert client.get("/api/heartbeat/configs").status_code == 422
    too_many = [("thread_id", f"t{i}") for i in range(101)]
    r = client.get("/api/heartbeat/configs", params=too_many)
    assert r.status_code == 422 and "thread_id" in r.text


# -- loops ---------------------------------------------------------------------------------


def test_loops_status_start_stop(client: TestClient) -> None:
    loops = {loop["name"]: loop for loop in client.get("/api/loops").json()["loops"]}
    assert list(loops) == ["reflection", "personality", "journal_self_reply", "heartbeat"]
    assert loops["reflection"]["running"] is False
    r = client.post("/api/loops/reflection/start")
    assert r.status_code == 200 and r.json()["running"] is True
    r = client.post("/api/loops/reflection/stop")
    assert r.status_code == 200 and r.json()["running"] is False and r.json()["stopped"]
    assert client.post("/api/loops/nope/start").status_code == 404


def test_loops_run_for_one_thread(client: TestClient) -> None:
    client.post("/api/threads/default/messages", json={"content": "I got the job!!"})
    r = client.post("/api/loops/run", json={"thread_id": "default", "loops": ["reflection"]})
    assert r.status_code == 200
    assert r.json()["results"]["reflection"]["threads_processed"] == 1
    scored = client.get("/api/threads/default/messages").json()["messages"][0]
    assert scored["importance"] is not None and scored["scored_by"] in ("llm", "heuristic")
    r = client.post("/api/loops/run", json={"thread_id": "ghost", "loops": ["reflection"]})
    assert r.status_code == 404
    r = client.post("/api/loops/run", json={"thread_id": "default", "loops": ["nope"]})
    assert r.status_code == 422


# -- heartbeat -----------------------------------------------------------------------------


def test_config_post_is_a_partial_update(client: TestClient) -> None:
    """The earlier system reset omitted fields on every POST."""
    r = client.post(
        "/api/threads/default/heartbeat/config",
        json={"enabled": True, "every": "1h", "target": "post", "max_actions": 2},
    )
    assert r.status_code == 200, r.text
    r = client.post("/api/threads/default/heartbeat/config", json={"temperature": 0.2})
    cfg = r.json()["config"]
    assert (cfg["enabled"], cfg["every_seconds"], cfg["target"], cfg["max_actions"]) == (
        True,
        3600,
        "post",
        2,
    )
    assert cfg["temperature"] == 0.2
    assert r.json()["next_due_at"] is not None


@pytest.mark.parametrize(
    ("patch", "field"),
    [
        ({"every": 5}, "every"),
        ({"every_seconds": 8 * 86400}, "every_seconds"),
        ({"max_actions": 9}, "max_actions"),
        ({"temperature": 3}, "temperature"),
        ({"target": "shout"}, "target"),
        ({"active_hours_start": 9, "active_hours_end": 9}, "active_hours"),
        ({"timezone": "Mars/Olympus"}, "timezone"),
        ({"bogus": 1}, "bogus"),
        ({"enabled": "sometimes"}, "enabled"),
    ],
)
def test_config_validation_names_the_field(
    client: TestClient, patch: dict[str, Any], field: str
) -> None:
    r = client.post("/api/threads/newthread/heartbeat/config", json=patch)
    assert r.status_code == 422
    assert field in r.text
    assert client.get("/api/threads/newthread").status_code == 404  # nothing written


def test_config_body_must_be_json_object(client: TestClient) -> None:
    r = client.post("/api/threads/default/heartbeat/config", content=b"{not json")
    assert r.status_code == 422 and "not valid JSON" in detail(r)
    r = client.post("/api/threads/default/heartbeat/config", content=b"[1, 2]")
    assert r.status_code == 422 and "object" in detail(r)


def test_run_now_history_and_status(client: TestClient, fake_ollama: FakeOllama) -> None:
    hs.install(fake_ollama, hs.poster)
    client.post("/api/threads/default/heartbeat/config", json={"enabled": True, "target": "post"})
    first = client.post("/api/threads/default/heartbeat/run-now").json()
    assert first["outcome"] == "acted" and first["trigger"] == "manual"
    (sent,) = first["actions"]
    assert sent["url"].endswith(f"/post/{sent['ledger_id']}")
    feed = client.get("/api/ledger/feed?sort=new").json()["posts"]
    assert feed[0]["id"] == sent["ledger_id"] and feed[0]["url"] == sent["url"]
    assert feed[0]["link"] is None
    dry = client.post("/api/threads/default/heartbeat/run-now?dry_run=true").json()
    assert dry["outcome"] == "dry_run" and dry["dry_run"] is True
    runs = client.get("/api/threads/default/heartbeat/history?limit=5").json()["runs"]
    assert [r["run_id"] for r in runs] == [dry["run_id"], first["run_id"]]  # newest first
    assert runs[1]["actions"][0]["url"] == sent["url"]
    assert all(a["url"] is None for a in runs[0]["actions"])  # a dry run sends nothing
    view = client.get("/api/threads/default/heartbeat/config").json()
    assert view["last_outcome"] == "dry_run" and view["last_run"] is not None
    status = client.get("/api/heartbeat/status").json()
    assert status["runs_by_outcome"] == {"acted": 1, "dry_run": 1}
    assert status["threads_enabled"] == 1 and status["next_due"]["thread_id"] == "default"
    assert status["llm"]["available"] is True
    assert client.post("/api/threads/ghost/heartbeat/run-now").status_code == 404
    assert client.get("/api/threads/default/heartbeat/history?limit=0").status_code == 422


def test_heartbeat_md_read_write(client: TestClient, tmp_path: Path) -> None:
    doc = client.get("/api/heartbeat/heartbeat.md").json()
    assert doc["effectively_empty"] is False and doc["path"].endswith("HEARTBEAT.md")
    # the seed's curl -d sends a form Content-Type; raw JSON without one works as well
    r = client.post(
        "/api/heartbeat/heartbeat.md",
        content=b'{"content": "# Only a heading\\n"}',
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert r.status_code == 200 and r.json()["effectively_empty"] is True
    assert (tmp_path / "HEARTBEAT.md").read_text(encoding="utf-8") == "# Only a heading\n"
    sha = r.json()["sha256"]
    r = client.post(
        "/api/heartbeat/heartbeat.md", json={"content": "x", "expected_sha256": "0" * 64}
    )
    assert r.status_code == 409
    r = client.post(
        "/api/heartbeat/heartbeat.md", json={"content": "- a\n", "expected_sha256": sha}
    )
    assert r.status_code == 200
    r = client.post("/api/heartbeat/heartbeat.md", json={"content": "x" * (65 * 1024)})
    assert r.status_code == 413
    assert (tmp_path / "HEARTBEAT.md").read_text(encoding="utf-8") == "- a\n"  # untouched
    assert client.post("/api/heartbeat/heartbeat.md", json={"text": "x"}).status_code == 422


def test_heartbeat_loop_start_stop_via_api(client: TestClient) -> None:
    assert client.get("/api/heartbeat/status").json()["running"] is False
    assert client.post("/api/heartbeat/start").json()["running"] is True
    r = client.post("/api/heartbeat/stop")
    assert r.json()["stopped"] is True and r.json()["running"] is False
    assert client.post("/api/heartbeat/start").json()["running"] is True  # restartable


def test_health_is_open_and_minimal(client: TestClient) -> None:
    body = client.get("/health").json()
    assert body["status"] == "ok" and body["db"] == "ok"
    assert set(body) == {
        "status",
        "version",
        "uptime_seconds",
        "db",
        "db_problem",
        "db_error",
        "db_pending_writes",
        "loops",
    }
    assert (body["db_problem"], body["db_error"], body["db_pending_writes"]) == (None, None, 0)


def test_a_ledger_that_cannot_start_is_explained_not_hidden(
    make_settings: Callable[..., Settings], fake_ollama: FakeOllama, tmp_path: Path
) -> None:
    """The port is taken by something that is not a Ledger: the service still runs, and both
    the Ledger status and the heartbeat's record say why, not just "see the log"."""
    import socket

    (tmp_path / "HEARTBEAT.md").write_text("## Checklist\n- Read the feed\n", encoding="utf-8")
    squatter = socket.socket()
    squatter.bind(("127.0.0.1", 0))
    squatter.listen(1)
    port = squatter.getsockname()[1]
    try:
        settings = make_settings(ollama_host=fake_ollama.url, ledger_port=port)
        with TestClient(create_app(settings), client=LOCAL) as client:
            r = client.get("/api/ledger/status")
            assert r.status_code == 503
            assert "did not start" in detail(r) and str(port) in detail(r)
            run = client.post("/api/threads/default/heartbeat/run-now").json()
            assert (run["outcome"], run["reason"]) == ("failed", "ledger_error")
            assert str(port) in run["error"]
    finally:
        squatter.close()
