"""The real model: SmolLM2-135M on llama.cpp's server, through both backends.

The service runs as a subprocess (``uvicorn``) with ``CRT_LLM_BACKEND=ollama`` (through the
test support's Ollama-API front) and then ``openai`` (straight to llama.cpp). Per backend:
chat replies (wall time), a batch of messages scored by the reflection loop (share scored by
the LLM, not the heuristic), and eight heartbeats of one thread, dry run (wall time, usable
decisions, tokens, and how much of the second prompt the server had to evaluate again).

Needs the real-model environment (``scripts/real-model-env.sh``; ``make bench`` makes it).
Wall-clock figures depend on what else the 2 cores are doing: the load average is recorded
before and after each backend. llama.cpp gets a thread per core, its own default and what a user
runs (the test lane gives it one, since there it shares the cores with other tests); on this
2-core machine two threads generated 73-82 tokens/s where one gave 54-61.
"""

from __future__ import annotations

import os
import statistics
import time
from typing import Any

import httpx
from support.llamacpp import env_python, start_llama_server
from support.ollama_front import OllamaFront
from support.service import Service

from bench.common import BenchContext, BenchResult

TITLE = "Real model: SmolLM2-135M on llama.cpp, Ollama and OpenAI-compatible backends"
HEARTBEAT_MD = """# Heartbeat checklist
- Read the Ledger feed and the new comments on your posts.
- Upvote a post you find useful; comment only when you add something specific.
- Stay silent when nothing is worth saying.
"""
CHATS = [
    "Hello! How are you today?",
    "I started a new job at a bakery. Any tips for the first week?",
    "What is a good way to remember names?",
    "Can you suggest a short evening walk routine?",
]
SCORED = [
    "I started a new job at the bakery on Monday.",
    "My sister is getting married in June and I am giving the speech.",
    "Please keep your answers short.",
    "The oven broke today and we lost a whole batch of bread.",
    "I am thinking about learning to play the cello.",
    "thanks!",
    "My landlord wants to raise the rent by 20 percent.",
    "I ran 5 km this morning without stopping for the first time.",
    "ok",
    "My grandmother is in hospital, it looks serious.",
]
USABLE = ("acted", "silent", "dry_run")


def _env(backend: str, url: str, alias: str) -> dict[str, str]:
    return {
        "CRT_LLM_BACKEND": backend,
        "CRT_LLM_BASE_URL": url,
        "CRT_OLLAMA_MODEL": alias,
        "CRT_LLM_TIMEOUT_SECONDS": "120",
        "CRT_REFLECTION_LOOP_ENABLED": "false",
        "CRT_PERSONALITY_LOOP_ENABLED": "false",
        "CRT_JOURNAL_SELF_REPLY_LOOP_ENABLED": "false",
        "CRT_HEARTBEAT_LOOP_ENABLED": "false",
        "CRT_LOG_LEVEL": "WARNING",
    }


def _one_backend(backend: str, svc: Service, runs: int) -> dict[str, Any]:
    client = httpx.Client(base_url=svc.url, timeout=300)
    out: dict[str, Any] = {"load_before": [round(x, 2) for x in os.getloadavg()]}
    chat_s: list[float] = []
    for text in CHATS:
        started = time.perf_counter()
        resp = client.post("/api/threads/chat/chat", json={"message": text})
        chat_s.append(time.perf_counter() - started)
        out.setdefault("chat_status", []).append(resp.status_code)
        if resp.status_code == 200:
            out.setdefault("chat_tokens", []).append(resp.json()["tokens"])
    out["chat_s"] = [round(s, 2) for s in chat_s]

    for text in SCORED:
        client.post("/api/threads/scored/messages", json={"content": text}).raise_for_status()
    started = time.perf_counter()
    ran = client.post("/api/loops/run", json={"thread_id": "scored", "loops": ["reflection"]})
    out["scoring_s"] = round(time.perf_counter() - started, 2)
    out["scoring_result"] = ran.json()["results"]["reflection"]
    msgs = client.get("/api/threads/scored/messages").json()["messages"]
    out["scored_by"] = [m["scored_by"] for m in msgs]

    (svc.tmp / "HEARTBEAT.md").write_text(HEARTBEAT_MD, encoding="utf-8")
    for text in SCORED[:4]:
        client.post("/api/threads/hb/messages", json={"content": text}).raise_for_status()
    config = {"enabled": True, "every": "30m", "target": "any", "dry_run": True}
    client.post("/api/threads/hb/heartbeat/config", json=config).raise_for_status()
    heartbeats = []
    for _ in range(runs):
        started = time.perf_counter()
        run = client.post("/api/threads/hb/heartbeat/run-now").json()
        run["wall_s"] = round(time.perf_counter() - started, 2)
        heartbeats.append(
            {k: run.get(k) for k in ("outcome", "reason", "wall_s", "tokens", "prompt_chars")}
            | {"error": (run.get("error") or "")[:200], "summary": run.get("summary", "")[:160]}
        )
    out["heartbeats"] = heartbeats
    out["load_after"] = [round(x, 2) for x in os.getloadavg()]
    client.close()
    return out


def _reeval_share(heartbeats: list[dict[str, Any]]) -> float | None:
    """The share of the second heartbeat's prompt the server evaluated again."""
    if len(heartbeats) < 2:
        return None
    first, second = heartbeats[0]["tokens"] or {}, heartbeats[1]["tokens"] or {}
    evaluated = second.get("prompt_eval_tokens")
    total = second.get("prompt_tokens") if second.get("cached_tokens") is not None else None
    # Ollama counts only the evaluated part: the first (cold) run's count is the whole prompt.
    total = total or first.get("prompt_eval_tokens")
    if evaluated is None or not total:
        return None
    return round(evaluated / total, 3)


def run(ctx: BenchContext) -> BenchResult:
    result = BenchResult("real_model", TITLE)
    if env_python() is None:
        result.error = "no real-model environment: run ./scripts/real-model-env.sh"
        return result
    runs = 3 if ctx.quick else 8
    llama = start_llama_server(ctx.scratch("llama"), threads=os.cpu_count() or 1)
    try:
        with OllamaFront(llama.openai_url) as front:
            for backend, url in (("ollama", front.url), ("openai", llama.url)):
                tmp = ctx.scratch(f"service-{backend}")
                with Service(tmp, env=_env(backend, url, llama.alias)) as svc:
                    data = _one_backend(backend, svc, runs)
                result.details[backend] = data
                _figures(result, backend, data, runs)
    finally:
        llama.stop()
    return result


def _figures(result: BenchResult, backend: str, data: dict[str, Any], runs: int) -> None:
    load = f"load {data['load_before'][0]:.1f} -> {data['load_after'][0]:.1f}"
    walls = [h["wall_s"] for h in data["heartbeats"]]
    usable = sum(h["outcome"] in USABLE for h in data["heartbeats"])
    ok_chats = [s for s, c in zip(data["chat_s"], data["chat_status"], strict=True) if c == 200]
    scored = [s for s in data["scored_by"] if s is not None]
    llm_share = round(sum(s == "llm" for s in scored) / len(scored), 3) if scored else None
    p = f"{backend}_"
    result.add(p + "heartbeat_wall_median", round(statistics.median(walls), 2), "s", "<=", 10, load)
    result.add(p + "usable_decisions", usable, f"of {runs}", ">=", round(runs * 7 / 8), load)
    result.add(p + "messages_scored_by_llm", llm_share, "share", ">=", 0.8, load)
    result.add(
        p + "chat_median",
        round(statistics.median(ok_chats), 2) if ok_chats else None,
        "s",
        "<=",
        5,
        f"{len(ok_chats)} of {len(data['chat_s'])} answered; {load}",
    )
    result.add(
        p + "second_heartbeat_reevaluated",
        _reeval_share(data["heartbeats"]),
        "share",
        "<=",
        0.3,
        "prompt tokens evaluated again / whole prompt",
    )
    tokens = [h["tokens"] or {} for h in data["heartbeats"]]
    prompt = [t.get("prompt_tokens") for t in tokens if t.get("prompt_tokens")]
    gen = [t.get("completion_tokens") for t in tokens if t.get("completion_tokens")]
    result.add(p + "heartbeat_prompt_tokens_median", statistics.median(prompt) if prompt else None)
    result.add(p + "heartbeat_completion_tokens_median", statistics.median(gen) if gen else None)
