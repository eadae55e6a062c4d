"""Prometheus metrics: what the loops, the heartbeat, the LLM and the Ledger client did.

Every metric is defined here and nowhere else, with the ``crt_`` prefix, and is recorded by one
call from the code it measures (``observe_*`` below). This module imports nothing of ours at run
time, so any module can import it without a cycle.

=====================================  =========  ==========================  ================
name                                   type       labels                      recorded in
=====================================  =========  ==========================  ================
crt_loop_ticks_total                   counter    loop, outcome               BackgroundLoop
crt_loop_tick_duration_seconds         histogram  loop                        BackgroundLoop
crt_heartbeat_runs_total               counter    outcome, reason, trigger    HeartbeatRunner
crt_heartbeat_run_duration_seconds     histogram  outcome                     HeartbeatRunner
crt_llm_call_duration_seconds          histogram  outcome                     OllamaLLM.chat
crt_llm_prompt_chars                   histogram  (none)                      OllamaLLM.chat
crt_llm_tokens_total                   counter    backend, kind               HTTPBackend.chat
crt_ledger_requests_total              counter    method, status              LedgerClient
crt_heartbeat_approvals_total          counter    verdict                     heartbeat.approvals
crt_heartbeat_approvals_pending        gauge      (none)                      heartbeat.approvals
crt_heartbeat_owner_deferrals_total    counter    (none)                      HeartbeatRunner
crt_heartbeat_reply_wakes_total        counter    (none)                      heartbeat.wake
=====================================  =========  ==========================  ================

Label values: a loop tick's ``outcome`` is ``ok``, ``failed`` or ``lease_held``; a heartbeat
run's ``reason`` is ``none`` when the run has none; an LLM call's ``outcome`` is ``ok``,
``truncated``, or the error kind (``unavailable``, ``timeout``, ``response_error``,
``bad_output``, ``unknown_model``, ``error``); an LLM token's ``kind`` is ``prompt`` (the whole
prompt), ``prompt_eval`` (the part the server evaluated), ``cached`` (served from its prompt
cache) or ``completion``, counted only as far as the server reports them; a Ledger request's
``status`` is the HTTP status code, or ``error`` when no answer came (connection refused,
timeout, dropped connection); an approval's
``verdict`` is ``proposed``, ``approved``, ``edited``, ``rejected``, ``expired`` or ``blocked``
(approved, but no longer allowed when it was to be sent). The pending-approvals gauge is the
count in the session DB when a process last changed it, so every worker reports the same.

Under ``uvicorn --workers N`` each worker is its own process with its own counters. When
``PROMETHEUS_MULTIPROC_DIR`` names an empty, writable directory *before* the service starts,
prometheus-client keeps every worker's values in files there and :func:`render` adds them up,
so any worker answers a scrape with the totals of all of them. Without it a scrape shows only
the worker that answered it. prometheus-client reads that variable itself, once, at import.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
    values,
)

if TYPE_CHECKING:
    from crt_loops.llm.types import LLMUsage

__all__ = [
    "CONTENT_TYPE",
    "HEARTBEAT_APPROVALS",
    "HEARTBEAT_APPROVALS_PENDING",
    "HEARTBEAT_OWNER_DEFERRALS",
    "HEARTBEAT_REPLY_WAKES",
    "HEARTBEAT_RUNS",
    "HEARTBEAT_RUN_SECONDS",
    "LEDGER_REQUESTS",
    "LLM_CALL_SECONDS",
    "LLM_PROMPT_CHARS",
    "LLM_TOKENS",
    "LOOP_TICKS",
    "LOOP_TICK_SECONDS",
    "METRIC_NAMES",
    "llm_outcome",
    "multiprocess_mode",
    "observe_approval",
    "observe_heartbeat_run",
    "observe_ledger_request",
    "observe_llm_call",
    "observe_llm_tokens",
    "observe_loop_tick",
    "observe_owner_deferral",
    "observe_reply_wake",
    "render",
    "set_approvals_pending",
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
LLM_TOKENS = Counter(
    "crt_llm_tokens",
    "Tokens of LLM calls as the server reported them, by backend and kind.",
    ["backend", "kind"],
    registry=_REGISTRY,
)
LEDGER_REQUESTS = Counter(
    "crt_ledger_requests",
    "HTTP requests to the Ledger, by method and status (the code, or 'error': no answer).",
    ["method", "status"],
    registry=_REGISTRY,
)

HEARTBEAT_APPROVALS = Counter(
    "crt_heartbeat_approvals",
    "Heartbeat actions through the owner's approval, by verdict (proposed, approved, edited, "
    "rejected, expired, blocked).",
    ["verdict"],
    registry=_REGISTRY,
)
APPROVAL_VERDICTS = ("proposed", "approved", "edited", "rejected", "expired", "blocked")
for _verdict in APPROVAL_VERDICTS:  # every verdict scrapes as 0 from the start
    HEARTBEAT_APPROVALS.labels(verdict=_verdict)
HEARTBEAT_APPROVALS_PENDING = Gauge(
    "crt_heartbeat_approvals_pending",
    "Heartbeat actions waiting for the owner's approval.",
    registry=_REGISTRY,
    multiprocess_mode="mostrecent",
)
HEARTBEAT_OWNER_DEFERRALS = Counter(
    "crt_heartbeat_owner_deferrals",
    "Scheduled heartbeats deferred because the owner was talking in the thread.",
    registry=_REGISTRY,
)
HEARTBEAT_REPLY_WAKES = Counter(
    "crt_heartbeat_reply_wakes",
    "Threads whose heartbeat was woken early by a reply on the Ledger.",
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
    "crt_llm_tokens_total",
    "crt_ledger_requests_total",
    "crt_heartbeat_approvals_total",
    "crt_heartbeat_approvals_pending",
    "crt_heartbeat_owner_deferrals_total",
    "crt_heartbeat_reply_wakes_total",
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


def observe_approval(verdict: str, count: int = 1) -> None:
    """Actions proposed to the owner, or decided by them (or by the expiry)."""
    HEARTBEAT_APPROVALS.labels(verdict=verdict).inc(count)


def set_approvals_pending(count: int) -> None:
    HEARTBEAT_APPROVALS_PENDING.set(count)


def observe_owner_deferral() -> None:
    HEARTBEAT_OWNER_DEFERRALS.inc()


def observe_reply_wake() -> None:
    HEARTBEAT_REPLY_WAKES.inc()


def observe_llm_call(outcome: str, seconds: float, prompt_chars: int) -> None:
    """One LLM call: ``outcome`` is ``ok``, ``truncated``, or :func:`llm_outcome` of the error."""
    LLM_CALL_SECONDS.labels(outcome=outcome).observe(max(0.0, seconds))
    LLM_PROMPT_CHARS.observe(max(0, prompt_chars))


def observe_llm_tokens(backend: str, usage: LLMUsage | None) -> None:
    """The tokens of one LLM call (a cut reply's too: they were spent)."""
    if usage is None:
        return
    for kind, count in (
        ("prompt", usage.prompt_tokens),
        ("prompt_eval", usage.prompt_eval_tokens),
        ("cached", usage.cached_tokens),
        ("completion", usage.completion_tokens),
    ):
        if count:
            LLM_TOKENS.labels(backend=backend, kind=kind).inc(count)


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
