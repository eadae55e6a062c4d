"""The startup banner: where the dashboard is, and what works yet.

Printed once the socket listens (the address is known only then), it answers a newcomer's first
questions in a few lines: which URL to open, whether a model answers and what to do if not, which
Ledger the agent posts to, and which loops run.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any


def banner_lines(
    *,
    url: str,
    llm: Mapping[str, Any],
    ledger: Mapping[str, Any],
    loops: Iterable[tuple[str, bool]],
) -> list[str]:
    """The banner's lines. ``llm`` is the LLM's ``status()``; ``ledger`` has ``url``,
    ``embedded``, ``agent`` and ``error``; ``loops`` is (name, running) pairs."""
    base = url.rstrip("/")
    lines = [
        "CRT Loops is ready",
        f"  dashboard  {base}/",
        f"  API docs   {base}/docs",
    ]
    model, host = llm.get("model", "?"), llm.get("host", "?")
    backend = llm.get("backend", "ollama")
    if not llm.get("enabled", True):
        lines.append(f"  LLM        off (CRT_LLM_ENABLED=false): heuristics only, model {model}")
    elif llm.get("available"):
        lines.append(f"  LLM        {backend} at {host}, model {model}: reachable")
    else:
        lines.append(
            f"  LLM        {backend} at {host}, model {model}: NOT reachable; "
            f"start it with `ollama serve` and `ollama pull {model}` (chat answers 503 until then)"
        )
    if ledger.get("error"):
        lines.append(f"  Ledger     unavailable: {ledger['error']}")
    else:
        where = "embedded" if ledger.get("embedded") else "remote"
        lines.append(f"  Ledger     {where} at {ledger.get('url')}, agent {ledger.get('agent')}")
    running = [name for name, on in loops if on]
    stopped = [name for name, on in loops if not on]
    text = ", ".join(running) or "none"
    if stopped:
        text += f" (not running: {', '.join(stopped)}; start with `crt loops start NAME`)"
    lines.append(f"  loops      {text}")
    lines.append("  stop       Ctrl-C")
    return lines
