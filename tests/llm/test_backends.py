"""Both backends against the same fake server: the total deadline, usage, cut replies, unknown
models, invalid code points, and the OpenAI-compatible protocol's own shapes."""

from __future__ import annotations

import json
import threading
import time

import pytest
from support.fake_ollama import FakeOllama, Reply

from crt_loops.core import metrics
from crt_loops.llm.client import (
    ChatMessage,
    HTTPBackend,
    LLMBadOutput,
    LLMResponseError,
    LLMTimeout,
    LLMTruncated,
    LLMUnknownModel,
    OllamaLLM,
    OpenAICompatibleLLM,
    build_llm,
)
from crt_loops.llm.openai import api_base

MSGS = [ChatMessage("system", "be brief"), ChatMessage("user", "hello there")]
MODEL = "llama3.2:latest"


def make(kind: str, fake: FakeOllama, timeout: float = 5.0) -> HTTPBackend:
    if kind == "openai":
        return OpenAICompatibleLLM(fake.url, MODEL, timeout_seconds=timeout)
    return OllamaLLM(fake.url, MODEL, timeout_seconds=timeout)


BACKENDS = ["ollama", "openai"]

# The deadline tests' replies would take 30 s; a call that ends in under 5 s kept its deadline
# of about half a second, with room for a loaded CI machine (one run there took 1.1 s).
WELL_BEFORE_THE_REPLY = 5.0


@pytest.mark.parametrize("kind", BACKENDS)
def test_reply_and_usage(kind: str, fake_ollama: FakeOllama) -> None:
    fake_ollama.always('{"a":1}')
    llm = make(kind, fake_ollama)
    schema = {"title": "Thing", "type": "object", "properties": {"a": {"type": "integer"}}}
    reply = llm.chat(MSGS, schema=schema, temperature=0.2, max_tokens=32)
    assert json.loads(reply.content) == {"a": 1}
    assert reply.usage.completion_tokens == 1 and reply.usage.prompt_tokens == 10
    if kind == "openai":
        assert reply.usage.cached_tokens == 4 and reply.usage.prompt_eval_tokens == 6
        sent = fake_ollama.calls_for("Thing")[-1]
        assert sent["max_tokens"] == 32 and sent["temperature"] == 0.2
        assert sent["response_format"]["json_schema"]["schema"] == schema
        assert sent["stream"] is True and sent["stream_options"] == {"include_usage": True}
    else:
        assert reply.usage.cached_tokens is None and reply.usage.prompt_ms == pytest.approx(0.2)
    assert llm.stats.prompt_tokens == 10 and llm.stats.completion_tokens == 1


@pytest.mark.parametrize("kind", BACKENDS)
def test_a_trickling_model_ends_at_the_total_deadline(kind: str, fake_ollama: FakeOllama) -> None:
    # One word every 0.1 s for 300 words: each read is quick, the whole would take 30 s.
    fake_ollama.always(Reply(content=" ".join(["word"] * 300), chunk_delay=0.1))
    llm = make(kind, fake_ollama, timeout=0.6)
    started = time.monotonic()
    with pytest.raises(LLMTimeout, match=r"0\.6 s"):
        llm.chat(MSGS)
    assert 0.6 <= time.monotonic() - started < WELL_BEFORE_THE_REPLY


@pytest.mark.parametrize("kind", BACKENDS)
def test_a_silent_model_after_the_headers_is_cut_by_the_watchdog(
    kind: str, fake_ollama: FakeOllama
) -> None:
    # Headers and a first word, then 30 s of nothing: no read returns, only the watchdog helps.
    fake_ollama.always(Reply(content="one two", chunk_delay=30))
    llm = make(kind, fake_ollama, timeout=0.5)
    started = time.monotonic()
    with pytest.raises(LLMTimeout):
        llm.chat(MSGS)
    assert 0.5 <= time.monotonic() - started < WELL_BEFORE_THE_REPLY
    assert not [t for t in threading.enumerate() if t.name == "llm-deadline"]


@pytest.mark.parametrize("kind", BACKENDS)
def test_no_headers_at_all_times_out_on_the_deadline(kind: str, fake_ollama: FakeOllama) -> None:
    fake_ollama.always(Reply(content="late", delay=30))
    llm = make(kind, fake_ollama, timeout=0.4)
    started = time.monotonic()
    with pytest.raises(LLMTimeout):
        llm.chat(MSGS)
    assert 0.4 <= time.monotonic() - started < WELL_BEFORE_THE_REPLY
    fake_ollama.release.set()


@pytest.mark.parametrize("kind", BACKENDS)
def test_cut_reply_keeps_what_came(kind: str, fake_ollama: FakeOllama) -> None:
    fake_ollama.always(Reply(content='{"summary": "half', done_reason="length"))
    with pytest.raises(LLMTruncated) as info:
        make(kind, fake_ollama).chat(MSGS, max_tokens=3)
    assert info.value.partial == '{"summary": "half' and info.value.max_tokens == 3


@pytest.mark.parametrize("kind", BACKENDS)
def test_unknown_model_names_the_model_and_what_the_server_has(
    kind: str, fake_ollama: FakeOllama
) -> None:
    llm = make(kind, fake_ollama)
    with pytest.raises(LLMUnknownModel, match="'nope:1b' is not on the server") as info:
        llm.chat(MSGS, model="nope:1b")
    assert info.value.model == "nope:1b" and MODEL in info.value.known
    assert llm.models() == fake_ollama.models
    # Nothing was sent for it: the list answered first.
    assert not [r for r in fake_ollama.requests if r.get("model") == "nope:1b"]


@pytest.mark.parametrize("kind", BACKENDS)
def test_lone_surrogates_from_the_model_become_replacement_characters(
    kind: str, fake_ollama: FakeOllama
) -> None:
    fake_ollama.always("ok \ud800 and \udfff done")
    reply = make(kind, fake_ollama).chat(MSGS)
    assert reply.content == "ok \ufffd and \ufffd done"
    reply.content.encode("utf-8")  # storable and serialisable


@pytest.mark.parametrize("kind", BACKENDS)
def test_errors_are_translated(kind: str, fake_ollama: FakeOllama) -> None:
    llm = make(kind, fake_ollama)
    fake_ollama.always(Reply(status=500, error="boom"))
    with pytest.raises(LLMResponseError, match="500") as info:
        llm.chat(MSGS)
    assert info.value.status_code == 500
    fake_ollama.always(Reply(content="one two", stream_error="GPU out of memory"))
    with pytest.raises(LLMResponseError, match="GPU out of memory") as info:
        llm.chat(MSGS)
    assert info.value.status_code == -1
    fake_ollama.always(Reply(raw_body=b"data: not json\n\n" if kind == "openai" else b"nope"))
    with pytest.raises(LLMBadOutput):
        llm.chat(MSGS)


def test_tokens_are_counted_in_metrics(fake_ollama: FakeOllama) -> None:
    def value(kind: str) -> float:
        sample = metrics.LLM_TOKENS.labels(backend="openai", kind=kind)
        return float(sample._value.get())

    before = {k: value(k) for k in ("prompt", "cached", "completion", "prompt_eval")}
    fake_ollama.always("three little words")
    make("openai", fake_ollama).chat(MSGS)
    assert value("prompt") - before["prompt"] == 10
    assert value("cached") - before["cached"] == 4
    assert value("prompt_eval") - before["prompt_eval"] == 6
    assert value("completion") - before["completion"] == 3


def test_openai_sends_the_api_key_and_lists_models(fake_ollama: FakeOllama) -> None:
    llm = build_llm(
        enabled=True,
        host=fake_ollama.url,
        model=MODEL,
        timeout_seconds=5,
        backend="openai",
        api_key="sk-test",
    )
    assert isinstance(llm, OpenAICompatibleLLM)
    assert llm.available() is True
    status = llm.status()
    assert status["backend"] == "openai" and status["models"] == fake_ollama.models
    assert llm.host == fake_ollama.url + "/v1"


def test_api_base_adds_v1_only_to_a_bare_server_url() -> None:
    assert api_base("http://127.0.0.1:8080") == "http://127.0.0.1:8080/v1"
    assert api_base("http://127.0.0.1:8080/") == "http://127.0.0.1:8080/v1"
    assert api_base("https://api.example.com/v1/") == "https://api.example.com/v1"
    assert api_base("http://h:1/openai/v1") == "http://h:1/openai/v1"
