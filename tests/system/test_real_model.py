"""The real-model lane: the whole service driven by SmolLM2-135M on llama.cpp's server.

Through both backends: Ollama's API (an Ollama-API front in the test support, forwarding to
llama.cpp) and the OpenAI-compatible API straight to llama.cpp. Per backend, a handful of
calls: a chat reply, LLM scoring of a batch of messages, a reflection, a personality update,
a self-reply, and two heartbeats that act or stay silent, the second reusing the server's
prompt cache. ``make test`` builds the model's environment first (scripts/real-model-env.sh);
without it these tests are skipped with the command to run.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from support.llamacpp import LlamaServer, env_python, start_llama_server
from support.ollama_front import OllamaFront
from support.service import Service

# One group under `--dist loadgroup`: both backends share the module's llama.cpp server (two
# servers at once would each get half the cores).
pytestmark = [
    pytest.mark.real_model,
    pytest.mark.slow,
    pytest.mark.timeout(300),
    pytest.mark.xdist_group("real-model"),
]

MESSAGES = [
    "I started a new job at the bakery on Monday.",
    "My sister is getting married in June and I am giving the speech.",
    "Please keep your answers short.",
    "The oven broke today and we lost a whole batch of bread.",
    "I am thinking about learning to play the cello.",
    "thanks!",
]
HEARTBEAT_MD = """# Heartbeat checklist
- Read the Ledger feed.
- Upvote a post you find useful.
- Stay silent when nothing is worth saying.
"""
USABLE = {"acted", "silent", "dry_run"}
# SmolLM2-135M generates 60-150 tokens/s on 2 idle cores. Far below that the machine is shared
# with other heavy work and every deadline here would measure the neighbours, not the service.
MIN_TOKENS_PER_SECOND = 5.0


def generation_speed(server: LlamaServer) -> float:
    """Tokens per second of one short reply, as llama.cpp times it."""
    body = {
        "messages": [{"role": "user", "content": "Say hello in five words."}],
        "max_tokens": 16,
    }
    resp = httpx.post(server.openai_url + "/chat/completions", json=body, timeout=120)
    resp.raise_for_status()
    return float(resp.json()["timings"]["predicted_per_second"])


@pytest.fixture(scope="module")
def llama(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LlamaServer]:
    if env_python() is None:
        pytest.skip("no real-model environment: run ./scripts/real-model-env.sh (make test does)")
    server = start_llama_server(tmp_path_factory.mktemp("llama"))
    try:
        speed = generation_speed(server)
        if speed < MIN_TOKENS_PER_SECOND:
            load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
            pytest.skip(
                f"the CPU is too busy for the real model: {speed:.1f} tokens/s "
                f"(< {MIN_TOKENS_PER_SECOND:g}; load average {load})"
            )
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def front(llama: LlamaServer) -> Iterator[OllamaFront]:
    with OllamaFront(llama.openai_url) as f:
        yield f


def service_env(backend: str, llama: LlamaServer, front: OllamaFront) -> dict[str, str]:
    url = front.url if backend == "ollama" else llama.url
    return {
        "CRT_LLM_BACKEND": backend,
        "CRT_LLM_BASE_URL": url,
        "CRT_OLLAMA_MODEL": llama.alias,
        "CRT_LLM_TIMEOUT_SECONDS": "90",
        # The loops are run on demand below, not on their schedules.
        "CRT_REFLECTION_LOOP_ENABLED": "false",
        "CRT_PERSONALITY_LOOP_ENABLED": "false",
        "CRT_JOURNAL_SELF_REPLY_LOOP_ENABLED": "false",
        "CRT_HEARTBEAT_LOOP_ENABLED": "false",
        "CRT_REFLECTION_THRESHOLD": "1",
        "CRT_JOURNAL_SELF_REPLY_CHANCE": "1",
        "CRT_JOURNAL_SELF_REPLY_MIN_SECONDS": "0",
        "CRT_LEDGER_POST_COOLDOWN_SECONDS": "0",
    }


def post(svc: Service, path: str, body: dict[str, Any] | None = None) -> httpx.Response:
    return httpx.post(svc.url + path, json=body, timeout=180)


def get(svc: Service, path: str) -> Any:
    resp = httpx.get(svc.url + path, timeout=30)
    assert resp.status_code == 200, resp.text
    return resp.json()


@pytest.mark.parametrize("backend", ["ollama", "openai"])
def test_the_service_thinks_with_a_real_model(
    backend: str, llama: LlamaServer, front: OllamaFront, tmp_path: Path
) -> None:
    (tmp_path / "HEARTBEAT.md").write_text(HEARTBEAT_MD, encoding="utf-8")
    with Service(tmp_path, env=service_env(backend, llama, front)) as svc:
        status = get(svc, "/api/heartbeat/status")["llm"]
        assert status["available"] is True and status["backend"] == backend
        assert status["models"] and any(llama.alias in m for m in status["models"])

        # Chat: a real reply, with the call's tokens.
        chat = post(svc, "/api/threads/real/chat", {"message": "Hello! How are you today?"})
        assert chat.status_code == 200, chat.text
        assert chat.json()["reply"].strip()
        assert chat.json()["tokens"]["completion_tokens"] > 0

        # Reflection (LLM scoring, then a reflection), personality and a self-reply.
        for text in MESSAGES:
            assert post(svc, "/api/threads/real/messages", {"content": text}).status_code == 201
        loops = ["reflection", "personality", "journal_self_reply"]
        ran = post(svc, "/api/loops/run", {"thread_id": "real", "loops": loops})
        assert ran.status_code == 200, ran.text
        results = ran.json()["results"]
        messages = get(svc, "/api/threads/real/messages")["messages"]
        user = [m for m in messages if m["role"] == "user"]
        by_llm = [m for m in user if m["scored_by"] == "llm"]
        assert len(by_llm) >= 0.8 * len(user), (results["reflection"], user)
        reflection = get(svc, "/api/threads/real/reflection")
        assert reflection["latest_reflection"] is not None, reflection
        personality = get(svc, "/api/threads/real/personality")
        assert personality["profile"] is not None, personality
        journal = get(svc, "/api/threads/real/journal")["entries"]
        kinds = [e["entry_type"] for e in journal]
        assert "self_reply" in kinds, kinds
        assert results["reflection"]["llm_calls"] >= 1 and results["reflection"]["usage"]

        # Two heartbeats: a usable decision each time; the second reuses the prompt cache.
        config = {"enabled": True, "every": "30m", "target": "any", "dry_run": True}
        assert post(svc, "/api/threads/real/heartbeat/config", config).status_code == 200
        runs = []
        for _ in range(2):
            run = post(svc, "/api/threads/real/heartbeat/run-now")
            assert run.status_code == 200, run.text
            runs.append(run.json())
        outcomes = [(r["outcome"], r["reason"], r["error"], r["raw_reply"]) for r in runs]
        assert sum(r["outcome"] in USABLE for r in runs) >= 1, outcomes
        for r in runs:
            assert r["tokens"]["prompt_tokens"] and r["tokens"]["completion_tokens"], r
        if backend == "openai":
            second = runs[1]["tokens"]
            assert second["prompt_eval_tokens"] <= 0.3 * second["prompt_tokens"], second

        scrape = httpx.get(svc.url + "/metrics", timeout=10).text
        assert f'crt_llm_tokens_total{{backend="{backend}",kind="completion"}}' in scrape
