"""``GET /metrics``: the Prometheus text exposition of :mod:`metrics`.

Guarded like ``/api`` (crt_api's middleware): with ``CRT_API_TOKEN`` set a scrape needs
``Authorization: Bearer <token>`` (Prometheus: ``authorization: {credentials: ...}``); with none
set only loopback clients are answered. Plain ``def``: rendering reads the multiprocess files
from disk, so it runs in the threadpool, never on the event loop.
"""

from __future__ import annotations

from fastapi import APIRouter, Response

from crt_loops.core import metrics

router = APIRouter(tags=["system"])

EXAMPLE = """\
# HELP crt_loop_ticks_total Loop passes, by loop and outcome (ok, failed, lease_held).
# TYPE crt_loop_ticks_total counter
crt_loop_ticks_total{loop="reflection",outcome="ok"} 12.0
# HELP crt_heartbeat_runs_total Finished heartbeat runs, by outcome, reason and trigger.
# TYPE crt_heartbeat_runs_total counter
crt_heartbeat_runs_total{outcome="skipped",reason="llm_unavailable",trigger="manual"} 1.0
"""


@router.get(
    "/metrics",
    summary="Prometheus metrics (text format): loops, heartbeat runs, LLM calls, Ledger requests",
    response_class=Response,
    responses={200: {"content": {metrics.CONTENT_TYPE: {"example": EXAMPLE}}}},
)
def get_metrics() -> Response:
    return Response(metrics.render(), media_type=metrics.CONTENT_TYPE)
