"""What a heartbeat looks at (docs/architecture.md §5 step 4), gathered in bounded size.

The thread's recent messages (``CRT_LOOP_WINDOW``), its latest reflection and personality, the
agent's own last runs and actions (so it does not repeat itself), activity on its own Ledger
posts (the Ledger's ``/home``), and the feed **with post ids**. Every Ledger string is other
agents' words: it is kept as data here and fenced as untrusted by prompt.py.

Gathering only reads; keeping the newly shown activity is the pipeline's write.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Set as AbstractSet
from concurrent.futures import Future
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from crt_loops.core.enums import RunOutcome
from crt_loops.db import agent_history, heartbeats
from crt_loops.db.session import MessageRow, SessionDB
from crt_loops.heartbeat import approvals
from crt_loops.mind.personality import get_profile, style_instructions
from crt_loops.mind.reflection import latest_reflection

FEED_LIMIT = 15
ACTIVITY_LIMIT = 10
SNIPPET_CHARS = 280
MESSAGE_CHARS = 600


class LedgerReader(Protocol):
    """The two Ledger calls a heartbeat's context needs (``ledger_client.LedgerClient``)."""

    def home(self) -> Any: ...

    def list_posts(self, *, sort: str = ..., limit: int = ..., cursor: str | None = ...) -> Any: ...


@dataclass(frozen=True)
class FeedPost:
    id: str
    title: str
    author: str
    submolt: str
    score: int
    comment_count: int
    snippet: str
    own: bool


@dataclass(frozen=True)
class Activity:
    post_id: str
    post_title: str
    comment_id: str
    author: str
    snippet: str


@dataclass
class HeartbeatContext:
    thread_id: str
    messages: list[MessageRow]
    reflection: str | None
    personality: str | None
    recent_runs: list[str]
    recent_actions: list[str]
    feed: list[FeedPost] = field(default_factory=list)
    activity: list[Activity] = field(default_factory=list)
    karma: int | None = None
    owner_feedback: list[str] = field(default_factory=list)  # edits and rejections, newest first

    def shown_post_ids(self) -> set[str]:
        return {p.id for p in self.feed} | {a.post_id for a in self.activity}

    def shown_comment_ids(self) -> set[str]:
        return {a.comment_id for a in self.activity}

    def fingerprint(self, *extra: str) -> str:
        """A hash of what changed-or-not matters: new messages, feed, activity, instructions.

        Scores and the agent's own run history are left out: a vote count ticking up is not a
        reason to wake the model (docs/reference.md §5: the cost of idle heartbeats).
        """
        basis = {
            "messages": [m.id for m in self.messages],
            "feed": sorted((p.id, p.comment_count) for p in self.feed),
            "activity": sorted(a.comment_id for a in self.activity),
            "reflection": self.reflection,
            "extra": list(extra),
        }
        return hashlib.sha256(json.dumps(basis, sort_keys=True).encode()).hexdigest()


def snippet(text: Any, limit: int = SNIPPET_CHARS) -> str:
    value = " ".join(str(text or "").split())
    return value if len(value) <= limit else value[: limit - 1] + "…"


def _get(obj: Any, name: str, default: Any = None) -> Any:
    if isinstance(obj, dict):
        return obj.get(name, default)
    return getattr(obj, name, default)


def gather_local(db: SessionDB, thread_id: str, *, window: int) -> HeartbeatContext:
    """The thread's own side of the context (no network)."""
    messages = db.list_messages(thread_id, limit=window, newest=True)
    reflection_entry = latest_reflection(db, thread_id)
    profile = get_profile(db, thread_id)
    runs = heartbeats.list_runs(db, thread_id, limit=5)
    recent_runs = [
        f"{r.outcome}{'/' + r.reason if r.reason else ''}: {snippet(r.summary, 160)}"
        for r in runs
        if r.outcome is not RunOutcome.RUNNING
    ]
    recent_actions = []
    for action in agent_history.recent_thread_actions(db, thread_id, limit=8):
        p = action.payload
        if action.type == "post":
            text = f'post in {p.get("submolt")}: "{snippet(p.get("title"), 80)}"'
        elif action.type == "comment":
            text = f'comment on {p.get("post_id")}: "{snippet(p.get("content"), 80)}"'
        else:
            text = f"{p.get('direction')}vote on {p.get('post_id')}"
        recent_actions.append(f"{action.state}: {text}")
    return HeartbeatContext(
        thread_id=thread_id,
        messages=messages,
        reflection=snippet(reflection_entry.body, 800) if reflection_entry else None,
        personality=style_instructions(profile) if profile else None,
        recent_runs=recent_runs,
        recent_actions=recent_actions,
        owner_feedback=approvals.owner_feedback(db, thread_id, now=db.clock()),
    )


@dataclass(frozen=True)
class LedgerHome:
    """What the Ledger's ``/home`` showed: the agent's karma and the comments on its posts that
    are new since the last call (``/home`` shows each one once), in the stored shape."""

    karma: int | None
    activity: list[dict[str, Any]]


def read_home(ledger: LedgerReader) -> LedgerHome:
    """Read ``/home``. Ledger errors propagate.

    The caller must keep the new activity (agent_history.merge_pending_activity) before it does
    anything that can fail, or those comments are never shown again.
    """
    home = ledger.home()
    fresh = [
        {
            "post_id": str(_get(item, "post_id")),
            "post_title": snippet(_get(item, "post_title", ""), 120),
            "comment_id": str(_get(item, "comment_id", "") or _get(item, "id", "")),
            "author": snippet(_get(item, "author", "?"), 40),
            "content": snippet(_get(item, "content", "")),
        }
        for item in list(_get(home, "activity", None) or [])
    ]
    if not _has_once_only_list(home):
        # Moltbook itself: no once-only list, so the unread notifications are the replies.
        fresh = _notified_replies(ledger, home)
    return LedgerHome(karma=_get(home, "karma"), activity=fresh)


def _has_once_only_list(home: Any) -> bool:
    """Whether /home carried the Ledger's ``activity`` list (each new comment once), which
    Moltbook's /home does not have."""
    if isinstance(home, dict):
        return "activity" in home
    return "activity" in getattr(home, "model_fields_set", {"activity"})


def _notified_replies(ledger: LedgerReader, home: Any) -> list[dict[str, Any]]:
    """Moltbook's /home has no once-only list: its unread comment notifications, grouped by
    post in ``activity_on_your_posts``, are the replies to answer. Where a group does not carry
    its comments (Moltbook gives a preview), they come from ``GET /notifications``."""
    groups = list(_get(home, "activity_on_your_posts", None) or [])
    found = [(group, c) for group in groups for c in list(_get(group, "comments", None) or [])]
    notifications = getattr(ledger, "notifications", None)
    if groups and not found and callable(notifications):
        page = notifications(unread_only=True)
        titles = {str(_get(g, "post_id")): _get(g, "post_title", "") for g in groups}
        for note in list(_get(page, "notifications", None) or []):
            comment = _get(note, "comment", None)
            post_id = str(_get(note, "related_post_id", "") or _get(comment, "post_id", ""))
            if comment is not None and post_id in titles:
                found.append(({"post_id": post_id, "post_title": titles[post_id]}, comment))
    return [
        {
            "post_id": str(_get(group, "post_id")),
            "post_title": snippet(_get(group, "post_title", ""), 120),
            "comment_id": str(_get(comment, "id")),
            "author": snippet(_get(comment, "author", "?"), 40),
            "content": snippet(_get(comment, "content", "")),
        }
        for group, comment in found
    ]


def unanswered_activity(
    pending: list[dict[str, Any]], answered: AbstractSet[str]
) -> list[Activity]:
    """The newest of the kept activity (oldest first) the agent has not answered yet."""
    return [
        Activity(
            post_id=p["post_id"],
            post_title=p["post_title"],
            comment_id=p["comment_id"],
            author=p["author"],
            snippet=p["content"],
        )
        for p in pending
        if p["comment_id"] not in answered
    ][-ACTIVITY_LIMIT:]


def mark_own(feed: list[FeedPost], own_post_ids: AbstractSet[str]) -> list[FeedPost]:
    """``feed`` with the agent's own posts marked."""
    return [replace(p, own=True) if p.id in own_post_ids else p for p in feed]


def start_feed_read(ledger: LedgerReader) -> Future[list[FeedPost]]:
    """:func:`read_feed` on a thread of its own, started now: the caller reads ``/home``
    meanwhile, so the two reads cost one round trip to a remote Ledger instead of two.

    The future holds the feed or the error ``read_feed`` raised; the caller waits for it
    before its run goes on, so no request of a run outlives the run's reading phase."""
    future: Future[list[FeedPost]] = Future()

    def read() -> None:
        future.set_running_or_notify_cancel()
        try:
            future.set_result(read_feed(ledger))
        except BaseException as exc:  # handed to the caller, who raises it
            future.set_exception(exc)

    threading.Thread(target=read, name="heartbeat-feed-read", daemon=True).start()
    return future


def read_feed(ledger: LedgerReader) -> list[FeedPost]:
    """The hot feed, with post ids, none marked as the agent's own yet (:func:`mark_own`,
    once the history says which are). Ledger errors propagate."""
    page = ledger.list_posts(sort="hot", limit=FEED_LIMIT)
    posts = _get(page, "posts", page) or []
    feed: list[FeedPost] = []
    for post in list(posts)[:FEED_LIMIT]:
        post_id = str(_get(post, "id"))
        author = _get(post, "author", "?")
        feed.append(
            FeedPost(
                id=post_id,
                title=snippet(_get(post, "title", ""), 160),
                author=snippet(_get(author, "name", author), 40),
                submolt=str(_get(post, "submolt", "general")),
                score=int(_get(post, "score", 0) or 0),
                comment_count=int(_get(post, "comment_count", 0) or 0),
                snippet=snippet(_get(post, "content", "") or _get(post, "url", "")),
                own=False,
            )
        )
    return feed
