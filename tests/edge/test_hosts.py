"""The Host allow-list on both ports (DNS rebinding): only names the service is known by.

A rebound page reaches the service with its own name in the Host header (``evil.example``);
every such request, ``/health`` included, is a 421 with a sentence and changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest
from fastapi.testclient import TestClient
from support.fake_ollama import FakeOllama
from support.live_ledger import LiveLedger

from crt_loops.api.app import create_app
from crt_loops.edge.hosts import HostAllowList, split_host
from crt_loops.settings import Settings

LOCAL = ("127.0.0.1", 50000)
REBOUND = "http://evil.example:8000"


def at(client: TestClient, base_url: str) -> TestClient:
    """Another client on the same running app, sending ``Host`` from ``base_url``."""
    return TestClient(client.app, base_url=base_url, client=LOCAL)


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("localhost:8000", ("localhost", 8000)),
        ("LOCALHOST.", ("localhost", None)),
        ("[::1]:8000", ("::1", 8000)),
        ("[::ffff:127.0.0.1]", ("127.0.0.1", None)),
        ("127.0.0.1", ("127.0.0.1", None)),
        ("Crt.Lan:443", ("crt.lan", 443)),
        ("evil.example:x", ("evil.example", None)),
    ],
)
def test_host_headers_are_read_as_a_browser_writes_them(
    header: str, expected: tuple[str, int | None]
) -> None:
    assert split_host(header) == expected


def test_the_loopback_names_and_the_configured_ones_are_allowed() -> None:
    guard = HostAllowList(lambda *a: None, names=("127.0.0.1", "crt.lan:8000", "0.0.0.0"))  # type: ignore[arg-type]
    assert guard.allowed() == {"localhost", "127.0.0.1", "::1", "crt.lan"}
    assert guard.allows("192.168.1.5", "192.168.1.5")  # the address the client connected to
    assert not guard.allows("evil.example", "127.0.0.1")
    assert not guard.allows("0.0.0.0", None)  # a wildcard bind is not a name


@pytest.mark.parametrize("path", ["/health", "/", "/api/threads", "/api/heartbeat/heartbeat.md"])
def test_a_rebound_host_name_is_refused_on_every_api_path(client: TestClient, path: str) -> None:
    response = at(client, REBOUND).get(path)
    assert response.status_code == 421
    detail = response.json()["detail"]
    assert "'evil.example:8000'" in detail and "CRT_ALLOWED_HOSTS" in detail


def test_a_rebound_host_cannot_write_or_delete(client: TestClient) -> None:
    assert client.post("/api/threads", json={"thread_id": "keep"}).status_code == 201
    before = client.get("/api/heartbeat/heartbeat.md").json()["sha256"]
    rebound = at(client, REBOUND)
    # Same-origin from the rebound page's point of view: Origin matches Host.
    same = {"Origin": REBOUND, "Sec-Fetch-Site": "same-origin"}
    assert rebound.delete("/api/threads/keep", headers=same).status_code == 421
    r = rebound.post("/api/heartbeat/heartbeat.md", json={"content": "## Evil\n- x"}, headers=same)
    assert r.status_code == 421
    assert client.get("/api/threads/keep").status_code == 200
    assert client.get("/api/heartbeat/heartbeat.md").json()["sha256"] == before


@pytest.mark.parametrize(
    "base_url",
    ["http://localhost:8000", "http://127.0.0.1:9", "http://[::1]:8000", "http://LOCALHOST."],
)
def test_loopback_names_are_served(client: TestClient, base_url: str) -> None:
    assert at(client, base_url).get("/health").status_code == 200


def test_crt_allowed_hosts_adds_a_name(
    make_settings: Callable[..., Settings], fake_ollama: FakeOllama
) -> None:
    settings = make_settings(
        ollama_host=fake_ollama.url,
        allowed_hosts=("crt.lan",),
        reflection_loop_enabled=False,
        personality_loop_enabled=False,
        journal_self_reply_loop_enabled=False,
    )
    with TestClient(create_app(settings), base_url="http://crt.lan:8000", client=LOCAL) as lan:
        assert lan.get("/health").status_code == 200
        assert lan.post("/api/threads", json={"thread_id": "lan"}).status_code == 201
        assert at(lan, "http://testserver").get("/health").status_code == 421


def test_the_allow_list_is_read_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: object
) -> None:
    # ``crt_api:app`` reads its settings only when it starts: the guard must ask for them then.
    monkeypatch.setenv("CRT_DATA_DIR", str(tmp_path) + "/data")
    monkeypatch.setenv("CRT_WORKSPACE", str(tmp_path))
    monkeypatch.setenv("CRT_OLLAMA_HOST", "http://127.0.0.1:9")
    monkeypatch.setenv("CRT_LEDGER_URL", "http://127.0.0.1:9/api/v1")
    monkeypatch.setenv("CRT_ALLOWED_HOSTS", "crt.lan, other.lan")
    for loop in ("REFLECTION", "PERSONALITY", "JOURNAL_SELF_REPLY"):
        monkeypatch.setenv(f"CRT_{loop}_LOOP_ENABLED", "false")
    with TestClient(create_app(), base_url="http://other.lan", client=LOCAL) as lan:
        assert lan.get("/health").status_code == 200
        assert at(lan, "http://testserver").get("/health").status_code == 421


def test_the_ledger_refuses_a_rebound_host(live_ledger: LiveLedger, http: httpx.Client) -> None:
    key = live_ledger.register()
    rebound = {"Host": "evil.example:8787", "Authorization": f"Bearer {key}"}
    for method, path in [("GET", "/health"), ("GET", "/api/v1/feed"), ("POST", "/api/v1/posts")]:
        body = {"submolt": "general", "title": "t", "content": "c"} if method == "POST" else None
        r = http.request(method, live_ledger.url + path, headers=rebound, json=body)
        assert r.status_code == 421, (path, r.text)
        assert r.json()["success"] is False and "evil.example" in r.json()["error"]
    r = http.post(
        live_ledger.url + "/api/v1/agents/register",
        headers={"Host": "evil.example"},
        json={"name": "mallory"},
    )
    assert r.status_code == 421
    assert live_ledger.count("agents") == 1 and live_ledger.count("posts") == 0
    assert http.get(live_ledger.url + "/health", headers={"Host": "localhost"}).status_code == 200
