"""Drive every operation of moltbook-sdk 0.1.0 against a Ledger; print {operation: outcome}.

Runs in the clients' own venv (not the project's). Argument: a JSON object with ``api`` (the
Ledger's .../api/v1), ``peer`` (another agent's name) and ``peer_post`` (a post of the peer's).
An outcome is "ok" or "error: <type>: <message>"; each operation also checks what it got back.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

from moltbook import AsyncMoltbookClient, MoltbookClient

args = json.loads(sys.argv[1])
results: dict[str, str] = {}
state: dict[str, Any] = {}


def op(name: str, fn: Callable[[], Any]) -> None:
    try:
        fn()
        results[name] = "ok"
    except Exception as exc:
        results[name] = f"error: {type(exc).__name__}: {str(exc)[:300]}"


anon = MoltbookClient(api_key="unused", base_url=args["api"], retries=1)
me_name = f"sdk_{int(time.time() * 1000) % 10**8}"


def register() -> None:
    result = anon.agents.register(name=me_name, description="moltbook-sdk driver")
    assert result.agent.api_key and result.agent.id
    state["key"] = result.agent.api_key
    state["client"] = MoltbookClient(api_key=result.agent.api_key, base_url=args["api"], retries=1)


op("agents.register", register)
client: MoltbookClient = state["client"]


def check(cond: bool, what: str) -> None:
    if not cond:
        raise AssertionError(what)


op("agents.me", lambda: check(client.agents.me().name == me_name, "me"))
op("agents.status", lambda: check(bool(client.agents.status().status), "status"))
op("agents.update", lambda: check(client.agents.update(description="new").name == me_name, "u"))
op("agents.get_profile", lambda: check(client.agents.get_profile(args["peer"]).name, "profile"))
op("agents.follow", lambda: client.agents.follow(args["peer"]))
op("agents.unfollow", lambda: client.agents.unfollow(args["peer"]))


def create_submolt() -> None:
    sub = client.submolts.create(name=f"sdk-{me_name[4:]}", display_name="SDK", description="d")
    state["submolt"] = sub.name


op("submolts.create", create_submolt)
op("submolts.list", lambda: check(len(client.submolts.list()) >= 2, "list"))
op("submolts.get", lambda: check(client.submolts.get("general").name == "general", "get"))
op("submolts.subscribe", lambda: client.submolts.subscribe("general"))
op("submolts.unsubscribe", lambda: client.submolts.unsubscribe("general"))


def create_post() -> None:
    post = client.posts.create(submolt="general", title="SDK post", content="from the sdk")
    check(post.author.name == me_name and bool(post.submolt.id), "post shape")
    state["post"] = post.id


op("posts.create", create_post)
op("posts.list", lambda: check(len(client.posts.list(sort="new", limit=5)) >= 1, "list"))
op("posts.list_rising", lambda: client.posts.list(sort="rising", limit=5))
op("posts.get", lambda: check(client.posts.get(state["post"]).id == state["post"], "get"))
op("posts.upvote", lambda: client.posts.upvote(args["peer_post"]))
op("posts.downvote", lambda: client.posts.downvote(args["peer_post"]))
op("posts.remove_vote", lambda: client.posts.remove_vote(args["peer_post"]))


def iterate() -> None:
    pages = list(client.posts.iterate(sort="new", limit=1))
    ids = [p.id for page in pages for p in page]
    check(len(ids) == len(set(ids)) and len(ids) >= 2, f"iterate gave {ids}")


op("posts.iterate", iterate)
op("submolts.get_feed", lambda: client.submolts.get_feed("general", sort="new"))
op("feed.get", lambda: client.feed.get(sort="new", limit=10, offset=0))
op("search.query", lambda: check(len(client.search.query("sdk").posts) >= 1, "search"))


def comment() -> None:
    created = client.comments.create(post_id=args["peer_post"], content="sdk comment")
    state["comment"] = created.id


def comment_raw() -> None:
    # The SDK's own parse of the answer fails (see the test's list of client bugs), so the
    # comment id for the next operations comes from the raw HTTP answer.
    data = client._http.post(f"/posts/{args['peer_post']}/comments", {"content": "sdk raw"})
    state.setdefault("comment", data["comment"]["id"])


op("comments.create", comment)
comment_raw()
op("comments.list", lambda: client.comments.list(args["peer_post"], sort="controversial"))
op("comments.get", lambda: client.comments.get(state["comment"]))
op("comments.upvote", lambda: client.comments.upvote(state["comment"]))
op("comments.downvote", lambda: client.comments.downvote(state["comment"]))
op("comments.delete", lambda: client.comments.delete(state["comment"]))
op("posts.delete", lambda: client.posts.delete(state["post"]))


async def run_async() -> None:
    """The same operations through AsyncMoltbookClient (its own HTTP stack and parsing)."""
    aclient = AsyncMoltbookClient(api_key=state["key"], base_url=args["api"], retries=1)

    async def aop(name: str, fn: Callable[[], Awaitable[Any]]) -> None:
        try:
            await fn()
            results[f"async.{name}"] = "ok"
        except Exception as exc:
            results[f"async.{name}"] = f"error: {type(exc).__name__}: {str(exc)[:300]}"

    async def create_post() -> None:
        post = await aclient.posts.create(submolt="general", title="async", content="async sdk")
        state["apost"] = post.id

    async def create_comment() -> None:
        await aclient.comments.create(post_id=args["peer_post"], content="async comment")

    await aop("agents.me", aclient.agents.me)
    await aop("agents.status", aclient.agents.status)
    await aop("agents.update", lambda: aclient.agents.update(description="async"))
    await aop("agents.get_profile", lambda: aclient.agents.get_profile(args["peer"]))
    await aop("agents.follow", lambda: aclient.agents.follow(args["peer"]))
    await aop("agents.unfollow", lambda: aclient.agents.unfollow(args["peer"]))
    await aop("submolts.list", aclient.submolts.list)
    await aop("submolts.get", lambda: aclient.submolts.get("general"))
    await aop("submolts.subscribe", lambda: aclient.submolts.subscribe("general"))
    await aop("submolts.unsubscribe", lambda: aclient.submolts.unsubscribe("general"))
    await aop("submolts.get_feed", lambda: aclient.submolts.get_feed("general"))
    await aop("posts.create", create_post)
    await aop("posts.list", lambda: aclient.posts.list(sort="top", limit=3))
    await aop("posts.get", lambda: aclient.posts.get(state["apost"]))
    await aop("posts.upvote", lambda: aclient.posts.upvote(args["peer_post"]))
    await aop("posts.downvote", lambda: aclient.posts.downvote(args["peer_post"]))
    await aop("posts.remove_vote", lambda: aclient.posts.remove_vote(args["peer_post"]))
    await aop("feed.get", lambda: aclient.feed.get(sort="new"))
    await aop("search.query", lambda: aclient.search.query("async"))
    await aop("comments.create", create_comment)
    await aop("comments.list", lambda: aclient.comments.list(args["peer_post"]))
    await aop("comments.upvote", lambda: aclient.comments.upvote(state["comment"]))
    await aop("comments.downvote", lambda: aclient.comments.downvote(state["comment"]))
    await aop("posts.delete", lambda: aclient.posts.delete(state["apost"]))
    await aclient.close()


asyncio.run(run_async())
print(json.dumps(results))
