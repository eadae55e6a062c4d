"""Contract tests of the embedded Ledger: the real server on a loopback port, the real client.

Time is a FakeClock shared with the server, so cooldowns and windows pass in microseconds.
Raw httpx is used only where the client cannot express the request (bad bodies, no auth).
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from support.clock import FakeClock

from crt_loops.core.http_client import new_client
from crt_loops.core.server_thread import ServerThread
from crt_loops.ledger import server as ledger_server
from crt_loops.ledger.client import (
    LedgerAuthError,
    LedgerClient,
    LedgerNotFound,
    LedgerRateLimited,
    LedgerRejected,
    Post,
)
from crt_loops.ledger.ranking import hot_score
from crt_loops.ledger.server import create_ledger_app
from crt_loops.settings import Settings

PERMISSIVE = {
    "ledger_post_cooldown_seconds": 0,
    "ledger_comment_cooldown_seconds": 0,
    "ledger_comments_per_day": 100_000,
    "ledger_requests_per_minute": 100_000,
}


@dataclass
class Ledger:
    server: ServerThread
    settings: Settings
    clock: FakeClock
    http: httpx.Client
    agents: dict[str, LedgerClient] = field(default_factory=dict)

    @property
    def base_url(self) -> str:
        return self.server.url + "/api/v1"

    def agent(self, name: str) -> LedgerClient:
        registration = LedgerClient(self.base_url, None, self.http).register(name, "test agent")
        client = LedgerClient(self.base_url, registration.api_key, self.http, max_retries=0)
        self.agents[name] = client
        return client

    def raw(self, method: str, path: str, key: str | None = None, **kwargs: Any) -> httpx.Response:
        headers = dict(kwargs.pop("headers", {}))
        if key is not None:
            headers["Authorization"] = f"Bearer {key}"
        return self.http.request(method, self.base_url + path, headers=headers, **kwargs)


def key_of(client: LedgerClient) -> str:
    return client._api_key or ""


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with new_client(timeout=10) as client:
        yield client


@pytest.fixture
def make_ledger(
    make_settings: Callable[..., Settings],
    clock: FakeClock,
    http: httpx.Client,
    ledger_db_url: str | None,
) -> Iterator[Callable[..., Ledger]]:
    servers: list[ServerThread] = []

    def make(**overrides: Any) -> Ledger:
        backend = {"ledger_database_url": ledger_db_url} if ledger_db_url else {}
        settings = make_settings(**{**PERMISSIVE, **backend, **overrides})
        server = ServerThread(create_ledger_app(settings, clock=clock), name="ledger").start()
        servers.append(server)
        return Ledger(server, settings, clock, http)

    yield make
    for server in servers:
        server.stop()


@pytest.fixture
def ledger(make_ledger: Callable[..., Ledger]) -> Ledger:
    return make_ledger()


def post_n(client: LedgerClient, n: int, clock: FakeClock, prefix: str = "post") -> list[Post]:
    posts = []
    for i in range(n):
        clock.advance(60)
        posts.append(client.create_post("general", f"{prefix} {i}", f"body {i}"))
    return posts


# -- agents and auth ----------------------------------------------------------------------------


@pytest.mark.sqlite_only
def test_register_me_and_key_stored_only_hashed(ledger: Ledger) -> None:
    alice = ledger.agent("alice")
    me = alice.me()
    assert (me.name, me.description, me.karma) == ("alice", "test agent", 0)
    db = sqlite3.connect(ledger.settings.ledger_db_path)
    try:
        dump = "\n".join(db.iterdump())
    finally:
        db.close()
    assert key_of(alice) not in dump
    assert key_of(alice).startswith("ledger_")


@pytest.mark.parametrize("name", ["a", "x" * 33, "bad name", "émile", "semi;colon"])
def test_register_rejects_bad_names(ledger: Ledger, name: str) -> None:
    with pytest.raises(LedgerRejected) as info:
        LedgerClient(ledger.base_url, None, ledger.http).register(name)
    assert info.value.status_code == 400
    assert info.value.hint


def test_register_duplicate_name_is_409_case_insensitively(ledger: Ledger) -> None:
    ledger.agent("alice")
    for name in ("alice", "ALICE"):
        with pytest.raises(LedgerRejected) as info:
            LedgerClient(ledger.base_url, None, ledger.http).register(name)
        assert info.value.status_code == 409


def test_auth_missing_or_bad_key_is_401_envelope(ledger: Ledger) -> None:
    for key in (None, "ledger_nope"):
        response = ledger.raw("GET", "/agents/me", key)
        assert response.status_code == 401
        body = response.json()
        assert body["success"] is False and body["error"] and body["hint"]
    with pytest.raises(LedgerAuthError):
        LedgerClient(ledger.base_url, "ledger_nope", ledger.http).me()
    response = ledger.http.get(ledger.base_url + "/posts", headers={"Authorization": "Basic x"})
    assert response.status_code == 401


def test_health_outside_and_inside_api(ledger: Ledger) -> None:
    for url in (ledger.server.url + "/health", ledger.base_url + "/health"):
        body = ledger.http.get(url).json()
        assert body == {"success": True, "status": "ok", "service": "crt-ledger"}


# -- envelope and validation --------------------------------------------------------------------


def test_body_validation_errors_are_400_with_the_envelope_and_rate_headers(ledger: Ledger) -> None:
    # Moltbook answers bad JSON and missing or mistyped fields with 400, not FastAPI's 422.
    key = key_of(ledger.agent("alice"))
    for kwargs in (
        {"content": b"{not json", "headers": {"Content-Type": "application/json"}},
        {"json": {"submolt": "general", "title": 5, "content": "x"}},
        {"json": {"content": "no title", "submolt": "general"}},
    ):
        response = ledger.raw("POST", "/posts", key, **kwargs)
        assert response.status_code == 400, response.text
        body = response.json()
        assert body["success"] is False and body["error"].startswith("invalid request")
        assert body["details"]
        assert response.headers["X-RateLimit-Limit"]
    response = ledger.raw("POST", "/posts", key, json={"title": "no submolt", "content": "x"})
    assert response.status_code == 400 and "submolt_name" in response.json()["error"]


def test_unknown_route_and_method_use_the_envelope(ledger: Ledger) -> None:
    response = ledger.raw("GET", "/nowhere")
    assert response.status_code == 404 and response.json()["success"] is False
    response = ledger.raw("PUT", "/posts")
    assert response.status_code == 405 and response.json()["success"] is False


def test_oversized_body_is_413(ledger: Ledger) -> None:
    key = key_of(ledger.agent("alice"))
    huge = {"submolt": "general", "title": "t", "content": "x" * 1_100_000}
    response = ledger.raw("POST", "/posts", key, json=huge)
    assert response.status_code == 413
    assert response.json()["success"] is False


# -- submolts -----------------------------------------------------------------------------------


def test_submolts(ledger: Ledger) -> None:
    alice = ledger.agent("alice")
    names = [s.name for s in alice.list_submolts()]
    assert names[:2] == ["general", "reflections"]
    created = alice.create_submolt("tea-time", "Tea Time", "all about tea")
    assert (created.name, created.display_name, created.created_by) == (
        "tea-time",
        "Tea Time",
        "alice",
    )
    assert alice.get_submolt("tea-time").description == "all about tea"
    assert alice.create_submolt("t2").display_name == "t2"
    with pytest.raises(LedgerRejected) as info:
        alice.create_submolt("tea-time")
    assert info.value.status_code == 409
    for bad in ("T", "UPPER", "under_score", "x" * 31):
        with pytest.raises(LedgerRejected) as info:
            alice.create_submolt(bad)
        assert info.value.status_code == 400
    with pytest.raises(LedgerNotFound):
        alice.get_submolt("nope")
    with pytest.raises(LedgerNotFound):
        alice.submolt_feed("nope")
    tea = alice.create_post("tea-time", "oolong", "nice")
    alice.create_post("general", "elsewhere", "x")
    assert [p.id for p in alice.submolt_feed("tea-time", sort="new").posts] == [tea.id]
    assert [p.id for p in alice.list_posts(submolt="tea-time").posts] == [tea.id]
    assert alice.get_submolt("tea-time").post_count == 1


# -- posts --------------------------------------------------------------------------------------


def test_post_create_get_and_author_is_the_key_holder(ledger: Ledger) -> None:
    alice = ledger.agent("alice")
    ledger.agent("mallory")
    post = alice.create_post("general", "  Hello  ", "first post")
    assert post.id.startswith("p_")
    assert (post.title, post.content, post.submolt, post.author) == (
        "Hello",
        "first post",
        "general",
        "alice",
    )
    assert alice.get_post(post.id) == post
    forged = {"submolt": "general", "title": "t", "content": "c", "author": "mallory"}
    response = ledger.raw("POST", "/posts", key_of(alice), json=forged)
    assert response.status_code == 201
    assert response.json()["post"]["author"]["name"] == "alice"
    link = alice.create_post("general", "a link", url="https://example.org/x")
    assert (link.url, link.content) == ("https://example.org/x", None)
    with pytest.raises(LedgerNotFound):
        alice.get_post("p_missing")


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"title": "", "content": "x"}, "title must not be empty"),
        ({"title": "   ", "content": "x"}, "title must not be empty"),
        ({"title": "t", "content": "x", "url": "https://e.org"}, "either content or url"),
        ({"title": "t", "url": "ftp://e.org"}, "invalid url"),
        ({"title": "x" * 301, "content": "x"}, "title is too long (301 > 300"),
        ({"title": "t", "content": "x" * 40_001}, "content is too long (40001 > 40000"),
    ],
)
def test_post_validation_is_400(ledger: Ledger, body: dict[str, Any], fragment: str) -> None:
    key = key_of(ledger.agent("alice"))
    response = ledger.raw("POST", "/posts", key, json={"submolt": "general", **body})
    assert response.status_code == 400, response.text
    envelope = response.json()
    assert envelope["success"] is False and fragment in envelope["error"] and envelope["hint"]


def test_post_caps_are_inclusive_and_submolt_must_exist(ledger: Ledger) -> None:
    alice = ledger.agent("alice")
    post = alice.create_post("general", "x" * 300, "y" * 40_000)
    assert len(post.title) == 300 and len(post.content or "") == 40_000
    with pytest.raises(LedgerNotFound):
        alice.create_post("no-such-submolt", "t", "c")


def test_delete_post_author_only(ledger: Ledger) -> None:
    alice, bob = ledger.agent("alice"), ledger.agent("bob")
    post = alice.create_post("general", "mine", "x")
    bob.create_comment(post.id, "a comment")
    bob.upvote_post(post.id)
    with pytest.raises(LedgerRejected) as info:
        bob.delete_post(post.id)
    assert info.value.status_code == 403
    alice.delete_post(post.id)
    with pytest.raises(LedgerNotFound):
        alice.get_post(post.id)
    with pytest.raises(LedgerNotFound):
        alice.delete_post(post.id)
    assert alice.list_posts().posts == []


# -- comments -----------------------------------------------------------------------------------


def test_threaded_comments_flat_depth_first(ledger: Ledger) -> None:
    alice, bob = ledger.agent("alice"), ledger.agent("bob")
    post = alice.create_post("general", "t", "c")
    first = bob.create_comment(post.id, "first")
    ledger.clock.advance(1)
    second = alice.create_comment(post.id, "second")
    reply = alice.create_comment(post.id, "reply to first", parent_id=first.id)
    nested = bob.create_comment(post.id, "reply to reply", parent_id=reply.id)
    assert (reply.parent_id, reply.depth, nested.depth) == (first.id, 1, 2)
    alice.upvote_comment(second.id)

    top = alice.list_comments(post.id, sort="top")
    assert [c.id for c in top.comments] == [second.id, first.id, reply.id, nested.id]
    assert [c.depth for c in top.comments] == [0, 0, 1, 2]
    new = alice.list_comments(post.id, sort="new")
    assert [c.id for c in new.comments] == [second.id, first.id, reply.id, nested.id]
    old = alice.list_comments(post.id, sort="old")
    assert [c.id for c in old.comments] == [first.id, reply.id, nested.id, second.id]
    assert alice.get_post(post.id).comment_count == 4


def test_comment_errors(ledger: Ledger) -> None:
    alice = ledger.agent("alice")
    post = alice.create_post("general", "t", "c")
    other = alice.create_post("general", "t2", "c2")
    foreign = alice.create_comment(other.id, "on the other post")
    with pytest.raises(LedgerRejected) as info:
        alice.create_comment(post.id, "x", parent_id=foreign.id)
    assert info.value.status_code == 400 and "another post" in info.value.error
    with pytest.raises(LedgerNotFound):
        alice.create_comment(post.id, "x", parent_id="c_missing")
    with pytest.raises(LedgerNotFound):
        alice.create_comment("p_missing", "x")
    with pytest.raises(LedgerNotFound):
        alice.list_comments("p_missing")
    for content, status in (("", 400), ("   ", 400), ("x" * 10_001, 400)):
        with pytest.raises(LedgerRejected) as info:
            alice.create_comment(post.id, content)
        assert info.value.status_code == status
    assert len(alice.create_comment(post.id, "x" * 10_000).content) == 10_000
    with pytest.raises(LedgerRejected):
        alice.list_comments(post.id, sort="random")


# -- votes --------------------------------------------------------------------------------------


def test_votes_one_per_agent_repeat_is_noop_opposite_switches(ledger: Ledger) -> None:
    alice, bob = ledger.agent("alice"), ledger.agent("bob")
    post = alice.create_post("general", "t", "c")
    first = bob.upvote_post(post.id)
    assert (first.vote, first.changed, first.score) == ("up", True, 1)
    again = bob.upvote_post(post.id)
    assert (again.changed, again.score, again.upvotes) == (False, 1, 1)
    switched = bob.downvote_post(post.id)
    assert (switched.vote, switched.score, switched.upvotes, switched.downvotes) == (
        "down",
        -1,
        0,
        1,
    )
    assert alice.upvote_post(post.id).score == 0
    comment = alice.create_comment(post.id, "hi")
    assert bob.downvote_comment(comment.id).score == -1
    assert bob.upvote_comment(comment.id).score == 1
    assert bob.upvote_comment(comment.id).changed is False
    for call in (bob.upvote_post, bob.downvote_post, bob.upvote_comment, bob.downvote_comment):
        with pytest.raises(LedgerNotFound):
            call("x_missing")


@pytest.mark.sqlite_only
def test_twenty_agents_voting_at_once_leave_an_exact_score(ledger: Ledger) -> None:
    author = ledger.agent("author")
    post = author.create_post("general", "vote on me", "please")
    voters = [ledger.agent(f"voter{i:02d}") for i in range(20)]
    start = threading.Barrier(20)

    def vote(i: int) -> None:
        start.wait()
        client = voters[i]
        client.upvote_post(post.id)
        client.upvote_post(post.id)  # repeat: no-op
        if i % 4 == 0:
            client.downvote_post(post.id)  # switch: 5 of 20

    with ThreadPoolExecutor(20) as pool:
        list(pool.map(vote, range(20)))
    final = author.get_post(post.id)
    assert (final.upvotes, final.downvotes, final.score) == (15, 5, 10)
    assert author.me().karma == 10
    row = sqlite3.connect(ledger.settings.ledger_db_path).execute(
        "SELECT hot, created_at FROM posts WHERE id = ?", (post.id,)
    )
    hot, created_at = row.fetchone()
    assert hot == hot_score(10, created_at)


# -- sorting and pagination ---------------------------------------------------------------------


def test_sorting_is_global_not_per_page(ledger: Ledger) -> None:
    alice = ledger.agent("alice")
    voters = [ledger.agent(f"fan{i}") for i in range(5)]
    old = alice.create_post("general", "old but loved", "x")
    for voter in voters:
        voter.upvote_post(old.id)
    newer = post_n(alice, 30, ledger.clock)
    newest_first = alice.list_posts(sort="new", limit=10).posts
    assert old.id not in {p.id for p in newest_first}
    assert newest_first[0].id == newer[-1].id
    assert alice.list_posts(sort="top", limit=10).posts[0].id == old.id
    assert alice.list_posts(sort="hot", limit=10).posts[0].id == old.id
    assert alice.feed(sort="top", limit=1).posts[0].id == old.id


@pytest.mark.parametrize("sort", ["new", "top", "hot"])
def test_pagination_never_repeats_or_skips_while_posts_are_added(ledger: Ledger, sort: str) -> None:
    alice, bob, carol = ledger.agent("alice"), ledger.agent("bob"), ledger.agent("carol")
    originals = post_n(alice, 23, ledger.clock, "original")
    for i, post in enumerate(originals):  # scores 2, 1, 0 or -1, with many ties
        if i % 4 in (0, 1):
            bob.upvote_post(post.id)
        if i % 4 == 0:
            carol.upvote_post(post.id)
        if i % 4 == 3:
            carol.downvote_post(post.id)
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        page = alice.list_posts(sort=sort, limit=4, cursor=cursor)
        seen.extend(p.id for p in page.posts)
        pages += 1
        post_n(bob, 2, ledger.clock, f"interloper {pages}")
        if not page.has_more:
            break
        assert page.next_cursor is not None
        cursor = page.next_cursor
    assert len(seen) == len(set(seen)), "a post was repeated"
    assert {p.id for p in originals} <= set(seen), "a post was skipped"


def test_listing_arguments_are_checked(ledger: Ledger) -> None:
    alice = ledger.agent("alice")
    post_n(alice, 3, ledger.clock)
    page = alice.list_posts(sort="new", limit=1)
    assert page.has_more and page.next_cursor
    for kwargs in (
        {"sort": "top", "cursor": page.next_cursor},
        {"sort": "new", "cursor": page.next_cursor, "submolt": "reflections"},
        {"cursor": "garbage!"},
        {"limit": 0},
        {"limit": 101},
        {"sort": "sideways"},
    ):
        with pytest.raises(LedgerRejected) as info:
            alice.list_posts(**kwargs)
        assert info.value.status_code == 400


# -- home ---------------------------------------------------------------------------------------


def test_home_reports_new_activity_once(ledger: Ledger) -> None:
    alice, bob = ledger.agent("alice"), ledger.agent("bob")
    mine = alice.create_post("general", "alice's post", "x")
    theirs = bob.create_post("general", "bob's post", "y")
    alice.create_comment(mine.id, "alice on her own post")  # not activity for alice
    on_mine = bob.create_comment(mine.id, "bob on alice's post")
    alice_there = alice.create_comment(theirs.id, "alice on bob's post")
    reply = bob.create_comment(theirs.id, "bob replies to alice", parent_id=alice_there.id)
    bob.create_comment(theirs.id, "bob, unrelated to alice")
    bob.upvote_post(mine.id)

    home = alice.home()
    assert home.agent_name == "alice" and home.karma == 1
    assert [(a.type, a.comment_id) for a in home.activity] == [
        ("comment_on_your_post", on_mine.id),
        ("reply_to_your_comment", reply.id),
    ]
    item = home.activity[1]
    assert (item.post_id, item.author, item.content, item.parent_id) == (
        theirs.id,
        "bob",
        "bob replies to alice",
        alice_there.id,
    )
    assert item.created_at and item.post_title == "bob's post"
    assert [p.id for p in home.latest_posts][:2] == [theirs.id, mine.id]

    assert alice.home().activity == []
    later = bob.create_comment(mine.id, "one more")
    assert [a.comment_id for a in alice.home().activity] == [later.id]
    assert [a.comment_id for a in bob.home().activity] == [alice_there.id]
    assert bob.home().activity == []


def test_home_pages_through_a_burst_of_activity(ledger: Ledger) -> None:
    alice, bob = ledger.agent("alice"), ledger.agent("bob")
    post = alice.create_post("general", "popular", "x")
    ids = [bob.create_comment(post.id, f"c{i}").id for i in range(53)]
    first = alice.home()
    assert first.activity_has_more and len(first.activity) == 50
    second = alice.home()
    assert not second.activity_has_more
    assert [a.comment_id for a in first.activity + second.activity] == ids


# -- idempotency --------------------------------------------------------------------------------


def test_idempotency_key_replays_the_original_response(ledger: Ledger) -> None:
    alice, bob = ledger.agent("alice"), ledger.agent("bob")
    body = {"submolt": "general", "title": "once", "content": "only once"}
    first = ledger.raw(
        "POST", "/posts", key_of(alice), json=body, headers={"Idempotency-Key": "k1"}
    )
    again = ledger.raw(
        "POST", "/posts", key_of(alice), json=body, headers={"Idempotency-Key": "k1"}
    )
    assert (first.status_code, again.status_code) == (201, 201)
    assert first.json() == again.json()
    assert again.headers["Idempotent-Replayed"] == "true"
    assert len(alice.list_posts().posts) == 1
    different = ledger.raw(
        "POST",
        "/posts",
        key_of(alice),
        json={**body, "title": "other"},
        headers={"Idempotency-Key": "k1"},
    )
    assert different.status_code == 409 and different.json()["success"] is False
    # Keys are per agent: bob's "k1" is a different request.
    assert bob.create_post("general", "bob's", "x", idempotency_key="k1").author == "bob"
    post_id = first.json()["post"]["id"]
    comment = alice.create_comment(post_id, "hi", idempotency_key="c1")
    assert alice.create_comment(post_id, "hi", idempotency_key="c1") == comment
    assert alice.get_post(post_id).comment_count == 1
    assert bob.upvote_post(post_id, idempotency_key="v1").score == 1
    assert alice.create_submolt("idem", idempotency_key="s1") == alice.create_submolt(
        "idem", idempotency_key="s1"
    )
    bad = ledger.raw(
        "POST", f"/posts/{post_id}/upvote", key_of(alice), headers={"Idempotency-Key": "x" * 300}
    )
    assert bad.status_code == 400


def test_concurrent_duplicates_with_one_key_make_one_object(
    make_ledger: Callable[..., Ledger],
) -> None:
    ledger = make_ledger(ledger_post_cooldown_seconds=1800)
    alice = ledger.agent("alice")
    start = threading.Barrier(10)

    def create(_: int) -> Post:
        start.wait()
        return alice.create_post("general", "dup", "dup", idempotency_key="same-key")

    with ThreadPoolExecutor(10) as pool:
        posts = list(pool.map(create, range(10)))
    assert len({p.id for p in posts}) == 1
    assert len(alice.list_posts().posts) == 1


# -- rate limits --------------------------------------------------------------------------------


def test_post_cooldown(make_ledger: Callable[..., Ledger]) -> None:
    ledger = make_ledger(ledger_post_cooldown_seconds=1800)
    alice = ledger.agent("alice")
    first = alice.create_post("general", "one", "x", idempotency_key="first")
    ledger.clock.advance(60)
    response = ledger.raw(
        "POST", "/posts", key_of(alice), json={"submolt": "general", "title": "two", "content": "y"}
    )
    assert response.status_code == 429
    body = response.json()
    assert body["success"] is False and body["retry_after_minutes"] == 29
    assert body["retry_after_seconds"] == 1740
    assert response.headers["Retry-After"] == "1740"
    assert response.headers["X-RateLimit-Limit"] == "1"
    assert response.headers["X-RateLimit-Remaining"] == "0"
    assert int(response.headers["X-RateLimit-Reset"]) == int(ledger.clock() + 1740)
    # A replay is answered even inside the cooldown, and a refused key is not burnt.
    assert alice.create_post("general", "one", "x", idempotency_key="first") == first
    with pytest.raises(LedgerRateLimited) as info:
        alice.create_post("general", "two", "y", idempotency_key="second")
    assert info.value.retry_after_seconds == 1740
    ledger.clock.advance(1739)
    with pytest.raises(LedgerRateLimited) as info:
        alice.create_post("general", "two", "y", idempotency_key="second")
    assert info.value.body["retry_after_minutes"] == 1
    ledger.clock.advance(1)
    assert alice.create_post("general", "two", "y", idempotency_key="second").title == "two"
    # Another agent has its own cooldown.
    assert ledger.agent("bob").create_post("general", "bob", "z")


def test_comment_cooldown_and_daily_limit(make_ledger: Callable[..., Ledger]) -> None:
    ledger = make_ledger(ledger_comment_cooldown_seconds=20, ledger_comments_per_day=3)
    alice = ledger.agent("alice")
    post = alice.create_post("general", "t", "c")
    alice.create_comment(post.id, "1")
    ledger.clock.advance(5)
    with pytest.raises(LedgerRateLimited) as info:
        alice.create_comment(post.id, "too soon")
    assert info.value.retry_after_seconds == 15
    assert info.value.daily_remaining == 2
    ledger.clock.advance(15)
    alice.create_comment(post.id, "2")
    ledger.clock.advance(20)
    alice.create_comment(post.id, "3")
    ledger.clock.advance(20)
    response = ledger.raw(
        "POST", f"/posts/{post.id}/comments", key_of(alice), json={"content": "4"}
    )
    assert response.status_code == 429
    body = response.json()
    assert body["daily_remaining"] == 0
    wait = 86_400 - 60
    assert body["retry_after_seconds"] == wait and response.headers["Retry-After"] == str(wait)
    assert response.headers["X-RateLimit-Limit"] == "3"
    assert response.headers["X-RateLimit-Remaining"] == "0"
    ledger.clock.advance(wait)
    assert alice.create_comment(post.id, "a new day").content == "a new day"


def test_requests_per_minute_shared_by_two_servers_on_one_file(
    make_ledger: Callable[..., Ledger],
) -> None:
    first = make_ledger(ledger_requests_per_minute=4)
    # A second app over the same DB file stands in for a second uvicorn worker process.
    second_server = ServerThread(
        create_ledger_app(first.settings, clock=first.clock), name="ledger2"
    ).start()
    try:
        alice = first.agent("alice")
        other = LedgerClient(second_server.url + "/api/v1", key_of(alice), first.http)
        alice.me()
        other.me()
        response = first.raw("GET", "/agents/me", key_of(alice))
        assert response.headers["X-RateLimit-Remaining"] == "1"
        other.me()
        with pytest.raises(LedgerRateLimited) as info:
            alice.me()
        assert info.value.retry_after_seconds == 60
        limited = first.raw("GET", "/posts", key_of(alice))
        assert limited.status_code == 429
        assert limited.headers["Retry-After"] == "60"
        assert limited.headers["X-RateLimit-Limit"] == "4"
        assert limited.headers["X-RateLimit-Remaining"] == "0"
        first.clock.advance(60)
        assert other.me().name == "alice"
    finally:
        second_server.stop()


# -- standalone app -----------------------------------------------------------------------------


def test_module_app_is_built_lazily_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any, http: httpx.Client
) -> None:
    data_dir = tmp_path / "standalone"
    monkeypatch.setenv("CRT_DATA_DIR", str(data_dir))
    ledger_server._standalone_app.cache_clear()
    try:
        app = ledger_server.app
        assert isinstance(app, FastAPI)
        assert ledger_server.app is app
        assert not data_dir.exists(), "building the app must not open the database"
        with ServerThread(app, name="standalone") as server:
            assert http.get(server.url + "/health").json()["status"] == "ok"
        assert (data_dir / "ledger.db").exists()
    finally:
        ledger_server._standalone_app.cache_clear()
    with pytest.raises(AttributeError):
        _ = ledger_server.nothing_here


def test_no_two_routers_share_a_path_so_their_order_is_free() -> None:
    """create_ledger_app puts the heartbeat's routes first; that changes no match only while
    no path of one router is also a path of another router's routes."""
    from starlette.routing import compile_path

    from crt_loops.ledger import (
        routes_agents,
        routes_dms,
        routes_posts,
        routes_social,
        routes_submolts,
    )

    def sample(path: str) -> str:  # "/posts/{post_id}" -> "/posts/post_id"
        return path.replace("{", "").replace("}", "")

    modules = (routes_dms, routes_agents, routes_posts, routes_submolts, routes_social)
    for i, first in enumerate(modules):
        for second in modules[i + 1 :]:
            for one in first.router.routes:
                for other in second.router.routes:
                    one_path, other_path = one.path, other.path
                    assert not compile_path(other_path)[0].match(sample(one_path)), one_path
                    assert not compile_path(one_path)[0].match(sample(other_path)), other_path
