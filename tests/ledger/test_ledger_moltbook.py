"""The Ledger's Moltbook parity: follows and feeds, search, notifications, DMs, challenges,
pagination, optional auth, status codes, HTML pages and the upgrade of an old database.

The real server on a loopback port, raw HTTP (these are the wire shapes other clients see),
and a FakeClock shared with the server so time windows pass in microseconds.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from support.clock import FakeClock

from crt_loops.core.http_client import new_client
from crt_loops.core.server_thread import ServerThread
from crt_loops.ledger.schema import MIGRATIONS
from crt_loops.ledger.server import create_ledger_app
from crt_loops.ledger.storage import challenges
from crt_loops.settings import Settings

PERMISSIVE = {
    "ledger_post_cooldown_seconds": 0,
    "ledger_comment_cooldown_seconds": 0,
    "ledger_comments_per_day": 100_000,
    "ledger_requests_per_minute": 100_000,
}


@dataclass
class Agent:
    name: str
    key: str
    id: str


class Ledger:
    def __init__(self, server: ServerThread, settings: Settings, clock: FakeClock) -> None:
        self.server = server
        self.settings = settings
        self.clock = clock
        self.http = new_client(base_url=server.url + "/api/v1", timeout=10)

    def call(
        self, method: str, path: str, agent: Agent | None = None, **kwargs: Any
    ) -> httpx.Response:
        headers = {"Authorization": f"Bearer {agent.key}"} if agent else {}
        return self.http.request(method, path, headers=headers, **kwargs)

    def ok(self, method: str, path: str, agent: Agent | None = None, **kwargs: Any) -> Any:
        response = self.call(method, path, agent, **kwargs)
        assert response.is_success, f"{method} {path}: {response.status_code} {response.text}"
        return response.json() if response.content else None

    def register(self, name: str) -> Agent:
        body = self.ok("POST", "/agents/register", json={"name": name, "description": name})
        return Agent(name, body["agent"]["api_key"], body["agent"]["id"])

    def post(self, agent: Agent, title: str, content: str = "", submolt: str = "general") -> str:
        self.clock.advance(1)
        body = self.ok(
            "POST",
            "/posts",
            agent,
            json={"submolt_name": submolt, "title": title, "content": content},
        )
        return str(body["post"]["id"])

    def comment(self, agent: Agent, post_id: str, text: str, parent: str | None = None) -> str:
        payload = {"content": text, **({"parent_id": parent} if parent else {})}
        body = self.ok("POST", f"/posts/{post_id}/comments", agent, json=payload)
        return str(body["comment"]["id"])


@pytest.fixture
def make_ledger(
    make_settings: Callable[..., Settings], clock: FakeClock, ledger_db_url: str | None
) -> Iterator[Callable[..., Ledger]]:
    made: list[Ledger] = []

    def make(**overrides: Any) -> Ledger:
        backend = {"ledger_database_url": ledger_db_url} if ledger_db_url else {}
        settings = make_settings(**{**PERMISSIVE, **backend, **overrides})
        server = ServerThread(create_ledger_app(settings, clock=clock), name="ledger").start()
        made.append(Ledger(server, settings, clock))
        return made[-1]

    yield make
    for ledger in made:
        ledger.http.close()
        ledger.server.stop()


@pytest.fixture
def ledger(make_ledger: Callable[..., Ledger]) -> Ledger:
    return make_ledger()


def test_reads_need_no_key_but_a_wrong_key_is_still_401(ledger: Ledger) -> None:
    alice = ledger.register("alice")
    post_id = ledger.post(alice, "hello", "world")
    for path in ("/posts", f"/posts/{post_id}", f"/posts/{post_id}/comments", "/submolts"):
        response = ledger.call("GET", path)
        assert response.status_code == 200, path
        assert "X-RateLimit-Limit" not in response.headers
    assert ledger.call("GET", "/agents/profile", params={"name": "alice"}).status_code == 200
    wrong = Agent("x", "ledger_wrong", "")
    assert ledger.call("GET", "/posts", wrong).status_code == 401
    assert ledger.call("POST", "/posts", json={"title": "t"}).status_code == 401
    assert "X-RateLimit-Remaining" in ledger.call("GET", "/posts", alice).headers


def test_ids_everywhere_and_submolt_or_submolt_name(ledger: Ledger) -> None:
    alice = ledger.register("alice")
    assert alice.id.startswith("a_")
    post = ledger.ok(
        "POST", "/posts", alice, json={"submolt": "general", "title": "old field", "content": "x"}
    )["post"]
    assert post["author"] == {"id": alice.id, "name": "alice"}
    assert post["submolt"]["id"].startswith("s_") and post["submolt_name"] == "general"
    titled = ledger.ok("POST", "/posts", alice, json={"submolt_name": "general", "title": "only"})
    assert titled["post"]["content"] == ""
    me = ledger.ok("GET", "/agents/me", alice)["agent"]
    assert (me["id"], me["posts_count"]) == (alice.id, 2)


def test_follow_and_the_following_feed(ledger: Ledger) -> None:
    alice, bob, carol = (ledger.register(n) for n in ("alice", "bob", "carol"))
    bob_post = ledger.post(bob, "by bob")
    carol_post = ledger.post(carol, "by carol", submolt="reflections")
    followed = ledger.ok("POST", "/agents/bob/follow", alice)
    assert followed["changed"] is True
    assert ledger.ok("POST", "/agents/bob/follow", alice)["changed"] is False
    assert ledger.call("POST", "/agents/alice/follow", alice).status_code == 400
    following = ledger.ok("GET", "/feed", alice, params={"filter": "following"})
    assert [p["id"] for p in following["posts"]] == [bob_post]
    # The personal feed: followed agents plus subscribed submolts.
    ledger.ok("POST", "/submolts/reflections/subscribe", alice)
    feed = {p["id"] for p in ledger.ok("GET", "/feed", alice, params={"sort": "new"})["posts"]}
    assert feed == {bob_post, carol_post}
    profile = ledger.ok("GET", "/agents/profile", alice, params={"name": "bob"})
    assert profile["agent"]["follower_count"] == 1 and profile["agent"]["is_following"] is True
    assert profile["recentPosts"][0]["id"] == bob_post
    ledger.ok("DELETE", "/agents/bob/follow", alice)
    assert ledger.ok("GET", "/feed", alice, params={"filter": "following"})["posts"] == []
    assert ledger.call("GET", "/feed", alice, params={"filter": "nobody"}).status_code == 400


def test_offset_pagination_ends_and_cursor_pagination_does_not_repeat(ledger: Ledger) -> None:
    alice = ledger.register("alice")
    ids = [ledger.post(alice, f"post {i}") for i in range(5)]
    seen: list[str] = []
    offset = 0
    while True:  # moltbook-sdk's iterate(): pages until one comes back short
        page = ledger.ok("GET", "/posts", params={"sort": "new", "limit": 2, "offset": offset})
        seen += [p["id"] for p in page["posts"]]
        if len(page["posts"]) < 2:
            break
        offset += 2
    assert seen == ids[::-1]
    for sort in ("hot", "new", "top", "rising"):
        cursor, got = None, []
        while True:
            params = {"sort": sort, "limit": 2, **({"cursor": cursor} if cursor else {})}
            page = ledger.ok("GET", "/posts", params=params)
            got += [p["id"] for p in page["posts"]]
            cursor = page["next_cursor"]
            if not cursor:
                break
        assert sorted(got) == sorted(ids), sort


def test_time_filter_and_rising(ledger: Ledger) -> None:
    alice, bob = ledger.register("alice"), ledger.register("bob")
    old = ledger.post(alice, "old post")
    ledger.clock.advance(2 * 86_400)
    new = ledger.post(alice, "new post")
    day = ledger.ok("GET", "/posts", params={"sort": "top", "time": "day"})
    assert [p["id"] for p in day["posts"]] == [new]
    week = ledger.ok("GET", "/posts", params={"sort": "top", "time": "week"})
    assert {p["id"] for p in week["posts"]} == {old, new}
    ledger.ok("POST", f"/posts/{old}/upvote", bob)
    rising = ledger.ok("GET", "/posts", params={"sort": "rising"})
    # One vote on a two-day-old post rises less than none on a fresh one.
    assert [p["id"] for p in rising["posts"]] == [new, old]
    assert ledger.call("GET", "/posts", params={"time": "decade"}).status_code == 400


def test_search_ranks_by_relevance_and_cannot_be_injected(ledger: Ledger) -> None:
    alice = ledger.register("alice")
    best = ledger.post(alice, "Memory consolidation in agents", "memory memory and sleep")
    other = ledger.post(alice, "Cooking", "a recipe that mentions memory once")
    ledger.post(alice, "Unrelated", "nothing to see")
    comment = ledger.comment(alice, other, "my memory of this recipe")
    found = ledger.ok("GET", "/search", params={"q": "memory consolidation"})
    post_ids = [r["id"] for r in found["results"] if r["type"] == "post"]
    assert post_ids[0] == best and set(post_ids) == {best, other}
    assert comment in [r["id"] for r in found["results"] if r["type"] == "comment"]
    assert all(0 < r["similarity"] <= 1 for r in found["results"])
    assert found["agents"] == [] and found["posts"][0]["id"] == best
    only = ledger.ok("GET", "/search", params={"q": "memory", "type": "comments"})
    assert [r["type"] for r in only["results"]] == ["comment"]
    for hostile in ('" OR 1', "NEAR(a b)", "*", "title:memory"):
        assert ledger.call("GET", "/search", params={"q": hostile}).status_code == 200
    assert ledger.call("GET", "/search").status_code == 400
    agents = ledger.ok("GET", "/search/agents", params={"q": "ali"})
    assert [a["name"] for a in agents["agents"]] == ["alice"]


def test_notifications_read_state_and_home(ledger: Ledger) -> None:
    alice, bob = ledger.register("alice"), ledger.register("bob")
    post_id = ledger.post(alice, "ask me")
    first = ledger.comment(bob, post_id, "a question")
    ledger.comment(alice, post_id, "an answer", parent=first)
    ledger.comment(bob, post_id, "thanks", parent=first)
    ledger.ok("POST", "/agents/alice/follow", bob)
    listed = ledger.ok("GET", "/notifications", alice)
    kinds = [n["type"] for n in listed["notifications"]]
    assert kinds == ["new_follower", "post_comment", "post_comment"]
    assert listed["unread_count"] == 3
    assert [n["type"] for n in ledger.ok("GET", "/notifications", bob)["notifications"]] == [
        "comment_reply"
    ]
    home = ledger.ok("GET", "/home", alice)
    assert home["your_account"]["unread_notification_count"] == 3
    (activity,) = home["activity_on_your_posts"]
    assert (activity["post_id"], activity["new_notification_count"]) == (post_id, 2)
    assert activity["latest_commenters"] == ["bob"]
    assert home["what_to_do_next"] and home["quick_links"]
    assert {"pending_request_count", "unread_message_count"} <= set(home["your_direct_messages"])
    marked = ledger.ok("POST", f"/notifications/read-by-post/{post_id}", alice)
    assert marked["marked_read"] == 2
    assert ledger.ok("GET", "/home", alice)["activity_on_your_posts"] == []
    ledger.ok("POST", "/notifications/read-all", alice)
    assert ledger.ok("GET", "/notifications", alice)["unread_count"] == 0


def test_comment_get_delete_and_vote_removal(ledger: Ledger) -> None:
    alice, bob = ledger.register("alice"), ledger.register("bob")
    post_id = ledger.post(alice, "votes")
    parent = ledger.comment(bob, post_id, "parent")
    reply = ledger.comment(alice, post_id, "reply", parent=parent)
    assert ledger.ok("GET", f"/comments/{parent}")["comment"]["content"] == "parent"
    assert ledger.call("DELETE", f"/comments/{parent}", alice).status_code == 403
    deleted = ledger.call("DELETE", f"/comments/{parent}", bob)
    assert deleted.status_code == 204 and deleted.content == b""
    listed = ledger.ok("GET", f"/posts/{post_id}/comments")["comments"]
    assert [(c["id"], c["content"], c["is_deleted"]) for c in listed] == [
        (parent, "[deleted]", True),
        (reply, "reply", False),
    ]
    assert ledger.ok("POST", f"/posts/{post_id}/upvote", bob)["score"] == 1
    removed = ledger.ok("DELETE", f"/posts/{post_id}/vote", bob)
    assert (removed["score"], removed["vote"], removed["changed"]) == (0, None, True)
    assert ledger.call("DELETE", f"/posts/{post_id}", alice).status_code == 204
    assert ledger.call("GET", f"/posts/{post_id}").status_code == 404


def test_get_post_carries_its_comments_and_your_vote(ledger: Ledger) -> None:
    alice, bob = ledger.register("alice"), ledger.register("bob")
    post_id = ledger.post(alice, "with comments")
    ledger.comment(bob, post_id, "one")
    ledger.ok("POST", f"/posts/{post_id}/downvote", bob)
    body = ledger.ok("GET", f"/posts/{post_id}", bob)
    assert [c["content"] for c in body["comments"]] == ["one"]
    assert body["post"]["userVote"] == "down"
    assert ledger.ok("GET", f"/posts/{post_id}")["post"]["userVote"] is None


@pytest.mark.parametrize("sort", ["best", "top", "new", "old", "controversial"])
def test_every_comment_sort_and_comment_pages(ledger: Ledger, sort: str) -> None:
    alice = ledger.register("alice")
    post_id = ledger.post(alice, "threads")
    tops = [ledger.comment(alice, post_id, f"top {i}") for i in range(3)]
    page = ledger.ok("GET", f"/posts/{post_id}/comments", params={"sort": sort, "limit": 2})
    assert len(page["comments"]) == 2 and page["has_more"] and page["count"] == 3
    rest = ledger.ok(
        "GET",
        f"/posts/{post_id}/comments",
        params={"sort": sort, "limit": 2, "cursor": page["next_cursor"]},
    )
    assert {c["id"] for c in page["comments"] + rest["comments"]} == set(tops)


def test_submolt_rules_subscriptions_moderators_and_pins(ledger: Ledger) -> None:
    alice, bob = ledger.register("alice"), ledger.register("bob")
    created = ledger.ok("POST", "/submolts", alice, json={"name": "tea", "display_name": "Tea"})
    assert created["submolt"]["your_role"] == "owner"
    assert created["submolt"]["subscriber_count"] == 1  # the creator is subscribed
    assert ledger.ok("GET", "/submolts/tea", bob)["submolt"]["is_subscribed"] is False
    assert ledger.ok("POST", "/submolts/tea/subscribe", bob)["changed"] is True
    assert ledger.ok("GET", "/submolts/tea", bob)["submolt"]["is_subscribed"] is True
    posts = [ledger.post(bob, f"tea {i}", submolt="tea") for i in range(4)]
    assert ledger.call("POST", f"/posts/{posts[0]}/pin", bob).status_code == 403
    settings = {"json": {"theme_color": "#00ff00"}}
    assert ledger.call("PATCH", "/submolts/tea/settings", bob, **settings).status_code == 403
    ledger.ok("POST", "/submolts/tea/moderators", alice, json={"agent_name": "bob"})
    for post_id in posts[:3]:
        assert ledger.ok("POST", f"/posts/{post_id}/pin", bob)["is_pinned"] is True
    assert ledger.call("POST", f"/posts/{posts[3]}/pin", bob).status_code == 400
    moderators = ledger.ok("GET", "/submolts/tea/moderators")["moderators"]
    assert {(m["name"], m["role"]) for m in moderators} == {
        ("alice", "owner"),
        ("bob", "moderator"),
    }
    remove = {"content": b'{"agent_name": "alice"}'}
    assert ledger.call("DELETE", "/submolts/tea/moderators", bob, **remove).status_code == 403
    popular = ledger.ok("GET", "/submolts", params={"sort": "popular"})["submolts"]
    assert popular[0]["name"] == "tea"
    assert ledger.call("GET", "/submolts", params={"sort": "random"}).status_code == 400


def test_direct_messages_need_consent_and_a_block_holds(ledger: Ledger) -> None:
    alice, bob = ledger.register("alice"), ledger.register("bob")
    asked = ledger.ok("POST", "/agents/dm/request", alice, json={"to": "bob", "message": "hi"})
    conversation = asked["conversation_id"]
    send = {"json": {"message": "too early"}}
    path = f"/agents/dm/conversations/{conversation}/send"
    assert ledger.call("POST", path, alice, **send).status_code == 403
    assert (
        ledger.call("POST", f"/agents/dm/requests/{conversation}/approve", alice).status_code == 403
    )
    assert ledger.ok("GET", "/agents/dm/check", bob)["requests"]["count"] == 1
    ledger.ok("POST", f"/agents/dm/requests/{conversation}/approve", bob)
    ledger.ok("POST", path, bob, json={"message": "hello back"})
    assert ledger.ok("GET", "/agents/dm/check", alice)["messages"]["total_unread"] == 1
    read = ledger.ok("GET", f"/agents/dm/conversations/{conversation}", alice)
    assert [m["content"] for m in read["messages"]] == ["hi", "hello back"]
    assert ledger.ok("GET", "/agents/dm/check", alice)["messages"]["total_unread"] == 0
    carol = ledger.register("carol")
    again = ledger.ok("POST", "/agents/dm/request", carol, json={"to": "bob", "message": "x"})
    body = {"json": {"block": True}}
    ledger.ok("POST", f"/agents/dm/requests/{again['conversation_id']}/reject", bob, **body)
    blocked = ledger.call("POST", "/agents/dm/request", carol, json={"to": "bob", "message": "y"})
    assert blocked.status_code == 403
    stranger = ledger.call("GET", f"/agents/dm/conversations/{conversation}", carol)
    assert stranger.status_code == 404
    to_owner = {"json": {"to_owner": "@someone", "message": "x"}}
    assert ledger.call("POST", "/agents/dm/request", carol, **to_owner).status_code == 400


@pytest.mark.sqlite_only
def test_verification_challenges(make_ledger: Callable[..., Ledger]) -> None:
    ledger = make_ledger(ledger_verification=True)
    alice, bob = ledger.register("alice"), ledger.register("bob")
    created = ledger.ok(
        "POST", "/posts", alice, json={"submolt_name": "general", "title": "t", "content": "c"}
    )
    post_id, challenge = created["post"]["id"], created["verification"]
    assert created["verification_required"] is True
    # Pending: the author sees it, nobody else does.
    assert ledger.call("GET", f"/posts/{post_id}", bob).status_code == 404
    assert ledger.call("GET", f"/posts/{post_id}", alice).status_code == 200
    code = challenge["verification_code"]
    wrong = ledger.call("POST", "/verify", alice, json={"verification_code": code, "answer": "-1"})
    assert wrong.status_code == 400 and wrong.json()["attempts_remaining"] == 4
    assert (
        ledger.call(
            "POST", "/verify", bob, json={"verification_code": code, "answer": "1"}
        ).status_code
        == 404
    )
    db = sqlite3.connect(ledger.settings.ledger_db_path)
    answer = db.execute("SELECT answer FROM challenges WHERE code = ?", (code,)).fetchone()[0]
    db.close()
    solved = ledger.ok("POST", "/verify", alice, json={"verification_code": code, "answer": answer})
    assert (solved["content_type"], solved["content_id"]) == ("post", post_id)
    assert ledger.call("GET", f"/posts/{post_id}", bob).status_code == 200
    again = ledger.call(
        "POST", "/verify", alice, json={"verification_code": code, "answer": answer}
    )
    assert again.status_code == 409
    late = ledger.ok("POST", f"/posts/{post_id}/comments", bob, json={"content": "hi"})
    ledger.clock.advance(challenges.TTL_SECONDS + 1)
    expired = ledger.call(
        "POST",
        "/verify",
        bob,
        json={"verification_code": late["verification"]["verification_code"], "answer": "1"},
    )
    assert expired.status_code == 410


def test_challenge_text_spells_its_sum() -> None:
    text, answer = challenges.make(23, 7, "+")
    assert text.lower() == (
        "a lobster swims at twenty three meters per second and speeds up by seven, "
        "what is its new speed?"
    )
    assert answer == "30.00" and text != text.lower()
    assert challenges.make(12, 4, "*")[1] == "48.00"
    assert challenges.make(12, 4, "-")[1] == "8.00"


def test_pages_for_people_escape_what_agents_wrote(ledger: Ledger) -> None:
    alice, bob = ledger.register("alice"), ledger.register("bob")
    post_id = ledger.post(alice, "<script>alert(1)</script> title", "body & <b>bold</b>")
    ledger.comment(bob, post_id, "a <i>reply</i>")
    root = ledger.server.url
    with httpx.Client(base_url=root, timeout=10) as web:
        page = web.get(f"/post/{post_id}")
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert "default-src 'none'" in page.headers["content-security-policy"]
        assert "<script>" not in page.text and "&lt;script&gt;alert(1)" in page.text
        assert "a &lt;i&gt;reply&lt;/i&gt;" in page.text and 'href="/u/bob"' in page.text
        assert post_id in web.get("/m/general").text
        assert post_id in web.get("/u/alice").text and post_id in web.get("/").text
        assert web.get("/post/p_nope").status_code == 404
        assert web.get("/u/nobody").status_code == 404


@pytest.mark.sqlite_only
def test_an_old_database_is_upgraded_with_ids_for_everything(
    make_settings: Callable[..., Settings], clock: FakeClock
) -> None:
    settings = make_settings(**PERMISSIVE)
    settings.ledger_db_path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(settings.ledger_db_path)
    db.executescript(
        "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, applied_at REAL NOT NULL);"
        + MIGRATIONS[0][1]
        + "INSERT INTO schema_migrations VALUES (1, 0);"
        "INSERT INTO agents (name, name_key, key_hash, created_at) VALUES ('old', 'old', 'h', 0);"
        "INSERT INTO submolts (name, display_name, creator_id, created_at) "
        "VALUES ('legacy', 'Legacy', 1, 0);"
        "INSERT INTO posts (id, submolt_id, author_id, title, content, created_at, hot) "
        "VALUES ('p_0000000000000001', 1, 1, 'old words', 'searchable', 0, 0);"
    )
    db.commit()
    db.close()
    server = ServerThread(create_ledger_app(settings, clock=clock), name="ledger").start()
    try:
        with httpx.Client(base_url=server.url + "/api/v1", timeout=10) as http:
            post = http.get("/posts/p_0000000000000001").json()["post"]
            assert post["author"]["id"].startswith("a_")
            assert post["submolt"]["id"].startswith("s_")
            found = http.get("/search", params={"q": "searchable"}).json()["results"]
            assert [r["id"] for r in found] == ["p_0000000000000001"]
            roles = http.get("/submolts/legacy/moderators").json()["moderators"]
            assert roles == [
                {"id": post["author"]["id"], "name": "old", "agent_name": "old", "role": "owner"}
            ]
    finally:
        server.stop()
