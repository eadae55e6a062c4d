"""GET /api/dashboard/poll: each part is exactly what its own GET answers, status included,
and bad input is a 422 naming the field and the rule."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient


def parts(client: TestClient, query: str) -> list[dict[str, Any]]:
    r = client.get(f"/api/dashboard/poll?{query}")
    assert r.status_code == 200, r.text
    found: list[dict[str, Any]] = r.json()["parts"]
    return found


def same_as_its_get(client: TestClient, part: dict[str, Any]) -> None:
    own = client.get(part["path"])
    assert part["status"] == own.status_code, part["path"]
    body, expected = part["body"], own.json()
    if part["path"] == "/api/heartbeat/status":
        # A live snapshot: the loop's tick times move between the two reads.
        for key in ("last_tick_at", "next_wake_at", "last_tick_ms"):
            body.pop(key, None)
            expected.pop(key, None)
    assert body == expected, part["path"]


def test_a_fast_tick_answers_what_the_dashboard_would_fetch(client: TestClient) -> None:
    client.post("/api/threads/notes/messages", json={"content": "I started a new job today"})
    client.post("/api/threads/notes/heartbeat/config", json={"enabled": True, "every": 1800})
    found = parts(client, "thread_id=notes")
    assert [p["path"] for p in found] == [
        "/api/loops",
        "/api/heartbeat/status",
        "/api/threads?limit=100",
        "/api/approvals",
        "/api/threads/notes/messages?limit=30&newest=true",
        "/api/threads/notes/heartbeat/config",
        "/api/threads/notes/heartbeat/history?limit=20",
    ]
    for part in found:
        same_as_its_get(client, part)
    messages = found[4]["body"]["messages"]
    assert [m["content"] for m in messages] == ["I started a new job today"]


def test_a_slow_tick_adds_the_journal_profile_configs_and_heartbeat_md(
    client: TestClient,
) -> None:
    client.post("/api/threads", json={"thread_id": "work"})
    found = parts(client, "thread_id=work&slow=true&messages_limit=5&configs_limit=1")
    paths = [p["path"] for p in found]
    assert "/api/threads/work/messages?limit=5&newest=true" in paths
    assert "/api/threads/work/journal?limit=10" in paths
    assert "/api/threads/work/personality" in paths
    assert "/api/heartbeat/heartbeat.md" in paths
    # The first listed thread's config (the most recently active: the new one).
    assert "/api/heartbeat/configs?thread_id=work" in paths
    for part in found:
        same_as_its_get(client, part)


def test_without_a_thread_only_the_shared_parts(client: TestClient) -> None:
    paths = [p["path"] for p in parts(client, "")]
    assert paths == [
        "/api/loops",
        "/api/heartbeat/status",
        "/api/threads?limit=100",
        "/api/approvals",
    ]


def test_an_unknown_thread_is_the_404_of_its_own_gets(client: TestClient) -> None:
    found = parts(client, "thread_id=ghost&slow=true")
    ghost = [p for p in found if p["path"].startswith("/api/threads/ghost/")]
    assert len(ghost) == 5
    for part in ghost:
        assert part["status"] == 404
        assert part["body"] == {"detail": "thread 'ghost' does not exist"}
        same_as_its_get(client, part)


@pytest.mark.parametrize(
    ("query", "field", "rule"),
    [
        ("thread_id=has%20space", "thread_id", "^[A-Za-z0-9_-]{1,64}$"),
        ("messages_limit=0", "messages_limit", "greater than or equal to 1"),
        ("threads_limit=1001", "threads_limit", "less than or equal to 1000"),
        ("history_limit=501", "history_limit", "less than or equal to 500"),
        ("journal_limit=201", "journal_limit", "less than or equal to 200"),
        ("configs_limit=101", "configs_limit", "less than or equal to 100"),
        ("slow=maybe", "slow", "valid boolean"),
    ],
)
def test_bad_input_is_a_422_naming_the_field_and_the_rule(
    client: TestClient, query: str, field: str, rule: str
) -> None:
    r = client.get(f"/api/dashboard/poll?{query}")
    assert r.status_code == 422
    [error] = r.json()["detail"]
    assert error["loc"] == ["query", field]
    assert rule in error["msg"]
