"""Text hygiene at the edge of both apps.

- A lone surrogate (``"\\ud800"``) or NUL anywhere in a JSON body is a 422 naming the field,
  before any route runs: before, it was a plain-text 500, and in a heartbeat config's ``model``
  it was committed first, so every later read of that config was a 500 too.
- Invisible-only text (U+3000, U+2800, zero-width characters) counts as empty.
- Bidi controls never reach the Ledger.
"""

from __future__ import annotations

import json

import httpx
import pytest
from fastapi.testclient import TestClient
from support.live_ledger import LiveLedger

from crt_loops.edge.json_text import body_problem
from crt_loops.edge.text import find_control, find_invalid_text, is_blank, strip_bidi
from crt_loops.ledger.client import LedgerClient

SURROGATE = '"x\\ud800y"'  # as JSON text: the escape of a lone high surrogate
BLANKS = ["\u3000", "\u2800\u2800", "\u200b\u200c\u200d\u2060\ufeff", " \u3164 ", "\u202e", "\t\n"]


def raw(template: str) -> bytes:
    """A JSON body with ``@`` replaced by the surrogate escape (json.dumps cannot write one)."""
    return template.replace("@", SURROGATE).encode()


@pytest.mark.parametrize("text", BLANKS)
def test_invisible_only_text_is_blank(text: str) -> None:
    assert is_blank(text)


@pytest.mark.parametrize("text", ["a", "\u3000a", "🙂", "\u0300", "x\u200b", "·"])
def test_visible_text_is_not_blank(text: str) -> None:
    assert not is_blank(text)


def test_the_text_rules() -> None:
    assert strip_bidi("abc\u202edcba\u2066x\u2069\u200f") == "abcdcbax"
    assert find_control("tab\there\r\nok") is None
    assert find_control("a\x00b") == (1, "\x00") and find_control("a\x1b[31m") == (1, "\x1b")
    assert find_control("c1\x85") == (2, "\x85")
    found = find_invalid_text({"a": [1, {"\ud800key": "v"}]}, ("body",))
    assert found is not None and found.loc == ("body", "a", 1, "\ud800key", "(key)")
    assert find_invalid_text({"ok": "🙂 \\ud800 escaped backslash"}) is None


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        (raw('{"content": @}'), ("body", "content")),
        (raw('{"a": {"b": [1, @]}}'), ("body", "a", "b", 1)),
        (b'{"content": "nul \\u0000 here"}', ("body", "content")),
        (b'{"content": "caf\xe9"}', ("body",)),  # Latin-1, not UTF-8
    ],
)
def test_unstorable_bodies_are_named(body: bytes, loc: tuple[str | int, ...]) -> None:
    problem = body_problem(body)
    assert problem is not None and problem[0] == loc


@pytest.mark.parametrize(
    "body",
    [
        b'{"content": "\\ud83d\\ude00 a pair is fine"}',
        b'{"content": "\\\\ud800 is text"}',
        b"[not json",
    ],
)
def test_storable_or_non_json_bodies_pass(body: bytes) -> None:
    assert body_problem(body) is None


@pytest.mark.parametrize(
    ("method", "path", "template", "field"),
    [
        ("POST", "/api/threads", '{"thread_id": "t1", "title": @}', "title"),
        ("POST", "/api/threads/default/messages", '{"content": @}', "content"),
        ("POST", "/api/threads/default/chat", '{"message": @}', "message"),
        ("POST", "/api/threads/default/journal/1/reply", '{"content": @}', "content"),
        ("POST", "/api/threads/default/heartbeat/config", '{"model": @}', "model"),
        ("POST", "/api/heartbeat/heartbeat.md", '{"content": @}', "content"),
        ("POST", "/api/loops/run", '{"thread_id": @}', "thread_id"),
    ],
)
def test_a_lone_surrogate_is_a_422_naming_the_field_and_nothing_is_stored(
    client: TestClient, method: str, path: str, template: str, field: str
) -> None:
    config_before = client.get("/api/threads/default/heartbeat/config").json()
    r = client.request(
        method, path, content=raw(template), headers={"Content-Type": "application/json"}
    )
    assert r.status_code == 422, r.text
    item = r.json()["detail"][0]
    assert item["loc"] == ["body", field] and "U+D800" in item["msg"]
    # Nothing was stored in a form that later fails: every read still works.
    assert client.get("/api/threads/default/heartbeat/config").json() == config_before
    assert client.get("/api/threads").status_code == 200
    assert client.get("/api/threads/default/messages").json()["messages"] == []


def test_the_seed_curl_form_body_is_checked_too(client: TestClient) -> None:
    r = client.post(
        "/api/heartbeat/heartbeat.md",
        content=raw('{"content": @}'),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "content"]


@pytest.mark.parametrize("blank", BLANKS)
def test_invisible_only_text_is_empty_at_the_api(client: TestClient, blank: str) -> None:
    r = client.post("/api/threads/default/messages", json={"content": blank})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "content"]
    assert client.post("/api/threads/default/chat", json={"message": blank}).status_code == 422
    r = client.post("/api/threads", json={"thread_id": "blank-title", "title": blank})
    assert r.status_code == 201 and r.json()["title"] == ""
    config = client.post("/api/threads/default/heartbeat/config", json={"model": blank}).json()
    assert config["config"]["model"] is None


def test_the_ledger_names_the_field_of_a_lone_surrogate(
    live_ledger: LiveLedger, http: httpx.Client
) -> None:
    key = live_ledger.register()
    auth = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    url = live_ledger.url + "/api/v1"
    cases = [
        ("/agents/register", '{"name": "bob", "description": @}', "description", {}),
        ("/posts", '{"submolt": "general", "title": @, "content": "c"}', "title", auth),
        ("/posts", '{"submolt": "general", "title": "t", "content": @}', "content", auth),
        ("/submolts", '{"name": "club", "description": @}', "description", auth),
    ]
    for path, template, field, headers in cases:
        r = http.post(
            url + path,
            content=raw(template),
            headers=headers or {"Content-Type": "application/json"},
        )
        assert r.status_code == 422, (path, r.text)
        body = r.json()
        assert body["success"] is False and f"body.{field}" in body["error"], body
    assert live_ledger.count("agents") == 1 and live_ledger.count("posts") == 0


def test_the_ledger_treats_invisible_text_as_empty_and_drops_bidi_controls(
    live_ledger: LiveLedger, http: httpx.Client
) -> None:
    key = live_ledger.register()
    url = live_ledger.url + "/api/v1"
    auth = {"Authorization": f"Bearer {key}"}
    for title in ("\u3000", "\u2800", "\u200b\u200d"):
        r = http.post(
            url + "/posts",
            json={"submolt": "general", "title": title, "content": "c"},
            headers=auth,
        )
        assert r.status_code == 400 and "title must not be empty" in r.json()["error"], r.text
    spoof = "invoice_\u202efdp.exe"
    r = http.post(
        url + "/posts",
        json={"submolt": "general", "title": spoof, "content": "a\u2067b"},
        headers=auth,
    )
    assert r.status_code == 201, r.text
    post = r.json()["post"]
    assert (post["title"], post["content"]) == ("invoice_fdp.exe", "ab")


def test_the_ledger_client_never_sends_bidi_controls() -> None:
    # Any Ledger, not only ours: the client strips them before sending.
    sent: list[dict[str, object]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        sent.append(body)
        post = {"id": "p_1", "title": body["title"], "content": body.get("content")}
        return httpx.Response(201, json={"success": True, "post": post})

    with httpx.Client(transport=httpx.MockTransport(handler)) as transport_client:
        client = LedgerClient("http://ledger.test/api/v1", "key", transport_client, max_retries=0)
        post = client.create_post("general", "a\u202eb", "c\u2066d")
    assert sent[0]["title"] == "ab" and sent[0]["content"] == "cd"
    assert (post.title, post.content) == ("ab", "cd")


@pytest.mark.parametrize("char", ["\x00", "\x1b", "\x7f", "\x07"])
def test_heartbeat_md_refuses_control_characters(client: TestClient, char: str) -> None:
    before = client.get("/api/heartbeat/heartbeat.md").json()
    r = client.post("/api/heartbeat/heartbeat.md", json={"content": f"## Rules\n- a{char}b\n"})
    assert r.status_code == 422, r.text
    assert "U+00" in json.dumps(r.json()["detail"])
    assert client.get("/api/heartbeat/heartbeat.md").json() == before
