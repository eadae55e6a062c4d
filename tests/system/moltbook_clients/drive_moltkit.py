"""Drive every MoltenClient operation of moltkit 0.2.3 against a Ledger with challenges on.

Runs in the clients' own venv; moltkit takes the Ledger's URL as ``base_url``. The Ledger runs
with CRT_LEDGER_VERIFICATION=1, so creating a post answers with a word-problem challenge that
this driver solves (as an agent would) and sends with ``verify``. Argument and output as in
drive_moltbook_sdk.py.
"""

from __future__ import annotations

import json
import re
import sys
import time
import urllib.request
from collections.abc import Callable
from typing import Any

from moltkit.client import MoltenClient

args = json.loads(sys.argv[1])
results: dict[str, str] = {}
state: dict[str, Any] = {}
_ONES = "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen"
_TEENS = "fifteen sixteen seventeen eighteen nineteen"
WORDS = {w: i for i, w in enumerate(f"{_ONES} {_TEENS}".split(" "))}
_DECADES = ["twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]
TENS = {w: 10 * (i + 2) for i, w in enumerate(_DECADES)}


def op(name: str, fn: Callable[[], Any]) -> None:
    try:
        fn()
        results[name] = "ok"
    except Exception as exc:
        results[name] = f"error: {type(exc).__name__}: {str(exc)[:300]}"


def check(cond: bool, what: str) -> None:
    if not cond:
        raise AssertionError(what)


def solve(text: str) -> str:
    words = re.findall(r"[a-z]+", text.lower())
    numbers: list[int] = []
    i = 0
    while i < len(words):
        if words[i] in TENS:
            n = TENS[words[i]]
            if i + 1 < len(words) and words[i + 1] in WORDS and WORDS[words[i + 1]] < 10:
                n += WORDS[words[i + 1]]
                i += 1
            numbers.append(n)
        elif words[i] in WORDS:
            numbers.append(WORDS[words[i]])
        i += 1
    a, b = numbers[:2]
    plain = " ".join(words)
    value = a + b if "speeds up" in plain else a - b if "gives away" in plain else a * b
    return f"{value:.2f}"


def register(name: str) -> str:
    request = urllib.request.Request(
        f"{args['api']}/agents/register",
        data=json.dumps({"name": name}).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request) as answer:
        return str(json.loads(answer.read())["agent"]["api_key"])


name = f"kit_{int(time.time() * 1000) % 10**8}"
client = MoltenClient(api_key=register(name), base_url=args["api"])
peer = MoltenClient(api_key=args["peer_key"], base_url=args["api"])


def create_post() -> None:
    answer = client.create_post("general", "moltkit post", "from moltkit and its search words")
    state["post"] = answer["post"]["id"]
    state["verification"] = answer["verification"]


def verify() -> None:
    challenge = state["verification"]
    answer = client.verify(challenge["verification_code"], solve(challenge["challenge_text"]))
    check(answer["content_id"] == state["post"], f"verified {answer}")


op("create_post", create_post)
op("verify", verify)
op("get_me", lambda: check(client.get_me()["agent"]["name"] == name, "me"))
op("get_my_profile", lambda: check(client.get_my_profile().id.startswith("a_"), "profile"))
op("get_agent", lambda: check(client.get_agent(args["peer"]).name == args["peer"], "agent"))
op("follow", lambda: client.follow(args["peer"]))


def get_feed_following() -> None:
    page = client.get_feed(sort="new", limit=10, filter_by="following")
    check(all(p.author_id for p in page.items), "author ids")
    check(any(p.id == args["peer_post"] for p in page.items), "peer's post in following feed")


op("get_feed_following", get_feed_following)
op("get_feed", lambda: client.get_feed(sort="rising", limit=5))


def list_posts() -> None:
    first = client.list_posts(sort="new", limit=1)
    second = client.list_posts(sort="new", limit=1, cursor=first.next_cursor)
    check(first.has_more and first.items[0].id != second.items[0].id, "cursor paging")


op("list_posts", list_posts)
op("get_post", lambda: check(client.get_post(state["post"]).id == state["post"], "get_post"))


def create_comment() -> None:
    answer = peer.create_comment(state["post"], "peer comment for moltkit")
    state["comment"] = answer["comment"]["id"]
    challenge = answer["verification"]
    peer.verify(challenge["verification_code"], solve(challenge["challenge_text"]))
    mine = client.create_comment(state["post"], "my reply", parent_id=state["comment"])
    challenge = mine["verification"]
    client.verify(challenge["verification_code"], solve(challenge["challenge_text"]))


op("create_comment", create_comment)
op("list_comments", lambda: check(len(client.list_comments(state["post"]).items) == 2, "list"))
op("upvote_post", lambda: client.upvote_post(args["peer_post"]))
op("downvote_post", lambda: client.downvote_post(args["peer_post"]))
op("upvote_comment", lambda: client.upvote_comment(state["comment"]))


def get_home() -> None:
    home = client.get_home()
    check(home.name == name and home.unread_notification_count >= 1, f"home {home}")
    check(home.activity and home.activity[0]["post_id"] == state["post"], "activity")


op("get_home", get_home)


def notifications() -> None:
    page = client.list_notifications(limit=10)
    check(any(n.type == "post_comment" and not n.is_read for n in page.items), "unread")


op("list_notifications", notifications)
op("mark_read_by_post", lambda: client.mark_read_by_post(state["post"]))
op(
    "mark_all_read",
    lambda: check(
        client.get_home().unread_notification_count == 0 or client.mark_all_read() is not None,
        "read all",
    ),
)
op("list_submolts", lambda: check(len(client.list_submolts().items) >= 2, "submolts"))
op("search", lambda: check(len(client.search("search words")) >= 1, "search"))
op("search_posts", lambda: check(len(client.search_posts("moltkit", time_filter="day")) >= 1, "p"))
op("search_comments", lambda: check(len(client.search_comments("peer comment")) >= 1, "c"))
op("search_agents", lambda: check(len(client.search_agents("kit_")) >= 1, "agents"))
op("unfollow", lambda: client.unfollow(args["peer"]))
op("delete_post", lambda: client.delete_post(state["post"]))
print(json.dumps(results))
