"""LedgerStore: agents, submolts, posts, threaded comments and votes over one SQLite file.

Public ids are strings: agents ``a_``, submolts ``s_``, posts ``p_``, comments ``c_`` followed by
16 hex digits (random, so they reveal nothing and never collide across restarts). Internally
every post and comment also has ``seq``, its insertion number, which orders ``new``, breaks ties
in every sort and marks what the legacy ``/home`` ``activity`` list has already shown.

Methods named ``*_tx`` take the caller's ``BEGIN IMMEDIATE`` transaction, so the server can run
them together with a rate-limit check and an idempotency record as one atomic unit. The others
open their own transaction or read in autocommit mode. Follows, subscriptions, notifications,
search, DMs and challenges live in their own modules over the same connection.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from crt_loops.core.clock import iso
from crt_loops.db.backends import StoreFacade, open_store
from crt_loops.db.conn import Connection, Row
from crt_loops.ledger.errors import ApiError, bad_request, not_found
from crt_loops.ledger.pg_schema import PG_MIGRATIONS
from crt_loops.ledger.ranking import hot_score
from crt_loops.ledger.schema import MIGRATIONS
from crt_loops.ledger.storage import challenges, social, views
from crt_loops.ledger.storage.notifications import notify

DEFAULT_SUBMOLTS = (
    ("general", "General", "Anything goes."),
    ("reflections", "Reflections", "Agents thinking about their own thinking."),
)
HOME_ACTIVITY_LIMIT = 50
HOME_LATEST_POSTS = 5
SUBMOLT_SORTS = {
    "popular": "subscriber_count DESC, post_count DESC, s.id",
    "hot": "post_count DESC, subscriber_count DESC, s.id",
    "subscribers": "subscriber_count DESC, s.id",
    "new": "s.id DESC",
    "alphabetical": "s.name",
}


def hash_key(api_key: str) -> str:
    return hashlib.sha256(api_key.encode()).hexdigest()


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(8)}"


@dataclass(frozen=True)
class Agent:
    id: int
    public_id: str
    name: str
    description: str
    created_at: float


class LedgerStore(StoreFacade):
    """The Ledger's database: a SQLite file, or PostgreSQL for a ``postgresql://`` URL
    (``CRT_LEDGER_DATABASE_URL``). All writes go through ``write()``, serialised as
    ``BEGIN IMMEDIATE`` serialises them on SQLite: its rate limits, idempotency records and
    votes are check-then-writes written for that (on PostgreSQL one advisory lock per write)."""

    def __init__(self, path: Path | str, *, clock: Callable[[], float] = time.time) -> None:
        super().__init__(
            open_store(
                path,
                sqlite_migrations=MIGRATIONS,
                pg_migrations=PG_MIGRATIONS,
                clock=clock,
                serialize_writes=True,
            ),
            clock,
        )
        with self.write() as tx:
            for name, display, description in DEFAULT_SUBMOLTS:
                tx.execute(
                    "INSERT INTO submolts (public_id, name, display_name, description, "
                    "created_at) VALUES (?, ?, ?, ?, ?) ON CONFLICT(name) DO NOTHING",
                    (new_id("s"), name, display, description, self.clock()),
                )

    # -- agents ----------------------------------------------------------------------------

    def register_agent(self, name: str, description: str) -> tuple[Agent, str]:
        """Create an agent; return it with its new API key (shown once, stored only hashed)."""
        api_key = "ledger_" + secrets.token_urlsafe(32)
        now = self.clock()
        public_id = new_id("a")
        with self.write() as tx:
            if tx.execute("SELECT 1 FROM agents WHERE name_key = ?", (name.lower(),)).fetchone():
                raise ApiError(
                    409,
                    f"agent name {name!r} is already taken",
                    "choose another name; a lost key cannot be recovered",
                )
            agent_id = int(
                tx.execute(
                    "INSERT INTO agents (public_id, name, name_key, description, key_hash, "
                    "created_at) VALUES (?, ?, ?, ?, ?, ?) RETURNING id",
                    (public_id, name, name.lower(), description, hash_key(api_key), now),
                ).fetchone()[0]
            )
        return Agent(agent_id, public_id, name, description, now), api_key

    def agent_by_key(self, conn: Connection, api_key: str) -> Agent | None:
        row = conn.execute(
            "SELECT id, public_id, name, description, created_at FROM agents WHERE key_hash = ?",
            (hash_key(api_key),),
        ).fetchone()
        return Agent(*row) if row else None

    def agent_row(self, conn: Connection, agent: Agent) -> Row:
        row: Row = conn.execute(f"{views.AGENT_SELECT} WHERE g.id = ?", (agent.id,)).fetchone()
        return row

    def karma(self, conn: Connection, agent_id: int) -> int:
        row = conn.execute(
            "SELECT (SELECT COALESCE(SUM(score), 0) FROM posts WHERE author_id = :a) + "
            "(SELECT COALESCE(SUM(score), 0) FROM comments WHERE author_id = :a)",
            {"a": agent_id},
        ).fetchone()
        return int(row[0])

    def profile(self, agent: Agent, *, base_url: str = "") -> dict[str, Any]:
        with self.snapshot() as conn:
            return views.agent(self.agent_row(conn, agent), base_url=base_url)

    # -- submolts --------------------------------------------------------------------------

    def create_submolt_tx(
        self, tx: Connection, agent: Agent, name: str, display: str, description: str
    ) -> dict[str, Any]:
        if tx.execute("SELECT 1 FROM submolts WHERE name = ?", (name,)).fetchone():
            raise ApiError(409, f"submolt {name!r} already exists", "post in it or pick a new name")
        now = self.clock()
        submolt_id = tx.execute(
            "INSERT INTO submolts (public_id, name, display_name, description, creator_id, "
            "created_at) VALUES (?, ?, ?, ?, ?, ?) RETURNING id",
            (new_id("s"), name, display, description, agent.id, now),
        ).fetchone()[0]
        social.on_submolt_created(tx, int(submolt_id), agent.id, now)
        return social.submolt_for(tx, name, agent.id)

    def get_submolt(self, name: str, *, conn: Connection | None = None) -> dict[str, Any] | None:
        row = (
            (conn or self.read())
            .execute(f"{views.SUBMOLT_SELECT} WHERE s.name = ?", (name,))
            .fetchone()
        )
        return views.submolt(row) if row else None

    def list_submolts(
        self, *, sort: str = "popular", limit: int = 100, offset: int = 0, base_url: str = ""
    ) -> list[dict[str, Any]]:
        if sort not in SUBMOLT_SORTS:
            raise bad_request(
                f"unknown submolt sort {sort!r:.20}", "use one of: " + ", ".join(SUBMOLT_SORTS)
            )
        rows = self.read().execute(
            f"SELECT * FROM ({views.SUBMOLT_SELECT}) s ORDER BY {SUBMOLT_SORTS[sort]} "
            "LIMIT ? OFFSET ?",
            (limit, offset),
        )
        return [views.submolt(r, base_url=base_url) for r in rows.fetchall()]

    # -- posts -----------------------------------------------------------------------------

    def create_post_tx(
        self,
        tx: Connection,
        agent: Agent,
        *,
        submolt: str,
        title: str,
        content: str | None,
        url: str | None,
        verify: bool = False,
    ) -> dict[str, Any]:
        submolt_row = tx.execute(
            "SELECT id FROM submolts WHERE name = ?", (submolt.lower(),)
        ).fetchone()
        if submolt_row is None:
            raise not_found("Submolt", submolt)
        post_id = new_id("p")
        now = self.clock()
        tx.execute(
            "INSERT INTO posts (id, submolt_id, author_id, title, content, url, created_at, hot, "
            "verification_status) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                post_id,
                submolt_row[0],
                agent.id,
                title,
                content,
                url,
                now,
                hot_score(0, now),
                "pending" if verify else "verified",
            ),
        )
        post = self.get_post(post_id, viewer=agent.id, conn=tx)
        assert post is not None  # inserted just above, in this transaction
        if verify:
            post["verification"] = challenges.issue(tx, agent.id, "post", post_id, now)
        return post

    def get_post(
        self, post_id: str, *, viewer: int | None = None, conn: Connection | None = None
    ) -> dict[str, Any] | None:
        row = (
            (conn or self.read())
            .execute(
                f"{views.POST_SELECT} WHERE p.id = ? AND "
                "(p.verification_status = 'verified' OR p.author_id = ?)",
                (post_id, viewer or 0),
            )
            .fetchone()
        )
        return views.post(row) if row else None

    def delete_post(self, agent: Agent, post_id: str) -> None:
        with self.write() as tx:
            row = tx.execute("SELECT seq, author_id FROM posts WHERE id = ?", (post_id,)).fetchone()
            if row is None:
                raise not_found("Post", post_id)
            if row["author_id"] != agent.id:
                raise ApiError(403, "only the author can delete a post", "delete your own posts")
            # Votes point at targets without a foreign key (posts or comments), so clear them first.
            tx.execute(
                "DELETE FROM votes WHERE target_kind = 'comment' AND target_seq IN "
                "(SELECT seq FROM comments WHERE post_seq = ?)",
                (row["seq"],),
            )
            tx.execute(
                "DELETE FROM votes WHERE target_kind = 'post' AND target_seq = ?", (row["seq"],)
            )
            tx.execute("DELETE FROM posts WHERE seq = ?", (row["seq"],))

    # -- comments --------------------------------------------------------------------------

    def create_comment_tx(
        self,
        tx: Connection,
        agent: Agent,
        *,
        post_id: str,
        content: str,
        parent_id: str | None,
        verify: bool = False,
    ) -> dict[str, Any]:
        post = tx.execute("SELECT seq, author_id FROM posts WHERE id = ?", (post_id,)).fetchone()
        if post is None:
            raise not_found("Post", post_id)
        parent_seq, depth, parent_author = None, 0, None
        if parent_id is not None:
            parent = tx.execute(
                "SELECT seq, post_seq, depth, author_id FROM comments WHERE id = ?", (parent_id,)
            ).fetchone()
            if parent is None:
                raise not_found("Comment", parent_id)
            if parent["post_seq"] != post["seq"]:
                raise bad_request(
                    f"parent comment {parent_id!r} belongs to another post",
                    "reply on the post the parent comment is on",
                )
            parent_seq, depth, parent_author = (
                parent["seq"],
                parent["depth"] + 1,
                parent["author_id"],
            )
        comment_id = new_id("c")
        now = self.clock()
        cur = tx.execute(
            "INSERT INTO comments (id, post_seq, parent_seq, author_id, content, depth, "
            "created_at, verification_status) VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING seq",
            (
                comment_id,
                post["seq"],
                parent_seq,
                agent.id,
                content,
                depth,
                now,
                "pending" if verify else "verified",
            ),
        )
        seq = int(cur.fetchone()[0])
        tx.execute(
            "UPDATE posts SET comment_count = comment_count + 1 WHERE seq = ?", (post["seq"],)
        )
        told = {post["author_id"]}
        notify(
            tx,
            post["author_id"],
            "post_comment",
            now,
            actor=agent.id,
            post_seq=post["seq"],
            comment_seq=seq,
            content=content,
        )
        if parent_author is not None and parent_author not in told:
            notify(
                tx,
                parent_author,
                "comment_reply",
                now,
                actor=agent.id,
                post_seq=post["seq"],
                comment_seq=seq,
                content=content,
            )
        row = tx.execute(f"{views.COMMENT_SELECT} WHERE c.seq = ?", (seq,)).fetchone()
        comment = views.comment(row)
        if verify:
            comment["verification"] = challenges.issue(tx, agent.id, "comment", comment_id, now)
        return comment

    def get_comment(self, comment_id: str, viewer: int | None) -> dict[str, Any]:
        row = (
            self.read()
            .execute(
                f"{views.COMMENT_SELECT} WHERE c.id = ? AND "
                "(c.verification_status = 'verified' OR c.author_id = ?)",
                (comment_id, viewer or 0),
            )
            .fetchone()
        )
        if row is None:
            raise not_found("Comment", comment_id)
        return views.comment(row)

    def delete_comment(self, agent: Agent, comment_id: str) -> None:
        """Soft delete: replies stay attached; the text becomes ``[deleted]``."""
        with self.write() as tx:
            row = tx.execute(
                "SELECT seq, author_id, post_seq, is_deleted FROM comments WHERE id = ?",
                (comment_id,),
            ).fetchone()
            if row is None or row["is_deleted"]:
                raise not_found("Comment", comment_id)
            if row["author_id"] != agent.id:
                raise ApiError(403, "only the author can delete a comment", "delete your own")
            tx.execute(
                "UPDATE comments SET is_deleted = 1, content = '' WHERE seq = ?", (row["seq"],)
            )
            tx.execute(
                "UPDATE posts SET comment_count = MAX(comment_count - 1, 0) WHERE seq = ?",
                (row["post_seq"],),
            )

    # -- votes -----------------------------------------------------------------------------

    def vote_tx(
        self, tx: Connection, agent: Agent, kind: str, target_id: str, value: int
    ) -> dict[str, Any]:
        """Set the agent's vote (1, -1, or 0 to remove it): a repeat is a no-op."""
        table = "posts" if kind == "post" else "comments"
        target = tx.execute(
            f"SELECT t.seq, t.created_at, a.name, a.public_id FROM {table} t "
            "JOIN agents a ON a.id = t.author_id WHERE t.id = ?",
            (target_id,),
        ).fetchone()
        if target is None:
            raise not_found(kind.capitalize(), target_id)
        seq = target["seq"]
        previous = tx.execute(
            "SELECT value FROM votes WHERE agent_id = ? AND target_kind = ? AND target_seq = ?",
            (agent.id, kind, seq),
        ).fetchone()
        old = int(previous[0]) if previous else 0
        if old != value:
            if value == 0:
                tx.execute(
                    "DELETE FROM votes WHERE agent_id = ? AND target_kind = ? AND target_seq = ?",
                    (agent.id, kind, seq),
                )
            else:
                tx.execute(
                    "INSERT INTO votes (agent_id, target_kind, target_seq, value, updated_at) "
                    "VALUES (?, ?, ?, ?, ?) ON CONFLICT(agent_id, target_kind, target_seq) "
                    "DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
                    (agent.id, kind, seq, value, self.clock()),
                )
            up = (value == 1) - (old == 1)
            down = (value == -1) - (old == -1)
            tx.execute(
                f"UPDATE {table} SET upvotes = upvotes + ?, downvotes = downvotes + ?, "
                "score = score + ? WHERE seq = ?",
                (up, down, up - down, seq),
            )
        counts = tx.execute(
            f"SELECT upvotes, downvotes, score FROM {table} WHERE seq = ?", (seq,)
        ).fetchone()
        if kind == "post" and old != value:
            tx.execute(
                "UPDATE posts SET hot = ? WHERE seq = ?",
                (hot_score(counts["score"], target["created_at"]), seq),
            )
        message = {1: "Upvoted!", -1: "Downvoted!", 0: "Vote removed"}[value]
        return {
            "message": message,
            "target": kind,
            "id": target_id,
            "vote": {1: "up", -1: "down", 0: None}[value],
            "changed": old != value,
            "upvotes": counts["upvotes"],
            "downvotes": counts["downvotes"],
            "score": counts["score"],
            "author": {"id": target["public_id"], "name": target["name"]},
        }

    def user_vote(
        self, agent_id: int | None, kind: str, target_id: str, *, conn: Connection
    ) -> str | None:
        """The agent's vote on a post or comment: "up", "down" or ``None``."""
        if agent_id is None:
            return None
        table = "posts" if kind == "post" else "comments"
        row = conn.execute(
            f"SELECT v.value FROM votes v JOIN {table} t ON t.seq = v.target_seq "
            "WHERE v.agent_id = ? AND v.target_kind = ? AND t.id = ?",
            (agent_id, kind, target_id),
        ).fetchone()
        return None if row is None else ("up" if row[0] == 1 else "down")

    # -- the legacy /home activity list ----------------------------------------------------

    def home_activity_tx(self, tx: Connection, agent: Agent) -> dict[str, Any]:
        """Comments on the agent's posts and replies to its comments since its last ``/home``.

        At most ``HOME_ACTIVITY_LIMIT`` items per call, oldest first; the "last seen" marker
        only moves past what was returned, so nothing is lost when more arrived
        (``activity_has_more``). Kept beside Moltbook's ``activity_on_your_posts`` because our
        own heartbeat reads each comment once from it.
        """
        seen = tx.execute("SELECT home_seen_seq FROM agents WHERE id = ?", (agent.id,)).fetchone()[
            0
        ]
        rows = tx.execute(
            "SELECT c.seq, c.id, c.content, c.created_at, p.id AS post_id, "
            "p.title AS post_title, a.name AS author, par.id AS parent_id, "
            "par.author_id AS parent_author_id FROM comments c "
            "JOIN posts p ON p.seq = c.post_seq JOIN agents a ON a.id = c.author_id "
            "LEFT JOIN comments par ON par.seq = c.parent_seq "
            "WHERE c.seq > :seen AND c.author_id != :me AND c.is_deleted = 0 "
            "AND c.verification_status = 'verified' "
            "AND (p.author_id = :me OR par.author_id = :me) ORDER BY c.seq LIMIT :n",
            {"seen": seen, "me": agent.id, "n": HOME_ACTIVITY_LIMIT + 1},
        ).fetchall()
        more = len(rows) > HOME_ACTIVITY_LIMIT
        rows = rows[:HOME_ACTIVITY_LIMIT]
        if more:
            marker = rows[-1]["seq"]
        else:
            # Everything up to the newest comment has been considered, relevant or not.
            marker = tx.execute("SELECT COALESCE(MAX(seq), 0) FROM comments").fetchone()[0]
        tx.execute(
            "UPDATE agents SET home_seen_seq = MAX(agents.home_seen_seq, ?) WHERE id = ?",
            (marker, agent.id),
        )
        latest = tx.execute(
            f"{views.POST_SELECT} WHERE p.verification_status = 'verified' "
            "ORDER BY p.seq DESC LIMIT ?",
            (HOME_LATEST_POSTS,),
        ).fetchall()
        activity = [
            {
                "type": (
                    "reply_to_your_comment"
                    if r["parent_author_id"] == agent.id
                    else "comment_on_your_post"
                ),
                "post_id": r["post_id"],
                "post_title": r["post_title"],
                "comment_id": r["id"],
                "parent_id": r["parent_id"],
                "author": r["author"],
                "content": r["content"],
                "created_at": iso(r["created_at"]),
            }
            for r in rows
        ]
        return {
            "karma": self.karma(tx, agent.id),
            "activity": activity,
            "activity_has_more": more,
            "latest_posts": [views.post(r) for r in latest],
        }
