"""Benchmarks for CRT Loops. Run ``make bench`` or ``python -m bench [NAME ...]``.

Never part of ``make test``: each benchmark measures this machine, writes its figures to
``bench/results.json`` and says which targets it met. See bench/README.md.
"""

#: Benchmark modules, in the order a full run executes them (name -> one-line title).
BENCHMARKS: dict[str, str] = {
    "idle": "Idle cost: 1,000 processed threads, four loops at 1 s, nothing due",
    "backlog": "Backlog: 200 x 50 and 1,000 x 20 new messages, LLM disabled",
    "scheduler": "Scheduler scale: 100,000 threads with a heartbeat config",
    "heartbeat": "Heartbeat overhead: one full run minus the LLM's round trip",
    "concurrency": "Concurrency: 100 due threads, 0.5 s LLM, max concurrency 4",
    "prompt": "Prompt budget: heartbeat prompt size at CRT_LOOP_WINDOW=20, full feed",
    "api_load": "API under load: status and config endpoints while the loops are busy",
    "scale": "Scale: 10,000 threads, 1,000,000 messages: memory, startup, dashboard load",
    "multi_host": "Several hosts on one PostgreSQL: heartbeats/s at 1-3 hosts, idle cost",
    "real_model": "Real model: SmolLM2-135M on llama.cpp, Ollama and OpenAI-compatible backends",
}
