"""What the API says about the LLM: the server's models, warnings for a model it lacks, and
the token counts of chat replies."""

from __future__ import annotations

from fastapi.testclient import TestClient
from support.fake_ollama import FakeOllama, Reply


def test_a_model_the_server_lacks_is_warned_about_at_config_time(
    client: TestClient, fake_ollama: FakeOllama
) -> None:
    url = "/api/threads/default/heartbeat/config"
    body = client.post(url, json={"model": "nosuch:7b"}).json()
    assert body["config"]["model"] == "nosuch:7b"  # kept: it may be pulled later
    assert "nosuch:7b" in body["warnings"][0] and "llama3.2:latest" in body["warnings"][0]
    assert "warnings" not in client.post(url, json={"model": "qwen3:8b"}).json()


def test_status_lists_the_servers_models(client: TestClient, fake_ollama: FakeOllama) -> None:
    llm = client.get("/api/heartbeat/status").json()["llm"]
    assert llm["models"] == fake_ollama.models and llm["backend"] == "ollama"


def test_chat_reports_tokens_and_keeps_a_cut_reply(
    client: TestClient, fake_ollama: FakeOllama
) -> None:
    fake_ollama.always("a short answer")
    body = client.post("/api/threads/t/chat", json={"message": "hi"}).json()
    assert body["tokens"]["completion_tokens"] == 3 and body["truncated"] is False
    assert fake_ollama.chat_calls[-1]["options"]["num_predict"] == 512
    fake_ollama.always(Reply(content="a very long answer that", done_reason="length"))
    cut = client.post("/api/threads/t/chat", json={"message": "tell me everything"})
    assert cut.status_code == 200, cut.text
    reply = cut.json()["reply"]
    assert cut.json()["truncated"] is True
    assert reply.startswith("a very long answer that") and "cut at the reply length" in reply


def test_chat_survives_lone_surrogates_from_the_model(
    client: TestClient, fake_ollama: FakeOllama
) -> None:
    fake_ollama.always("broken \ud83d text")
    resp = client.post("/api/threads/t/chat", json={"message": "hi"})
    assert resp.status_code == 200, resp.text
    assert resp.json()["reply"] == "broken \ufffd text"
    stored = client.get("/api/threads/t/messages").json()["messages"][-1]
    assert stored["content"] == "broken \ufffd text"
