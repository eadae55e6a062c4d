"""The approvals API through the whole app: list, approve (edited), reject, the 4xx that name the
field or say the state, and the owner numbers in status and /metrics."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient
from support import heartbeat_scripts as hs
from support.fake_ollama import FakeOllama


def detail(response: Any) -> str:
    return str(response.json()["detail"])


def propose(client: TestClient, fake: FakeOllama) -> dict[str, Any]:
    hs.install(fake, hs.poster)
    r = client.post(
        "/api/threads/default/heartbeat/config", json={"enabled": True, "approval": "posts"}
    )
    assert r.status_code == 200 and r.json()["config"]["approval"] == "posts"
    run = client.post("/api/threads/default/heartbeat/run-now").json()
    assert run["outcome"] == "proposed", run
    (action,) = run["actions"]
    assert action["state"] == "proposed" and action["expires_at"]
    return dict(action)


def test_list_approve_edited_and_the_409_after(client: TestClient, fake_ollama: FakeOllama) -> None:
    action = propose(client, fake_ollama)
    listed = client.get("/api/approvals").json()
    assert listed["count"] == 1
    (item,) = listed["approvals"]
    assert item["action_id"] == action["action_id"] and item["thread_id"] == "default"
    assert item["run_summary"].startswith("posted note")
    assert client.get("/api/approvals?thread_id=other").json()["count"] == 0
    assert client.get("/api/heartbeat/status").json()["owner"]["approvals_pending"] == 1

    url = f"/api/approvals/{action['action_id']}/approve"
    r = client.post(url, json={"content": "Edited by my owner."})
    assert r.status_code == 200, r.text
    sent = r.json()
    assert sent["state"] == "sent" and sent["content"] == "Edited by my owner."
    assert sent["idempotency_key"] == action["idempotency_key"]
    feed = client.get("/api/ledger/feed").json()
    assert any(p["content"] == "Edited by my owner." for p in feed["posts"])

    again = client.post(url)
    assert again.status_code == 409 and "sent" in detail(again)
    status = client.get("/api/heartbeat/status").json()["owner"]
    assert status["approvals_pending"] == 0
    scrape = client.get("/metrics").text
    assert 'crt_heartbeat_approvals_total{verdict="edited"}' in scrape
    assert "crt_heartbeat_approvals_pending 0.0" in scrape


def test_reject_with_a_reason_then_approve_is_a_409_saying_rejected(
    client: TestClient, fake_ollama: FakeOllama
) -> None:
    action = propose(client, fake_ollama)
    r = client.post(f"/api/approvals/{action['action_id']}/reject", json={"reason": "not now"})
    assert r.status_code == 200 and r.json()["state"] == "rejected"
    r = client.post(f"/api/approvals/{action['action_id']}/approve")
    assert r.status_code == 409 and "rejected" in detail(r)
    r = client.post(f"/api/approvals/{action['action_id']}/reject")
    assert r.status_code == 409


def test_bad_input_names_the_field(client: TestClient, fake_ollama: FakeOllama) -> None:
    action = propose(client, fake_ollama)
    url = f"/api/approvals/{action['action_id']}/approve"
    r = client.post(url, json={"title": "  "})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "title"]
    r = client.post(url, json={"content": "x" * 40_001})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "content"]
    r = client.post(url, json={"tittle": "typo"})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "tittle"]
    r = client.post(url, content=b"[1]")
    assert r.status_code == 422
    r = client.post(f"/api/approvals/{action['action_id']}/reject", json={"reason": 5})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "reason"]
    assert client.post("/api/approvals/999999/approve").status_code == 404
    assert client.post("/api/approvals/abc/approve").status_code == 422
    assert client.get("/api/approvals?thread_id=bad%20id").status_code == 422
    r = client.post("/api/threads/default/heartbeat/config", json={"approval": "maybe"})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "approval"]
    # nothing above changed the proposal
    assert client.get("/api/approvals").json()["count"] == 1


def test_status_counts_owner_deferrals_and_shows_the_reply_watch(
    client: TestClient, fake_ollama: FakeOllama
) -> None:
    status = client.get("/api/heartbeat/status").json()
    assert status["owner"] == {
        "approvals_pending": 0,
        "approvals_expired": 0,
        "approvals_rejected": 0,
        "owner_active_deferrals": 0,
        "reply_wakes": 0,
    }
    assert status["reply_watch"]["interval_seconds"] == 120
