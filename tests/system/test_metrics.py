"""``GET /metrics``: the documented names and labels after real work (loop ticks, a heartbeat
run, chat calls that succeed and fail, Ledger requests), its access rule, and the totals of all
workers under ``uvicorn --workers 2`` with ``PROMETHEUS_MULTIPROC_DIR``."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from support import heartbeat_scripts as hs
from support.fake_ollama import FakeOllama, Reply
from support.service import Service, free_port
from support.waiting import wait_for

from crt_loops.api.app import create_app
from crt_loops.core import metrics
from crt_loops.ledger.client import LedgerClient, LedgerUnavailable
from crt_loops.settings import Settings

Samples = dict[str, list[tuple[dict[str, str], float]]]


def parse(text: str) -> Samples:
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples.setdefault(sample.name, []).append((sample.labels, sample.value))
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    """The sum of ``name``'s samples whose labels include ``labels``."""
    return sum(
        v for got, v in samples.get(name, []) if all(got.get(k) == x for k, x in labels.items())
    )


def scrape(client: TestClient) -> Samples:
    r = client.get("/metrics")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain")
    return parse(r.text)


def test_metrics_after_real_work(client: TestClient, fake_ollama: FakeOllama) -> None:
    before = scrape(client)
    hs.install(fake_ollama, hs.poster)

    # loop ticks: the reflection loop passes once as soon as it starts
    assert client.post("/api/loops/reflection/start").status_code == 200
    wait_for(lambda: client.get("/api/loops").json()["loops"][0]["ticks"] >= 1, timeout=10)
    assert client.post("/api/loops/reflection/stop").json()["stopped"] is True

    # a heartbeat run that posts on the Ledger
    client.post("/api/threads/default/heartbeat/config", json={"target": "post"})
    run = client.post("/api/threads/default/heartbeat/run-now").json()
    assert run["outcome"] == "acted", run

    # a chat call that works, and one the LLM refuses
    fake_ollama.always("Hello there.")
    assert client.post("/api/threads/default/chat", json={"message": "hi"}).status_code == 200
    fake_ollama.always(Reply(status=500, error="model crashed"))
    assert client.post("/api/threads/default/chat", json={"message": "hi"}).status_code == 503

    after = scrape(client)
    for name in metrics.METRIC_NAMES:
        assert any(s.startswith(name) for s in after), f"{name} missing from /metrics"

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("crt_loop_ticks_total", loop="reflection", outcome="ok") >= 1
    assert delta("crt_loop_tick_duration_seconds_count", loop="reflection") >= 1
    assert delta("crt_heartbeat_runs_total", outcome="acted", reason="none", trigger="manual") == 1
    assert delta("crt_heartbeat_run_duration_seconds_count", outcome="acted") == 1
    assert delta("crt_llm_call_duration_seconds_count", outcome="ok") >= 2  # heartbeat + chat
    assert delta("crt_llm_call_duration_seconds_count", outcome="response_error") >= 1
    assert delta("crt_llm_prompt_chars_count") >= 3
    assert delta("crt_llm_prompt_chars_sum") > 100
    assert delta("crt_ledger_requests_total", method="GET", status="200") >= 1
    assert delta("crt_ledger_requests_total", method="POST", status="201") == 1


def test_ledger_errors_and_skips_are_labelled(client: TestClient, tmp_path: Path) -> None:
    before = value(scrape(client), "crt_ledger_requests_total", method="GET", status="error")
    nobody = LedgerClient(f"http://127.0.0.1:{free_port()}/api/v1", None, max_retries=0)
    with nobody, pytest.raises(LedgerUnavailable):
        nobody.health()
    (tmp_path / "HEARTBEAT.md").write_text("", encoding="utf-8")
    run = client.post("/api/threads/default/heartbeat/run-now").json()
    assert (run["outcome"], run["reason"]) == ("skipped", "empty_instructions")
    samples = scrape(client)
    assert value(samples, "crt_ledger_requests_total", method="GET", status="error") == before + 1
    skipped = {"outcome": "skipped", "reason": "empty_instructions", "trigger": "manual"}
    assert value(samples, "crt_heartbeat_runs_total", **skipped) >= 1


def test_metrics_access_follows_the_api_rule(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    open_settings = make_settings(
        reflection_loop_enabled=False,
        personality_loop_enabled=False,
        journal_self_reply_loop_enabled=False,
    )
    with TestClient(create_app(open_settings), client=("10.1.2.3", 4000)) as remote:
        assert remote.get("/metrics").status_code == 403  # no token: loopback only
        assert remote.get("/health").status_code == 200
    token_settings = make_settings(
        api_token="t0k",
        data_dir=tmp_path / "other",
        reflection_loop_enabled=False,
        personality_loop_enabled=False,
        journal_self_reply_loop_enabled=False,
    )
    with TestClient(create_app(token_settings), client=("10.1.2.3", 4000)) as remote:
        assert remote.get("/metrics").status_code == 401
        ok = remote.get("/metrics", headers={"Authorization": "Bearer t0k"})
        assert ok.status_code == 200 and "crt_" in ok.text


def test_openapi_documents_metrics(client: TestClient) -> None:
    op = client.app.openapi()["paths"]["/metrics"]["get"]  # type: ignore[attr-defined]
    assert op["summary"]
    assert metrics.CONTENT_TYPE in op["responses"]["200"]["content"]


@pytest.mark.slow
def test_multiprocess_mode_adds_up_all_workers(tmp_path: Path) -> None:
    prom = tmp_path / "prom"
    prom.mkdir()
    svc = Service(tmp_path, env={"PROMETHEUS_MULTIPROC_DIR": str(prom)}, workers=2)
    with svc:
        # Each worker's reflection loop passes once at startup (interval 900 s): a scrape that
        # saw only the answering worker would count one.
        def both_ticked() -> bool:
            text = httpx.get(svc.url + "/metrics", timeout=5).text
            return value(parse(text), "crt_loop_ticks_total", loop="reflection") >= 2

        wait_for(both_ticked, timeout=20, interval=0.1)
        for _ in range(6):
            r = httpx.post(svc.url + "/api/threads/default/heartbeat/run-now", timeout=10)
            assert r.status_code == 200, r.text
        for _ in range(4):  # whichever worker answers, the totals are the same
            samples = parse(httpx.get(svc.url + "/metrics", timeout=5).text)
            assert value(samples, "crt_heartbeat_runs_total", trigger="manual") == 6
            assert value(samples, "crt_loop_ticks_total", loop="reflection") >= 2
    pids = {p.name.rsplit("_", 1)[-1] for p in prom.glob("counter_*.db")}
    assert len(pids) >= 2, sorted(p.name for p in prom.iterdir())
