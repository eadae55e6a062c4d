"""What the agent has done lately, across all threads, and what is waiting for its answer.

The Ledger agent is one for all threads, so validation (no double vote, no repeated text, the
cooldowns ahead of a 429) reads every thread's outbox; and the comments on its posts that
``/home`` showed once are kept here until a heartbeat has decided on them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from crt_loops.core.enums import ActionState
from crt_loops.db.conn import SQLITE, Connection
from crt_loops.db.errors import translated
from crt_loops.db.heartbeats import ActionRecord, action_from_row
from crt_loops.db.leases import kv_read, kv_write
from crt_loops.db.session import SessionDB, dumps

HISTORY_HORIZON = 30 * 86_400.0
SENT, PENDING, DRY_RUN = ActionState.SENT, ActionState.PENDING, ActionState.DRY_RUN
PROPOSED = ActionState.PROPOSED


@dataclass(frozen=True)
class AgentHistory:
    """What the agent did lately: ids it voted on, comments it answered (sent or about to be),
    its own posts, the hashes of what it said in the last 24 h, when it last posted and
    commented, and how many comments it sent in the last 24 h."""

    voted_post_ids: frozenset[str]
    answered_comment_ids: frozenset[str]
    own_post_ids: frozenset[str]
    recent_hashes: frozenset[str]
    #: social_actions.key of each sent follow and subscription.
    social_done: frozenset[str]
    #: Posts the agent already commented on at the top level (one comment per thread).
    commented_post_ids: frozenset[str]
    last_post_at: float | None
    last_comment_at: float | None
    comments_last_24h: int


@dataclass(frozen=True)
class About:
    """The ids a history read is about: the posts and comments a run's prompt shows (and
    those its decision names). Read about them, the id sets answer for these ids only, and
    the read costs what the prompt shows, not what the agent has done: with 20,000 past
    actions the whole sets (5,000 voted posts) took ~3.4 ms to read and decode a run, and
    more again to merge and search (bench/heartbeat.py)."""

    posts: frozenset[str]
    comments: frozenset[str]


_PARENT = "json_extract(payload_json, '$.parent_id')"
_POST = "json_extract(payload_json, '$.post_id')"
#: What ix_hb_actions_owner covers (migration 1 and pg_migrations): spelled in the query as
#: well so that both databases see the partial index applies.
_OWNER_STATES = ", ".join(
    f"'{state}'" for state in (ActionState.PROPOSED, ActionState.REJECTED, ActionState.EXPIRED)
)


def _text(expr: str) -> str:
    # Text in SQL already: the set then needs no str() of each id in Python.
    return f"CAST({expr} AS TEXT)"


_COMMENT_TARGETS = (
    f"SELECT json_group_array({_text(_PARENT)}), json_group_array(CASE WHEN {_PARENT} IS NULL "
    f"THEN {_text(_POST)} END) "
)
_NOTHING = frozenset({None, ""})
_NONE: frozenset[str] = frozenset()
_SENT_OF_TYPE = f"state = '{SENT}' AND type = ? AND updated_at >= ?"
_COMMENTS = "FROM heartbeat_actions WHERE type = 'comment' AND updated_at >= ? AND "
#: The ledger_ids of the sent actions of a type: a sent vote's is the post it voted on
#: (outbox.call_ledger), a follow's or subscription's its social_actions.key.
_SENT_LEDGER_IDS = (
    f"SELECT json_group_array({_text('ledger_id')}) FROM heartbeat_actions WHERE {_SENT_OF_TYPE}"
)
#: Votes, own posts, answered comments and commented posts.
IdSets = tuple[frozenset[str], frozenset[str], frozenset[str], frozenset[str]]


def agent_history(
    db: SessionDB, *, since: float, changed_after: float | None = None, about: About | None = None
) -> AgentHistory:
    """What the agent did lately, across all threads (the Ledger agent is one for all of them).

    Votes, own posts and answered comments look back ``HISTORY_HORIZON`` (a bounded, indexed
    read however long the service has run: a repeated vote on an older post is a no-op on the
    Ledger anyway); duplicate text and the daily comment count look back to ``since`` (24 h).

    Each piece is one query over a partial index (the covering ``ix_hb_actions_sent`` of
    migration 3 for what was sent) that SQLite folds into a single JSON array: decoding every
    payload in Python cost 28-35 ms per heartbeat with 20,000 past actions, this ~1.5 ms
    (bench/heartbeat.py), most of it reading the payloads of the sent comments.

    ``about``: only these posts and comments count in the id sets (votes, own posts, answered
    and commented); the follows, the hashes, the times and the count are read whole.
    """
    with translated():
        return _agent_history(db.read(), since=since, changed_after=changed_after, about=about)


def _in(expr: str, ids: frozenset[str]) -> tuple[str, tuple[str, ...]]:
    """``expr IN (...)`` for ``ids``, with its values (bound: the ids come from the Ledger)."""
    values = tuple(sorted(ids))
    return f"{expr} IN ({', '.join('?' * len(values))})", values


def _agent_history(
    conn: Connection, *, since: float, changed_after: float | None, about: About | None
) -> AgentHistory:
    horizon = since - HISTORY_HORIZON
    if changed_after is not None:
        # Only what changed since an earlier read (see merge_history): a short indexed range.
        horizon, since = max(horizon, changed_after), max(since, changed_after)
    sent = f"FROM heartbeat_actions WHERE {_SENT_OF_TYPE}"
    if about is None:
        voted, own_posts, answered, commented = _whole_id_sets(conn, horizon)
    else:
        voted, own_posts, answered, commented = _id_sets_about(conn, horizon, about)
    social = _strings(conn, _SENT_LEDGER_IDS, ("follow", horizon)) | _strings(
        conn, _SENT_LEDGER_IDS, ("subscribe", horizon)
    )
    hashes = _strings(
        conn,
        f"SELECT json_group_array({_text('content_hash')}) FROM heartbeat_actions "
        f"WHERE updated_at >= ? AND state IN ('{SENT}', '{PENDING}', '{DRY_RUN}', '{PROPOSED}') "
        "AND content_hash IS NOT NULL",
        (since,),
    )
    last_post_at = conn.execute(f"SELECT MAX(updated_at) {sent}", ("post", horizon)).fetchone()[0]
    last_comment_at = conn.execute(
        f"SELECT MAX(updated_at) {sent}", ("comment", horizon)
    ).fetchone()[0]
    comments_today = int(conn.execute(f"SELECT COUNT(*) {sent}", ("comment", since)).fetchone()[0])
    return AgentHistory(
        voted_post_ids=voted,
        answered_comment_ids=answered,
        own_post_ids=own_posts,
        recent_hashes=hashes,
        social_done=social,
        commented_post_ids=commented,
        last_post_at=last_post_at,
        last_comment_at=last_comment_at,
        comments_last_24h=comments_today,
    )


def _strings(conn: Connection, sql: str, args: tuple[Any, ...]) -> frozenset[str]:
    return _id_set(conn.execute(sql, args).fetchone()[0])


def _whole_id_sets(conn: Connection, horizon: float) -> IdSets:
    """Votes, own posts, answered comments and commented posts since ``horizon``, whole.

    States and comment types are spelled into the SQL, not bound: only then can SQLite use
    the partial indexes (ix_hb_actions_sent: WHERE state = 'sent'; ix_hb_actions_pending;
    ix_hb_actions_owner, whose WHERE is repeated below for the same reason). A state IN
    (...) used neither and read every action of the horizon through ix_hb_actions_updated:
    with 20,000 past actions that was 0.6 ms for the few pending or proposed comments.
    """
    # Votes and posts come from the index alone, without reading a payload.
    voted = _strings(conn, _SENT_LEDGER_IDS, ("vote", horizon))
    own_posts = _strings(conn, _SENT_LEDGER_IDS, ("post", horizon))
    # Each comment's payload is read once for both of what it tells: the comment it answered
    # (answered), or, at the top level, the post it commented on (commented: no heartbeat
    # comments twice in one thread).
    answered: frozenset[str] = _NONE
    commented: frozenset[str] = _NONE
    for state in (SENT, PENDING):
        row = conn.execute(f"{_COMMENT_TARGETS}{_COMMENTS}state = '{state}'", (horizon,))
        parents, posts = row.fetchone()
        answered, commented = answered | _id_set(parents), commented | _id_set(posts)
    proposed = _strings(
        conn,
        f"SELECT json_group_array({_text(_PARENT)}) {_COMMENTS}state = '{PROPOSED}' "
        f"AND state IN ({_OWNER_STATES})",
        (horizon,),
    )
    return voted, own_posts, answered | proposed, commented


#: SQLite's planner, without statistics, prefers ix_hb_actions_sent's time range to an
#: IN list over a second column, and the range is every action of the horizon (with 20,000
#: past actions, 1.2 ms a heartbeat for the votes alone against 0.02 ms). So SQLite is told
#: which index answers a read about ids; PostgreSQL keeps statistics and chooses by itself.
_INDEX_FOR_IDS = {
    "sent": "ix_hb_actions_sent_id",
    "answered": "ix_hb_actions_comment_parent",
    "commented": "ix_hb_actions_comment_post",
}


def _from(conn: Connection, read: str) -> str:
    if conn.dialect == SQLITE:
        return f"FROM heartbeat_actions INDEXED BY {_INDEX_FOR_IDS[read]} WHERE "
    return "FROM heartbeat_actions WHERE "


def _id_sets_about(conn: Connection, horizon: float, about: About) -> IdSets:
    """:func:`_whole_id_sets` cut to the ids of ``about``: each read is a lookup per id in an
    index of migration 7, whatever the agent did; a read about no id is skipped."""
    voted = own_posts = answered = commented = _NONE
    if about.posts:
        posts, post_ids = _in("ledger_id", about.posts)
        sql = (
            f"SELECT json_group_array({_text('ledger_id')}) {_from(conn, 'sent')}"
            f"{_SENT_OF_TYPE} AND {posts}"
        )
        voted = _strings(conn, sql, ("vote", horizon, *post_ids))
        own_posts = _strings(conn, sql, ("post", horizon, *post_ids))
        # Top-level comments on these posts, sent or about to be.
        commented = _comments_about(
            conn, "commented", _POST, about.posts, horizon, top_level=True, states=(SENT, PENDING)
        )
    if about.comments:
        # Answers to these comments: sent, about to be, or waiting for the owner.
        answered = _comments_about(
            conn,
            "answered",
            _PARENT,
            about.comments,
            horizon,
            top_level=False,
            states=(SENT, PENDING, PROPOSED),
        )
    return voted, own_posts, answered, commented


def _comments_about(
    conn: Connection,
    read: str,
    expr: str,
    ids: frozenset[str],
    horizon: float,
    *,
    top_level: bool,
    states: tuple[ActionState, ...],
) -> frozenset[str]:
    """The values of ``expr`` among ``ids`` of the comments in ``states`` since ``horizon``
    (only those at the top level of their post, with ``top_level``)."""
    match, values = _in(expr, ids)
    top = f"{_PARENT} IS NULL AND " if top_level else ""
    listed = ", ".join(f"'{state}'" for state in states)
    return _strings(
        conn,
        f"SELECT json_group_array({_text(expr)}) {_from(conn, read)}type = 'comment' AND "
        f"{top}{match} AND updated_at >= ? AND state IN ({listed})",
        (*values, horizon),
    )


def _id_set(array: str | None) -> frozenset[str]:
    """The ids of a ``json_group_array`` of text (or NULL) values, without the empty ones.

    Built in C (one frozenset of the decoded list): a generator over 5,000 voted ids with 20,000
    past actions cost 0.37 ms a read, this 0.17 ms.
    """
    values = frozenset(json.loads(array or "[]"))
    return values - _NOTHING if not _NOTHING.isdisjoint(values) else values


def merge_history(first: AgentHistory, later: AgentHistory) -> AgentHistory:
    """An earlier agent_history read updated with a ``changed_after`` read of what came since.

    The comment count may count a row twice at the boundary: conservative, it blocks early.
    """
    return AgentHistory(
        voted_post_ids=first.voted_post_ids | later.voted_post_ids,
        answered_comment_ids=first.answered_comment_ids | later.answered_comment_ids,
        own_post_ids=first.own_post_ids | later.own_post_ids,
        recent_hashes=first.recent_hashes | later.recent_hashes,
        social_done=first.social_done | later.social_done,
        commented_post_ids=first.commented_post_ids | later.commented_post_ids,
        last_post_at=_latest(first.last_post_at, later.last_post_at),
        last_comment_at=_latest(first.last_comment_at, later.last_comment_at),
        comments_last_24h=first.comments_last_24h + later.comments_last_24h,
    )


def _latest(a: float | None, b: float | None) -> float | None:
    values = [v for v in (a, b) if v is not None]
    return max(values) if values else None


def recent_thread_actions(db: SessionDB, thread_id: str, limit: int = 10) -> list[ActionRecord]:
    # In ix_hb_actions_thread's order, so LIMIT stops early: ORDER BY id alone sorted every
    # action of the thread (1.5 ms per heartbeat at 2,000 actions, 0.015 ms now).
    rows = db.query(
        "SELECT * FROM heartbeat_actions WHERE thread_id = ? "
        f"AND state IN ('{SENT}', '{DRY_RUN}', '{PROPOSED}') "
        "ORDER BY created_at DESC, id DESC LIMIT ?",
        (thread_id, limit),
    )
    return [action_from_row(r) for r in rows]


# -- activity on the agent's posts ------------------------------------------------------------

PENDING_ACTIVITY_KEY = "heartbeat:pending_activity"
MAX_PENDING_ACTIVITY = 50


def merge_pending_activity(db: SessionDB, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Add newly seen activity to the unanswered list and return it (oldest first).

    The Ledger's ``/home`` shows each new comment once; keeping them here means a heartbeat that
    fails after reading them does not lose them: they stay until a run has decided on them.
    """
    with db.write() as tx:
        stored = kv_read(tx, PENDING_ACTIVITY_KEY)
        pending: list[dict[str, Any]] = json.loads(stored) if stored is not None else []
        known = {p.get("comment_id") for p in pending}
        pending += [i for i in items if i.get("comment_id") not in known]
        pending = pending[-MAX_PENDING_ACTIVITY:]
        kv_write(tx, PENDING_ACTIVITY_KEY, dumps(pending), db.clock())
    return pending


def settle_activity(db: SessionDB, comment_ids: set[str]) -> None:
    """Drop activity a finished run has seen and decided on."""
    if not comment_ids:
        return
    with db.write() as tx:
        stored = kv_read(tx, PENDING_ACTIVITY_KEY)
        if stored is None:
            return
        pending = [p for p in json.loads(stored) if p.get("comment_id") not in comment_ids]
        kv_write(tx, PENDING_ACTIVITY_KEY, dumps(pending), db.clock())
