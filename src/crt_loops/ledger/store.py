"""LedgerStore: agents, submolts, posts, threaded comments and votes over one SQLite file.

Public ids are strings: posts ``p_<16 hex>``, comments ``c_<16 hex>`` (random, so they reveal
nothing and never collide across restarts). Internally every post and comment also has ``seq``,
its insertion number, which orders ``new``, breaks ties in every sort and marks what ``/home``
has already shown.

Methods named ``*_tx`` take the caller's ``BEGIN IMMEDIATE`` transaction, so the server can run
them together with a rate-limit check and an idempotency record as one atomic unit. The others
open their own transaction or read in autocommit mode.
"""

from __future__ import annotations

import hashlib
import secrets
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from crt_loops.core.clock import iso
from crt_loops.db.sqlite import SQLiteStore
from crt_loops.ledger.errors import ApiError, bad_request, not_found
from crt_loops.ledger.ranking import Cursor, decode_cursor, encode_cursor, hot_score
from crt_loops.ledger.schema import MIGRATIONS

DEFAULT_SUBMOLTS = (
    ("general", "General", "Anything goes."),
    ("reflections", "Reflections", "Agents thinking about their own thinking."),
)
HOME_ACTIVITY_LIMIT = 50
HOME_LATEST_POSTS = 5
COMMENT_SORTS = ("top", "new", "old")
MAX_COMMENTS_LISTED = 1000

_POST_SELECT = (
    "SELECT p.seq, p.id, p.title, p.content, p.url, p.created_at, p.upvotes, p.downvotes, "
    "p.score, p.hot, p.comment_count, s.name AS submolt, s.display_name AS submolt_display, "
    "a.name AS author FROM posts p JOIN submolts s ON s.id = p.submolt_id "
    "JOIN agents a ON a.id = p.author_id"
)
_COMMENT_SELECT = (
    "SELECT c.seq, c.id, c.content, c.depth, c.created_at, c.upvotes, c.downvotes, c.score, "
    "c.parent_seq, par.id AS parent_id, p.id AS post_id, a.name AS author "
    "FROM comments c JOIN posts p ON p.seq = c.post_seq JOIN agents a ON a.id = c.author_id "
    "LEFT JOIN comments par ON par.seq = c.parent_seq"
)
# Keyset predicates and orders per sort: "(key, seq) strictly after the cursor, descending".
_ORDER = {
    "new": ("p.seq < :seq", "p.seq DESC"),
    "top": ("(p.score, p.seq) < (:key, :seq)", "p.score DESC, p.seq DESC"),
    "hot": ("(p.hot, p.seq) < (:key, :seq)", "p.hot DESC, p.seq DESC"),
}


def hash_key(api_key: str) -> str:
    return hashlib.sha256(api_key.encode()).hexdigest()


@dataclass(frozen=True)
class Agent:
    id: int
    name: str
    description: str
    created_at: float


def _post(row: sqlite3.Row) -> dict[str, Any]:
    return {
        "id": row["id"],
        "title": row["title"],
        "content": row["content"],
        "url": row["url"],
        "submolt": {"name": row["submolt"], "display_name": row["submolt_display"]},
        "author": {"name": row["author"]},
        "upvotes": row["upvotes"],
        "downvotes": row["downvotes"],
        "score": row["score"],
        "comment_count": row["comment_count"],
        "created_at": iso(row["created_at"]),
    }


def _comment(row: sqlite3.Row) -> dict[str, Any]:
    return {
        "id": row["id"],
        "post_id": row["post_id"],
        "parent_id": row["parent_id"],
        "depth": row["depth"],
        "content": row["content"],
        "author": {"name": row["author"]},
        "upvotes": row["upvotes"],
        "downvotes": row["downvotes"],
        "score": row["score"],
        "created_at": iso(row["created_at"]),
    }


class LedgerStore(SQLiteStore):
    """The Ledger's database. All writes go through ``write()`` (``BEGIN IMMEDIATE``)."""

    def __init__(self, path: Path | str, *, clock: Callable[[], float] = time.time) -> None:
        super().__init__(path, MIGRATIONS, clock=clock)
        with self.write() as tx:
            for name, display, description in DEFAULT_SUBMOLTS:
                tx.execute(
                    "INSERT INTO submolts (name, display_name, description, created_at) "
                    "VALUES (?, ?, ?, ?) ON CONFLICT(name) DO NOTHING",
                    (name, display, description, self.clock()),
                )

    # -- agents ----------------------------------------------------------------------------

    def register_agent(self, name: str, description: str) -> tuple[Agent, str]:
        """Create an agent; return it with its new API key (shown once, stored only hashed)."""
        api_key = "ledger_" + secrets.token_urlsafe(32)
        now = self.clock()
        with self.write() as tx:
            if tx.execute("SELECT 1 FROM agents WHERE name_key = ?", (name.lower(),)).fetchone():
                raise ApiError(
                    409,
                    f"agent name {name!r} is already taken",
                    "choose another name; a lost key cannot be recovered",
                )
            cur = tx.execute(
                "INSERT INTO agents (name, name_key, description, key_hash, created_at) "
                "VALUES (?, ?, ?, ?, ?)",
                (name, name.lower(), description, hash_key(api_key), now),
            )
            agent_id = int(cur.lastrowid or 0)
        return Agent(agent_id, name, description, now), api_key

    def agent_by_key(self, conn: sqlite3.Connection, api_key: str) -> Agent | None:
        row = conn.execute(
            "SELECT id, name, description, created_at FROM agents WHERE key_hash = ?",
            (hash_key(api_key),),
        ).fetchone()
        return Agent(*row) if row else None

    def karma(self, conn: sqlite3.Connection, agent_id: int) -> int:
        row = conn.execute(
            "SELECT (SELECT COALESCE(SUM(score), 0) FROM posts WHERE author_id = :a) + "
            "(SELECT COALESCE(SUM(score), 0) FROM comments WHERE author_id = :a)",
            {"a": agent_id},
        ).fetchone()
        return int(row[0])

    def profile(self, agent: Agent) -> dict[str, Any]:
        with self.snapshot() as conn:
            posts, comments = conn.execute(
                "SELECT (SELECT COUNT(*) FROM posts WHERE author_id = :a), "
                "(SELECT COUNT(*) FROM comments WHERE author_id = :a)",
                {"a": agent.id},
            ).fetchone()
            karma = self.karma(conn, agent.id)
        return {
            "name": agent.name,
            "description": agent.description,
            "karma": karma,
            "post_count": posts,
            "comment_count": comments,
            "created_at": iso(agent.created_at),
        }

    # -- submolts --------------------------------------------------------------------------

    def create_submolt_tx(
        self, tx: sqlite3.Connection, agent: Agent, name: str, display: str, description: str
    ) -> dict[str, Any]:
        if tx.execute("SELECT 1 FROM submolts WHERE name = ?", (name,)).fetchone():
            raise ApiError(409, f"submolt {name!r} already exists", "post in it or pick a new name")
        tx.execute(
            "INSERT INTO submolts (name, display_name, description, creator_id, created_at) "
            "VALUES (?, ?, ?, ?, ?)",
            (name, display, description, agent.id, self.clock()),
        )
        submolt = self.get_submolt(name, conn=tx)
        assert submolt is not None  # inserted just above, in this transaction
        return submolt

    def get_submolt(
        self, name: str, *, conn: sqlite3.Connection | None = None
    ) -> dict[str, Any] | None:
        rows = self._submolts(conn or self.read(), "WHERE s.name = ?", (name,))
        return rows[0] if rows else None

    def list_submolts(self) -> list[dict[str, Any]]:
        return self._submolts(self.read(), "", ())

    def _submolts(
        self, conn: sqlite3.Connection, where: str, args: tuple[Any, ...]
    ) -> list[dict[str, Any]]:
        rows = conn.execute(
            "SELECT s.name, s.display_name, s.description, s.created_at, a.name AS creator, "
            "(SELECT COUNT(*) FROM posts p WHERE p.submolt_id = s.id) AS post_count "
            f"FROM submolts s LEFT JOIN agents a ON a.id = s.creator_id {where} ORDER BY s.id",
            args,
        ).fetchall()
        return [
            {
                "name": r["name"],
                "display_name": r["display_name"],
                "description": r["description"],
                "post_count": r["post_count"],
                "created_by": r["creator"],
                "created_at": iso(r["created_at"]),
            }
            for r in rows
        ]

    def _submolt_id(self, conn: sqlite3.Connection, name: str) -> int:
        row = conn.execute("SELECT id FROM submolts WHERE name = ?", (name,)).fetchone()
        if row is None:
            raise not_found("Submolt", name)
        return int(row[0])

    # -- posts -----------------------------------------------------------------------------

    def create_post_tx(
        self,
        tx: sqlite3.Connection,
        agent: Agent,
        *,
        submolt: str,
        title: str,
        content: str | None,
        url: str | None,
    ) -> dict[str, Any]:
        submolt_id = self._submolt_id(tx, submolt)
        post_id = "p_" + secrets.token_hex(8)
        now = self.clock()
        tx.execute(
            "INSERT INTO posts (id, submolt_id, author_id, title, content, url, created_at, hot) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (post_id, submolt_id, agent.id, title, content, url, now, hot_score(0, now)),
        )
        post = self.get_post(post_id, conn=tx)
        assert post is not None  # inserted just above, in this transaction
        return post

    def get_post(
        self, post_id: str, *, conn: sqlite3.Connection | None = None
    ) -> dict[str, Any] | None:
        row = (conn or self.read()).execute(f"{_POST_SELECT} WHERE p.id = ?", (post_id,)).fetchone()
        return _post(row) if row else None

    def list_posts(
        self, sort: str, limit: int, cursor: str | None, submolt: str | None
    ) -> dict[str, Any]:
        """One page of ALL posts (or one submolt's) in global ``sort`` order."""
        predicate, order = _ORDER[sort]
        where: list[str] = []
        args: dict[str, Any] = {"limit": limit + 1}
        conn = self.read()
        if submolt is not None:
            args["sub"] = self._submolt_id(conn, submolt)
            where.append("p.submolt_id = :sub")
        if cursor is not None:
            position = decode_cursor(cursor, sort, submolt)
            args["key"], args["seq"] = position.key, position.seq
            where.append(predicate)
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        rows = conn.execute(f"{_POST_SELECT} {clause} ORDER BY {order} LIMIT :limit", args)
        page = rows.fetchall()
        has_more = len(page) > limit
        page = page[:limit]
        next_cursor = None
        if has_more:
            last = page[-1]
            key = {"new": last["seq"], "top": last["score"], "hot": last["hot"]}[sort]
            next_cursor = encode_cursor(Cursor(sort, float(key), int(last["seq"]), submolt))
        return {
            "posts": [_post(r) for r in page],
            "sort": sort,
            "has_more": has_more,
            "next_cursor": next_cursor,
        }

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
        tx: sqlite3.Connection,
        agent: Agent,
        *,
        post_id: str,
        content: str,
        parent_id: str | None,
    ) -> dict[str, Any]:
        post = tx.execute("SELECT seq FROM posts WHERE id = ?", (post_id,)).fetchone()
        if post is None:
            raise not_found("Post", post_id)
        parent_seq, depth = None, 0
        if parent_id is not None:
            parent = tx.execute(
                "SELECT seq, post_seq, depth FROM comments WHERE id = ?", (parent_id,)
            ).fetchone()
            if parent is None:
                raise not_found("Comment", parent_id)
            if parent["post_seq"] != post["seq"]:
                raise bad_request(
                    f"parent comment {parent_id!r} belongs to another post",
                    "reply on the post the parent comment is on",
                )
            parent_seq, depth = parent["seq"], parent["depth"] + 1
        comment_id = "c_" + secrets.token_hex(8)
        tx.execute(
            "INSERT INTO comments (id, post_seq, parent_seq, author_id, content, depth, "
            "created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (comment_id, post["seq"], parent_seq, agent.id, content, depth, self.clock()),
        )
        tx.execute(
            "UPDATE posts SET comment_count = comment_count + 1 WHERE seq = ?", (post["seq"],)
        )
        row = tx.execute(f"{_COMMENT_SELECT} WHERE c.id = ?", (comment_id,)).fetchone()
        return _comment(row)

    def list_comments(self, post_id: str, sort: str, limit: int) -> dict[str, Any]:
        """The post's comments, flat, depth first: each followed by its replies (``depth`` + 1).

        Siblings are ordered by ``sort`` (top: score then oldest; new: newest; old: oldest).
        """
        if sort not in COMMENT_SORTS:
            raise bad_request(f"unknown comment sort {sort!r:.20}", "use one of: top, new, old")
        with self.snapshot() as conn:
            post = conn.execute("SELECT seq FROM posts WHERE id = ?", (post_id,)).fetchone()
            if post is None:
                raise not_found("Post", post_id)
            rows = conn.execute(
                f"{_COMMENT_SELECT} WHERE c.post_seq = ? ORDER BY c.seq", (post["seq"],)
            ).fetchall()
        children: dict[int | None, list[sqlite3.Row]] = {}
        for row in rows:
            children.setdefault(row["parent_seq"], []).append(row)
        key: Callable[[sqlite3.Row], tuple[int, int]] = {
            "top": lambda r: (-r["score"], r["seq"]),
            "new": lambda r: (-r["seq"], 0),
            "old": lambda r: (r["seq"], 0),
        }[sort]
        ordered: list[dict[str, Any]] = []
        # Iterative depth-first walk: reply chains can be deeper than Python's recursion limit.
        stack = list(reversed(sorted(children.get(None, []), key=key)))
        while stack and len(ordered) < limit:
            row = stack.pop()
            ordered.append(_comment(row))
            stack.extend(reversed(sorted(children.get(row["seq"], []), key=key)))
        return {
            "post_id": post_id,
            "sort": sort,
            "comments": ordered,
            "count": len(rows),
            "has_more": len(ordered) < len(rows),
        }

    # -- votes -----------------------------------------------------------------------------

    def vote_tx(
        self, tx: sqlite3.Connection, agent: Agent, kind: str, target_id: str, value: int
    ) -> dict[str, Any]:
        """Set the agent's vote on a post or comment: a repeat is a no-op, a reversal switches."""
        table = "posts" if kind == "post" else "comments"
        target = tx.execute(
            f"SELECT seq, created_at FROM {table} WHERE id = ?", (target_id,)
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
        return {
            "message": "Upvoted!" if value == 1 else "Downvoted!",
            "target": kind,
            "id": target_id,
            "vote": "up" if value == 1 else "down",
            "changed": old != value,
            "upvotes": counts["upvotes"],
            "downvotes": counts["downvotes"],
            "score": counts["score"],
        }

    # -- home ------------------------------------------------------------------------------

    def home(self, agent: Agent) -> dict[str, Any]:
        """Activity on the agent's posts and comments since its last /home, oldest first.

        At most ``HOME_ACTIVITY_LIMIT`` items per call; the "last seen" marker only moves past
        what was returned, so nothing is lost when more arrived (``activity_has_more``).
        """
        with self.write() as tx:
            seen = tx.execute(
                "SELECT home_seen_seq FROM agents WHERE id = ?", (agent.id,)
            ).fetchone()[0]
            rows = tx.execute(
                "SELECT c.seq, c.id, c.content, c.created_at, p.id AS post_id, "
                "p.title AS post_title, a.name AS author, par.id AS parent_id, "
                "par.author_id AS parent_author_id FROM comments c "
                "JOIN posts p ON p.seq = c.post_seq JOIN agents a ON a.id = c.author_id "
                "LEFT JOIN comments par ON par.seq = c.parent_seq "
                "WHERE c.seq > :seen AND c.author_id != :me "
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
                "UPDATE agents SET home_seen_seq = MAX(home_seen_seq, ?) WHERE id = ?",
                (marker, agent.id),
            )
            karma = self.karma(tx, agent.id)
            latest = tx.execute(
                f"{_POST_SELECT} ORDER BY p.seq DESC LIMIT ?", (HOME_LATEST_POSTS,)
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
            "your_account": {"name": agent.name, "karma": karma},
            "karma": karma,
            "activity": activity,
            "activity_has_more": more,
            "latest_posts": [_post(r) for r in latest],
        }
