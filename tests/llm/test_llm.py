"""The Ollama adapter through the real ``ollama`` client against a fake server on loopback."""

from __future__ import annotations

import json
import socket

import pytest
from support.fake_ollama import FakeOllama, Reply

from crt_loops.llm.client import (
    ChatMessage,
    DisabledLLM,
    LLMBadOutput,
    LLMResponseError,
    LLMTimeout,
    LLMTruncated,
    LLMUnavailable,
    OllamaLLM,
)

MSGS = [ChatMessage("user", "hello there")]


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_chat_sends_schema_options_and_keep_alive(fake_ollama: FakeOllama) -> None:
    fake_ollama.always(Reply(content='{"a": 1}'))
    llm = OllamaLLM(fake_ollama.url, "llama3.2:latest")
    schema = {"title": "Thing", "type": "object", "properties": {"a": {"type": "integer"}}}
    reply = llm.chat(MSGS, schema=schema, temperature=0.1, max_tokens=64, keep_alive="45m")
    assert json.loads(reply.content) == {"a": 1}
    assert reply.done_reason == "stop" and reply.model == "llama3.2:latest"
    assert reply.prompt_chars == len("hello there")
    sent = fake_ollama.chat_calls[-1]
    assert sent["format"] == schema
    assert sent["options"] == {"temperature": 0.1, "num_predict": 64}
    assert sent["keep_alive"] == "45m"
    assert sent["stream"] is True  # streamed, so the total deadline holds chunk by chunk
    assert sent["messages"] == [{"role": "user", "content": "hello there"}]


def test_per_call_model_override(fake_ollama: FakeOllama) -> None:
    llm = OllamaLLM(fake_ollama.url, "llama3.2:latest")
    assert llm.chat(MSGS, model="qwen3:8b").model == "qwen3:8b"
    assert fake_ollama.chat_calls[-1]["model"] == "qwen3:8b"


def test_unknown_model_is_a_response_error_with_a_hint(fake_ollama: FakeOllama) -> None:
    llm = OllamaLLM(fake_ollama.url, "missing:7b")
    with pytest.raises(LLMResponseError, match="ollama pull missing:7b") as info:
        llm.chat(MSGS)
    assert info.value.status_code == 404


def test_server_error_is_translated(fake_ollama: FakeOllama) -> None:
    fake_ollama.always(Reply(status=500, error="model runner crashed"))
    with pytest.raises(LLMResponseError, match="model runner crashed") as info:
        OllamaLLM(fake_ollama.url, "llama3.2:latest").chat(MSGS)
    assert info.value.status_code == 500


def test_length_cut_is_a_failure_not_repaired(fake_ollama: FakeOllama) -> None:
    fake_ollama.always(Reply(content='{"actions": [', done_reason="length"))
    with pytest.raises(LLMTruncated, match="max_tokens=5") as info:
        OllamaLLM(fake_ollama.url, "llama3.2:latest").chat(MSGS, max_tokens=5)
    assert info.value.partial == '{"actions": ['  # what was cut is kept for the record


def test_garbage_body_is_bad_output(fake_ollama: FakeOllama) -> None:
    fake_ollama.always(Reply(raw_body=b"<html>proxy error</html>"))
    with pytest.raises(LLMBadOutput):
        OllamaLLM(fake_ollama.url, "llama3.2:latest").chat(MSGS)


def test_timeout_is_translated(fake_ollama: FakeOllama) -> None:
    fake_ollama.always(Reply(content="late", delay=1.0))
    llm = OllamaLLM(fake_ollama.url, "llama3.2:latest", timeout_seconds=0.2)
    with pytest.raises(LLMTimeout):
        llm.chat(MSGS)


def test_refused_connection_is_unavailable_and_marks_probe_down() -> None:
    llm = OllamaLLM(f"http://127.0.0.1:{closed_port()}", "llama3.2:latest")
    with pytest.raises(LLMUnavailable, match="cannot reach Ollama"):
        llm.chat(MSGS)
    assert llm.status()["available"] is False


def test_probe_is_cached(fake_ollama: FakeOllama) -> None:
    now = [0.0]
    llm = OllamaLLM(fake_ollama.url, "llama3.2:latest", clock=lambda: now[0])
    assert llm.available() and llm.available() and llm.available()
    assert fake_ollama.version_calls == 1
    now[0] += 31
    assert llm.available()
    assert fake_ollama.version_calls == 2
    assert llm.available(refresh=True)
    assert fake_ollama.version_calls == 3


def test_probe_of_missing_server_is_fast_and_cached() -> None:
    now = [0.0]
    llm = OllamaLLM(f"http://127.0.0.1:{closed_port()}", "m", clock=lambda: now[0])
    assert llm.available() is False
    assert llm.status()["last_error"]


def test_client_is_built_lazily_without_network(fake_ollama: FakeOllama) -> None:
    OllamaLLM(fake_ollama.url, "llama3.2:latest")
    assert fake_ollama.requests == [] and fake_ollama.version_calls == 0


def test_disabled_llm_never_calls() -> None:
    llm = DisabledLLM("http://x", "m")
    assert llm.available() is False
    with pytest.raises(LLMUnavailable, match="CRT_LLM_ENABLED=false"):
        llm.chat(MSGS)


def test_fake_streams_protocol_faithfully(fake_ollama: FakeOllama) -> None:
    """The fake's streaming answers satisfy the real client (every line carries ``message``)."""
    import httpx
    import ollama

    fake_ollama.always("one two three")
    client = ollama.Client(host=fake_ollama.url, timeout=httpx.Timeout(5, connect=2))
    parts = [
        c.message.content for c in client.chat(model="llama3.2:latest", messages=[], stream=True)
    ]
    assert "".join(p or "" for p in parts) == "one two three"
    fake_ollama.always(Reply(content="one two", stream_error="GPU out of memory"))
    with pytest.raises(ollama.ResponseError) as info:
        list(client.chat(model="llama3.2:latest", messages=[], stream=True))
    assert info.value.status_code == -1
