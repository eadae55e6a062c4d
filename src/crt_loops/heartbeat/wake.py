"""Wake on replies: a comment on the agent's post, or a reply to its comment, runs that thread's
heartbeat early (trigger ``reply``) instead of waiting for its next interval.

Finding replies costs one Ledger read per ``CRT_HEARTBEAT_REPLY_WAKE_SECONDS`` for the whole
agent, whatever the number of threads and processes: :func:`read_replies` (today the Ledger's
``/home``; the one place to change for a notifications endpoint), guarded by a DB lease so only
one process polls per interval. New replies join the unanswered-activity list the heartbeat
context reads (``/home`` shows each once), and are mapped to the thread whose post or comment
they answer through the outbox. Nothing new means no wake, so no LLM call.

A wake only moves the thread's due time to now (or to when its comment cooldown ends); the run
itself is an ordinary scheduled one: active hours, owner-active deferral, cooldowns and the
daily comment budget all still apply. A thread outside its active hours, or out of comments for
the day, is not woken at all.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from crt_loops.core import metrics
from crt_loops.core.clock import iso
from crt_loops.core.enums import RunReason, Trigger
from crt_loops.db import agent_history, heartbeats, wakes
from crt_loops.db.session import SessionDB
from crt_loops.heartbeat.context import LedgerReader, snippet
from crt_loops.ledger.client import LedgerError

if TYPE_CHECKING:
    from crt_loops.heartbeat.executor import HeartbeatRunner

logger = logging.getLogger(__name__)

PREFIX = "[HEARTBEAT_LOOP]"
POLL_LEASE = "heartbeat:reply_poll"
DAY = 86_400.0


@dataclass(frozen=True)
class Reply:
    """Someone answered the agent: on its post (``comment_on_your_post``) or to its comment
    (``reply_to_your_comment``)."""

    comment_id: str
    post_id: str
    parent_id: str | None
    kind: str
    author: str
    content: str
    post_title: str

    def as_activity(self) -> dict[str, Any]:
        """The shape of heartbeat.context's unanswered-activity entries."""
        return {
            "post_id": self.post_id,
            "post_title": snippet(self.post_title, 120),
            "comment_id": self.comment_id,
            "author": snippet(self.author, 40),
            "content": snippet(self.content),
            "parent_id": self.parent_id,
        }


def _get(obj: Any, name: str) -> Any:
    return obj.get(name) if isinstance(obj, dict) else getattr(obj, name, None)


def read_replies(ledger: LedgerReader) -> list[Reply]:
    """New replies to the agent, in one Ledger read. Ledger errors propagate."""
    home = ledger.home()
    replies = []
    for item in list(_get(home, "activity") or []):
        comment_id = str(_get(item, "comment_id") or _get(item, "id") or "")
        if not comment_id:
            continue
        parent = _get(item, "parent_id")
        replies.append(
            Reply(
                comment_id=comment_id,
                post_id=str(_get(item, "post_id") or ""),
                parent_id=str(parent) if parent else None,
                kind=str(_get(item, "type") or "comment_on_your_post"),
                author=str(_get(item, "author") or "?"),
                content=str(_get(item, "content") or ""),
                post_title=str(_get(item, "post_title") or ""),
            )
        )
    return replies


def threads_for(db: SessionDB, replies: list[Reply]) -> dict[str, list[str]]:
    """thread_id -> the comment ids that answer something that thread's heartbeat sent."""
    found: dict[str, list[str]] = {}
    for reply in replies:
        candidates = [("post", reply.post_id)]
        if reply.parent_id:
            candidates.insert(0, ("comment", reply.parent_id))
        for kind, ledger_id in candidates:
            thread_id = wakes.thread_of_sent(db, kind, ledger_id)
            if thread_id is not None:
                found.setdefault(thread_id, []).append(reply.comment_id)
                break
    return found


def trigger_for(db: SessionDB, thread_id: str, trigger: Trigger) -> Trigger:
    """``reply`` for a scheduled run that a reply wake made due early, else ``trigger``."""
    if trigger is Trigger.SCHEDULE and wakes.pending_wake(db, thread_id) is not None:
        return Trigger.REPLY
    return trigger


def after_run(
    db: SessionDB, run: heartbeats.RunRecord, due: float | None, now: float
) -> float | None:
    """The thread's next due time once a run ends: the wake it answered is settled, and a
    reply that came in during the run makes it due again now. A run deferred while the owner
    talks keeps its wake for the retry."""
    if run.reason is RunReason.OWNER_ACTIVE:
        return due
    again = wakes.clear_wake(db, run.thread_id, up_to=run.started_at)
    return min(due, now) if again and due is not None else due


@dataclass
class WatcherStatus:
    interval_seconds: float
    polls: int = 0
    replies_seen: int = 0
    wakes: int = 0
    last_poll_at: float | None = None
    next_poll_at: float | None = None
    last_error: str | None = None
    last_woken: list[str] = field(default_factory=list)

    def as_api(self) -> dict[str, Any]:
        return {
            "enabled": self.interval_seconds > 0,
            "interval_seconds": self.interval_seconds,
            "polls": self.polls,
            "replies_seen": self.replies_seen,
            "wakes": self.wakes,
            "last_poll_at": iso(self.last_poll_at),
            "next_poll_at": iso(self.next_poll_at),
            "last_error": self.last_error,
            "last_woken": self.last_woken,
        }


class ReplyWatcher:
    """Polls for replies at most once per interval (across processes) and wakes threads."""

    def __init__(self, runner: HeartbeatRunner, *, interval: float) -> None:
        self.runner = runner
        self.status = WatcherStatus(interval_seconds=interval)
        self._next = runner.clock() if interval > 0 else None
        self.status.next_poll_at = self._next

    @property
    def enabled(self) -> bool:
        return self.status.interval_seconds > 0

    def seconds_until_poll(self) -> float | None:
        if self._next is None:
            return None
        return max(0.0, self._next - self.runner.clock())

    def maybe_poll(self) -> int:
        """Poll when due; returns the number of threads woken."""
        if self._next is None or self.runner.clock() < self._next:
            return 0
        return self.poll()

    def poll(self) -> int:
        """One Ledger read (unless another process polled this interval); wakes threads."""
        runner, db = self.runner, self.runner.db
        interval = self.status.interval_seconds
        now = runner.clock()
        self._next = now + interval
        self.status.next_poll_at = self._next
        # The lease outlives this poll on purpose: it is the "one read per interval for the
        # whole agent" across every worker process, not a lock around the read.
        if not wakes.take_poll_slot(db, POLL_LEASE, runner.owner, now=now, ttl=interval * 0.9):
            return 0
        if runner.ledger is None:
            self.status.last_error = runner.options.ledger_error or "the Ledger is not available"
            return 0
        try:
            replies = read_replies(runner.ledger)
        except LedgerError as exc:  # a Ledger hiccup: recorded, the next interval tries again
            self.status.last_error = f"{type(exc).__name__}: {exc}"
            logger.warning("%s reply check failed: %s", PREFIX, exc)
            return 0
        self.status.polls += 1
        self.status.last_poll_at = now
        self.status.last_error = None
        if not replies:
            return 0
        self.status.replies_seen += len(replies)
        # /home showed them once: keep them for the heartbeat that answers them.
        agent_history.merge_pending_activity(db, [r.as_activity() for r in replies])
        woken = [t for t, ids in threads_for(db, replies).items() if self._wake(t, ids, now)]
        self.status.wakes += len(woken)
        self.status.last_woken = woken[:20]
        return len(woken)

    def _wake(self, thread_id: str, comment_ids: list[str], now: float) -> bool:
        runner, db = self.runner, self.runner.db
        hb = heartbeats.get_thread_heartbeat(db, thread_id)
        if hb is None or not hb.config.enabled or hb.next_due is None:
            return False
        window = hb.config.active_window(runner.options.default_timezone)
        if window is not None and not window.contains(now):
            logger.info("%s reply for thread %s waits for its active hours", PREFIX, thread_id)
            return False
        past = agent_history.agent_history(db, since=now - DAY)
        limits = runner.options.limits
        if past.comments_last_24h >= limits.comments_per_day:
            logger.info("%s reply for thread %s: no comments left today", PREFIX, thread_id)
            return False
        at = now
        if past.last_comment_at is not None:
            at = max(at, past.last_comment_at + limits.comment_cooldown)
        wakes.request_wake(db, thread_id, comment_ids, now=now, due_at=at)
        metrics.observe_reply_wake()
        logger.info(
            "%s reply wake for thread %s (%d new comment(s)): due at %s",
            PREFIX,
            thread_id,
            len(comment_ids),
            iso(at),
        )
        runner.on_change()
        return True
