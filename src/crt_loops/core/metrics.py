"""Prometheus metrics: what the loops, the heartbeat, the LLM and the Ledger client did.

Every metric is defined here and nowhere else, with the ``crt_`` prefix, and is recorded by one
call from the code it measures (``observe_*`` below). This module imports nothing of ours, so
any module can import it without a cycle.

=====================================  =========  ==========================  ================
name                                   type       labels                      recorded in
=====================================  =========  ==========================  ================
crt_loop_ticks_total                   counter    loop, outcome               BackgroundLoop
crt_loop_tick_duration_seconds         histogram  loop                        BackgroundLoop
crt_heartbeat_runs_total               counter    outcome, reason, trigger    HeartbeatRunner
crt_heartbeat_run_duration_seconds     histogram  outcome                     HeartbeatRunner
crt_llm_call_duration_seconds          histogram  outcome                     OllamaLLM.chat
crt_llm_prompt_chars                   histogram  (none)                      OllamaLLM.chat
crt_ledger_requests_total              counter    method, status              LedgerClient
=====================================  =========  ==========================  ================

Label values: a loop tick's ``outcome`` is ``ok``, ``failed`` or ``lease_held``; a heartbeat
run's ``reason`` is ``none`` when the run has none; an LLM call's ``outcome`` is ``ok``,
``truncated``, or the error kind (``unavailable``, ``timeout``, ``response_error``,
``bad_output``, ``error``); a Ledger request's ``status`` is the HTTP status code, or ``error``
when no answer came (connection refused, timeout, dropped connection).

Under ``uvicorn --workers N`` each worker is its own process with its own counters. When
``PROMETHEUS_MULTIPROC_DIR`` names an empty, writable directory *before* the service starts,
prometheus-client keeps every worker's values in files there and :func:`render` adds them up,
so any worker answers a scrape with the totals of all of them. Without it a scrape shows only
the worker that answered it. prometheus-client reads that variable itself, once, at import.
"""

from __future__ import annotations

import re

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
    values,
)

__all__ = [
    "CONTENT_TYPE",
    "HEARTBEAT_RUNS",
    "HEARTBEAT_RUN_SECONDS",
    "LEDGER_REQUESTS",
    "LLM_CALL_SECONDS",
    "LLM_PROMPT_CHARS",
    "LOOP_TICKS",
    "LOOP_TICK_SECONDS",
    "METRIC_NAMES",
    "llm_outcome",
    "multiprocess_mode",
    "observe_heartbeat_run",
    "observe_ledger_request",
    "observe_llm_call",
    "observe_loop_tick",
    "render",
]

CONTENT_TYPE = CONTENT_TYPE_LATEST

# Our metrics live in their own registry: importing this module twice under test tools, or a
# library that also uses the default registry, can never collide with them.
_REGISTRY = CollectorRegistry(auto_describe=True)

LOOP_TICKS = Counter(
    "crt_loop_ticks",
    "Loop passes, by loop and outcome (ok, failed, lease_held).",
    ["loop", "outcome"],
    registry=_REGISTRY,
)
LOOP_TICK_SECONDS = Histogram(
    "crt_loop_tick_duration_seconds",
    "Duration of one loop pass.",
    ["loop"],
    buckets=(0.005, 0.025, 0.1, 0.5, 1, 2.5, 5, 15, 30, 60, 120, 300, 600),
    registry=_REGISTRY,
)
HEARTBEAT_RUNS = Counter(
    "crt_heartbeat_runs",
    "Finished heartbeat runs, by outcome, reason and trigger (schedule, manual).",
    ["outcome", "reason", "trigger"],
    registry=_REGISTRY,
)
HEARTBEAT_RUN_SECONDS = Histogram(
    "crt_heartbeat_run_duration_seconds",
    "Duration of one heartbeat run, LLM call included.",
    ["outcome"],
    buckets=(0.01, 0.05, 0.25, 1, 2.5, 5, 10, 30, 60, 120, 300),
    registry=_REGISTRY,
)
LLM_CALL_SECONDS = Histogram(
    "crt_llm_call_duration_seconds",
    "Latency of one LLM chat call, by outcome.",
    ["outcome"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300),
    registry=_REGISTRY,
)
LLM_PROMPT_CHARS = Histogram(
    "crt_llm_prompt_chars",
    "Size of the prompt sent to the LLM, in characters (all messages).",
    buckets=(250, 500, 1000, 2000, 4000, 8000, 16000, 32000, 64000, 128000),
    registry=_REGISTRY,
)
LEDGER_REQUESTS = Counter(
    "crt_ledger_requests",
    "HTTP requests to the Ledger, by method and status (the code, or 'error': no answer).",
    ["method", "status"],
    registry=_REGISTRY,
)

#: The documented names as a scrape shows them (counters gain ``_total``).
METRIC_NAMES = (
    "crt_loop_ticks_total",
    "crt_loop_tick_duration_seconds",
    "crt_heartbeat_runs_total",
    "crt_heartbeat_run_duration_seconds",
    "crt_llm_call_duration_seconds",
    "crt_llm_prompt_chars",
    "crt_ledger_requests_total",
)


def observe_loop_tick(loop: str, outcome: str, seconds: float) -> None:
    """One finished loop pass."""
    LOOP_TICKS.labels(loop=loop, outcome=outcome).inc()
    LOOP_TICK_SECONDS.labels(loop=loop).observe(max(0.0, seconds))


def observe_heartbeat_run(
    outcome: str, reason: str | None, trigger: str, seconds: float | None
) -> None:
    """One finished heartbeat run (every recorded run, skips included)."""
    HEARTBEAT_RUNS.labels(outcome=outcome, reason=reason or "none", trigger=trigger).inc()
    if seconds is not None:
        HEARTBEAT_RUN_SECONDS.labels(outcome=outcome).observe(max(0.0, seconds))


def observe_llm_call(outcome: str, seconds: float, prompt_chars: int) -> None:
    """One LLM call: ``outcome`` is ``ok``, ``truncated``, or :func:`llm_outcome` of the error."""
    LLM_CALL_SECONDS.labels(outcome=outcome).observe(max(0.0, seconds))
    LLM_PROMPT_CHARS.observe(max(0, prompt_chars))


_CAMEL_RE = re.compile(r"(?<!^)(?=[A-Z])")


def llm_outcome(error: BaseException) -> str:
    """The ``outcome`` label for an LLM error: its class name without ``LLM``, in snake case
    (LLMTimeout -> timeout, LLMResponseError -> response_error, LLMError -> error)."""
    name = type(error).__name__.removeprefix("LLM") or "Error"
    return _CAMEL_RE.sub("_", name).lower()


def observe_ledger_request(method: str, status: int | str) -> None:
    """One attempt of a Ledger request: its HTTP status, or ``"error"`` when none came."""
    LEDGER_REQUESTS.labels(method=method.upper(), status=str(status)).inc()


def multiprocess_mode() -> bool:
    """Whether prometheus-client keeps values in ``PROMETHEUS_MULTIPROC_DIR`` (decided by the
    library when it was imported, which is what counts for the values recorded)."""
    return values.ValueClass is not values.MutexValue


def render() -> bytes:
    """The text exposition of every metric: all workers' when in multiprocess mode, else this
    process's (plus the standard process and Python collectors)."""
    if multiprocess_mode():
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry)
    return generate_latest(_REGISTRY) + generate_latest(REGISTRY)
