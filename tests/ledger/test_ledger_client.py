"""LedgerClient: error translation and retry policy.

The retry policy is driven through httpx's own seam (``MockTransport`` with a plain function)
and a closed port; everything about the Ledger's answers is checked against the real server.
"""

from __future__ import annotations

import json
import logging
import socket
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from support.clock import FakeClock

from crt_loops.core.server_thread import ServerThread
from crt_loops.ledger.client import (
    Comment,
    CommentList,
    HomeDigest,
    LedgerAuthError,
    LedgerClient,
    LedgerError,
    LedgerHTTPError,
    LedgerNotFound,
    LedgerProtocolError,
    LedgerRateLimited,
    LedgerRejected,
    LedgerUnavailable,
    Post,
    PostPage,
    Submolt,
    VoteResult,
)
from crt_loops.ledger.server import create_ledger_app
from crt_loops.settings import Settings

BASE = "http://ledger.test/api/v1"
Handler = Callable[[httpx.Request], httpx.Response]


class Script:
    """A MockTransport handler answering from a list, recording each request it saw."""

    def __init__(self, *answers: httpx.Response | Exception) -> None:
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, Exception):
            raise answer
        return answer


def ok(body: dict[str, Any], status: int = 200) -> httpx.Response:
    return httpx.Response(status, json={"success": True, **body})


def fail(status: int, error: str = "nope", hint: str = "", **extra: Any) -> httpx.Response:
    return httpx.Response(status, json={"success": False, "error": error, "hint": hint, **extra})


POST_JSON = {"id": "p_1", "title": "t", "content": "c", "author": {"name": "a"}, "score": 0}


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def scripted(sleeps: list[float]) -> Iterator[Callable[..., tuple[LedgerClient, Script]]]:
    opened: list[httpx.Client] = []

    def make(*answers: httpx.Response | Exception, **kwargs: Any) -> tuple[LedgerClient, Script]:
        script = Script(*answers)
        http = httpx.Client(transport=httpx.MockTransport(script))
        opened.append(http)
        client = LedgerClient(BASE, "ledger_secret_key", http, sleep=sleeps.append, **kwargs)
        return client, script

    yield make
    for http in opened:
        http.close()


# -- the error tree -----------------------------------------------------------------------------


def test_exception_tree() -> None:
    for cls in (LedgerUnavailable, LedgerProtocolError, LedgerHTTPError):
        assert issubclass(cls, LedgerError)
    for cls in (LedgerRateLimited, LedgerRejected):
        assert issubclass(cls, LedgerHTTPError)
    for cls in (LedgerAuthError, LedgerNotFound):
        assert issubclass(cls, LedgerRejected)
    assert not issubclass(LedgerRateLimited, LedgerRejected)


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (400, LedgerRejected),
        (401, LedgerAuthError),
        (403, LedgerRejected),
        (404, LedgerNotFound),
        (409, LedgerRejected),
        (413, LedgerRejected),
        (422, LedgerRejected),
        (429, LedgerRateLimited),
        (500, LedgerHTTPError),
        (503, LedgerUnavailable),
    ],
)
def test_status_translation_keeps_error_and_hint(
    scripted: Callable[..., tuple[LedgerClient, Script]], status: int, cls: type[LedgerError]
) -> None:
    client, _ = scripted(fail(status, "bad thing", "do better"), max_retries=0)
    with pytest.raises(cls) as info:
        client.get_post("p_1")
    assert isinstance(info.value.__cause__, httpx.HTTPStatusError)
    if isinstance(info.value, LedgerHTTPError):
        assert (info.value.status_code, info.value.error, info.value.hint) == (
            status,
            "bad thing",
            "do better",
        )
        assert "bad thing" in str(info.value) and "do better" in str(info.value)


def test_bad_success_bodies_are_protocol_errors(
    scripted: Callable[..., tuple[LedgerClient, Script]],
) -> None:
    for answer in (
        httpx.Response(200, text="<html>"),
        httpx.Response(200, json=[1, 2]),
        ok({"post": {"title": "no id"}}),
        ok({}),
    ):
        client, _ = scripted(answer)
        with pytest.raises(LedgerProtocolError):
            client.get_post("p_1")


def test_models_read_moltbook_shapes() -> None:
    post = Post.model_validate(
        {
            "id": "abc",
            "title": "t",
            "content": None,
            "upvotes": 5,
            "downvotes": 2,
            "submolt": {"id": "s1", "name": "general"},
            "author": {"id": "a1", "name": "Someone", "karma": 3},
            "extra_field": "ignored",
        }
    )
    assert (post.submolt, post.author, post.score) == ("general", "Someone", 3)
    home = HomeDigest.model_validate({"your_account": {"name": "x", "karma": 7}, "activity": []})
    assert (home.agent_name, home.karma) == ("x", 7)


# -- retries ------------------------------------------------------------------------------------


def test_get_is_retried_on_5xx_with_exponential_backoff(
    scripted: Callable[..., tuple[LedgerClient, Script]], sleeps: list[float]
) -> None:
    client, script = scripted(
        fail(503), fail(500), fail(502), ok({"post": POST_JSON}), max_retries=3
    )
    assert client.get_post("p_1").id == "p_1"
    assert len(script.requests) == 4
    assert sleeps == [0.25, 0.5, 1.0]


def test_retries_give_up_after_max_retries(
    scripted: Callable[..., tuple[LedgerClient, Script]], sleeps: list[float]
) -> None:
    client, script = scripted(fail(503), max_retries=2, backoff_base=1, backoff_max=1.5)
    with pytest.raises(LedgerUnavailable) as info:
        client.feed()
    assert info.value.status_code == 503
    assert len(script.requests) == 3
    assert sleeps == [1, 1.5]
    client, script = scripted(fail(500), max_retries=1)
    with pytest.raises(LedgerHTTPError):
        client.feed()
    assert len(script.requests) == 2


def test_post_without_idempotency_key_is_not_retried(
    scripted: Callable[..., tuple[LedgerClient, Script]], sleeps: list[float]
) -> None:
    for answer in (fail(503), fail(500), httpx.ReadTimeout("slow")):
        client, script = scripted(answer, ok({"post": POST_JSON}, 201))
        with pytest.raises((LedgerUnavailable, LedgerHTTPError)):
            client.create_post("general", "t", "c")
        assert len(script.requests) == 1
    assert sleeps == []


def test_post_with_idempotency_key_is_retried_with_the_same_key(
    scripted: Callable[..., tuple[LedgerClient, Script]], sleeps: list[float]
) -> None:
    client, script = scripted(
        httpx.ReadTimeout("slow"), fail(503), ok({"post": POST_JSON}, 201), max_retries=2
    )
    assert client.create_post("general", "t", "c", idempotency_key="k-1").id == "p_1"
    assert [r.headers["Idempotency-Key"] for r in script.requests] == ["k-1"] * 3
    assert len(sleeps) == 2


def test_connect_failure_is_retried_even_for_unkeyed_posts(
    scripted: Callable[..., tuple[LedgerClient, Script]],
) -> None:
    client, script = scripted(
        httpx.ConnectError("refused"), ok({"post": POST_JSON}, 201), max_retries=1
    )
    assert client.create_post("general", "t", "c").id == "p_1"
    assert len(script.requests) == 2


def test_4xx_is_never_retried(
    scripted: Callable[..., tuple[LedgerClient, Script]], sleeps: list[float]
) -> None:
    for status in (400, 401, 404, 409):
        client, script = scripted(fail(status), max_retries=3)
        with pytest.raises(LedgerRejected):
            client.get_post("p_1")
        assert len(script.requests) == 1
    assert sleeps == []


def test_rate_limit_is_raised_at_once_with_retry_after(
    scripted: Callable[..., tuple[LedgerClient, Script]], sleeps: list[float]
) -> None:
    cases: list[tuple[httpx.Response, float | None]] = [
        (fail(429, retry_after_seconds=15, daily_remaining=3), 15),
        (fail(429, retry_after_minutes=30), 1800),
        (httpx.Response(429, json={"error": "slow"}, headers={"Retry-After": "7"}), 7),
        (httpx.Response(429, text="busy"), None),
    ]
    for answer, expected in cases:
        client, script = scripted(answer, max_retries=3)
        with pytest.raises(LedgerRateLimited) as info:
            client.feed()
        assert info.value.retry_after_seconds == expected
        assert len(script.requests) == 1
    assert sleeps == []


def test_short_rate_limit_may_be_waited_out_once_when_allowed(
    scripted: Callable[..., tuple[LedgerClient, Script]], sleeps: list[float]
) -> None:
    client, script = scripted(
        fail(429, retry_after_seconds=1), ok({"posts": []}), rate_limit_retry_cap=2
    )
    assert client.feed().posts == []
    assert sleeps == [1]
    client, script = scripted(fail(429, retry_after_seconds=1), rate_limit_retry_cap=2)
    with pytest.raises(LedgerRateLimited):
        client.feed()
    assert len(script.requests) == 2, "waits out a rate limit at most once"
    client, script = scripted(fail(429, retry_after_seconds=60), rate_limit_retry_cap=2)
    with pytest.raises(LedgerRateLimited):
        client.feed()
    assert len(script.requests) == 1


def test_closed_port_is_unavailable_after_retries(sleeps: list[float]) -> None:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    url = f"http://127.0.0.1:{port}/api/v1"
    client = LedgerClient(url, "k", timeout=1, max_retries=2, sleep=sleeps.append)
    with client, pytest.raises(LedgerUnavailable) as info:
        client.feed()
    assert info.value.connect_failed
    assert isinstance(info.value.__cause__, httpx.ConnectError)
    assert sleeps == [0.25, 0.5]


def test_api_key_is_never_logged_or_shown(
    scripted: Callable[..., tuple[LedgerClient, Script]], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    client, script = scripted(fail(503), fail(401), ok({"posts": []}), max_retries=2)
    with pytest.raises(LedgerAuthError) as info:
        client.feed()
    assert script.requests[0].headers["Authorization"] == "Bearer ledger_secret_key"
    assert "ledger_secret_key" not in caplog.text
    assert "ledger_secret_key" not in str(info.value) and "ledger_secret_key" not in repr(client)


def test_callers_http_client_stays_open_own_client_closes() -> None:
    http = httpx.Client(transport=httpx.MockTransport(Script(ok({"status": "ok"}))))
    with LedgerClient(BASE, None, http) as client:
        assert client.health().status == "ok"
    assert not http.is_closed
    http.close()
    own = LedgerClient(BASE, None)
    own.close()
    assert own._http.is_closed


def test_request_urls_are_parsed_once_and_say_the_same(
    scripted: Callable[..., tuple[LedgerClient, Script]], monkeypatch: pytest.MonkeyPatch
) -> None:
    client, script = scripted(ok({"posts": [POST_JSON], "post": POST_JSON, "results": []}))
    client.list_posts(sort="hot", limit=15)
    client.list_posts(sort="hot", limit=15)
    client.list_posts(sort="new", limit=15, cursor="a b&c")
    client.search("caf\u00e9 & tea", limit=5)
    client.get_post("../agents/me")
    assert [str(r.url) for r in script.requests] == [
        f"{BASE}/posts?sort=hot&limit=15",
        f"{BASE}/posts?sort=hot&limit=15",
        f"{BASE}/posts?sort=new&limit=15&cursor=a+b%26c",
        f"{BASE}/search?q=caf%C3%A9+%26+tea&type=all&limit=5",
        f"{BASE}/posts/%2E%2E%2Fagents%2Fme",
    ]
    # The same path and query reuse one parsed URL; the kept set stays bounded.
    assert len(client._urls) == 4
    monkeypatch.setattr("crt_loops.ledger.client.URL_CACHE_SIZE", 2)
    for post_id in ("p1", "p2", "p3"):
        client.get_post(post_id)
    assert len(client._urls) <= 2
    assert str(script.requests[-1].url) == f"{BASE}/posts/p3"


# -- against the real server --------------------------------------------------------------------


@pytest.fixture
def real(make_settings: Callable[..., Settings], clock: FakeClock) -> Iterator[str]:
    settings = make_settings(ledger_post_cooldown_seconds=0, ledger_comment_cooldown_seconds=0)
    with ServerThread(create_ledger_app(settings, clock=clock), name="ledger") as server:
        yield server.url + "/api/v1"


def test_every_method_returns_typed_models(real: str) -> None:
    with LedgerClient(real, None) as anonymous:
        registration = anonymous.register("typed", "a typed agent")
    assert "api_key" not in repr(registration)
    with LedgerClient(real, registration.api_key) as client:
        assert client.health().service == "crt-ledger"
        assert client.me().name == "typed"
        assert all(isinstance(s, Submolt) for s in client.list_submolts())
        assert isinstance(client.create_submolt("typed-sub", idempotency_key="s"), Submolt)
        assert isinstance(client.get_submolt("general"), Submolt)
        post = client.create_post("general", "t", "c", idempotency_key="p")
        assert isinstance(post, Post) and client.get_post(post.id) == post
        for page in (
            client.list_posts(sort="new"),
            client.feed(sort="top"),
            client.submolt_feed("general"),
        ):
            assert isinstance(page, PostPage) and page.posts[0].id == post.id
        comment = client.create_comment(post.id, "hi", idempotency_key="c")
        assert isinstance(comment, Comment) and comment.author == "typed"
        reply = client.create_comment(post.id, "re", parent_id=comment.id)
        listed = client.list_comments(post.id, sort="new")
        assert isinstance(listed, CommentList)
        assert [c.id for c in listed.comments] == [comment.id, reply.id]
        for vote in (
            client.upvote_post(post.id, idempotency_key="v"),
            client.downvote_post(post.id),
            client.upvote_comment(comment.id),
            client.downvote_comment(comment.id),
        ):
            assert isinstance(vote, VoteResult)
        assert vote.vote == "down" and vote.score == -1
        assert isinstance(client.home(), HomeDigest)
        client.delete_post(post.id)
        with pytest.raises(LedgerNotFound):
            client.get_post(post.id)


def test_the_moltbook_methods_against_the_real_server(real: str) -> None:
    with LedgerClient(real, None) as anonymous:
        alice_key = anonymous.register("alice").api_key
        bob_key = anonymous.register("bob").api_key
    with LedgerClient(real, alice_key) as alice, LedgerClient(real, bob_key) as bob:
        assert alice.update_me(description="new words").description == "new words"
        post = alice.create_post("general", "findable title", "some searchable words")
        assert post.author_id and post.author_id.startswith("a_")
        assert alice.page_url(post.id) == real.removesuffix("/api/v1") + f"/post/{post.id}"
        assert bob.follow("alice").changed is True
        assert bob.follow("alice").changed is False
        assert [p.id for p in bob.feed(following_only=True).posts] == [post.id]
        profile = bob.profile("alice")
        assert profile.agent.is_following and profile.recent_posts[0].id == post.id
        assert bob.unfollow("alice").changed is True
        assert bob.subscribe("reflections").changed is True
        assert bob.unsubscribe("reflections").changed is True
        comment = bob.create_comment(post.id, "a reply with words")
        assert bob.get_comment(comment.id).content == "a reply with words"
        found = alice.search("searchable words")
        assert [(r.type, r.id) for r in found.results] == [
            ("post", post.id),
            ("comment", comment.id),
        ]
        assert [r.id for r in alice.search("searchable", kind="posts").results] == [post.id]
        page = alice.notifications(unread_only=True)
        assert [n.type for n in page.notifications] == ["post_comment", "new_follower"]
        assert page.notifications[0].comment is not None
        home = alice.home()
        assert home.unread_notification_count == 2
        assert [a.post_id for a in home.activity_on_your_posts] == [post.id]
        assert alice.mark_notifications_read(post.id).marked_read == 1
        assert alice.mark_notifications_read().marked_read == 1
        assert bob.upvote_post(post.id).score == 1
        assert bob.remove_post_vote(post.id).score == 0
        bob.delete_comment(comment.id)
        assert bob.get_comment(comment.id).is_deleted
        asked = alice.dm_request("bob", "hello bob")
        assert bob.dm_check().pending_requests == 1
        assert [c.id for c in bob.dm_requests()] == [asked.conversation_id]
        bob.dm_answer(asked.conversation_id, approve=True)
        bob.dm_send(asked.conversation_id, "hi alice")
        (conversation,) = alice.dm_conversations()
        assert (conversation.with_agent, conversation.unread_count) == ("bob", 1)
        assert [m.content for m in alice.dm_messages(conversation.id)] == ["hello bob", "hi alice"]
        with pytest.raises(LedgerNotFound):
            alice.verify("ledger_verify_nope", "1.00")


def test_real_server_errors_map_to_the_tree(real: str) -> None:
    with LedgerClient(real, "ledger_wrong") as client:
        with pytest.raises(LedgerAuthError) as auth:
            client.me()
        assert auth.value.hint
    with LedgerClient(real, None) as anonymous:
        key = anonymous.register("mapper").api_key
    with LedgerClient(real, key) as client:
        with pytest.raises(LedgerRejected) as rejected:
            client.create_post("general", "", "c")
        assert rejected.value.status_code == 400 and "title" in rejected.value.error
        body = json.dumps(rejected.value.body)
        assert '"success": false' in body
        # Ids are single path segments: one cannot climb into another route.
        for hostile in ("../agents/me", "..", "p_1/comments"):
            with pytest.raises(LedgerNotFound):
                client.get_post(hostile)
        with pytest.raises(LedgerNotFound):
            client.upvote_post("../../agents/me")
