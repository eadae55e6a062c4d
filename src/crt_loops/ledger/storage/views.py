"""Rows as Moltbook's JSON shapes: one function per object, used by every listing.

Every object carries its public string id (agents ``a_``, submolts ``s_``, posts ``p_``,
comments ``c_``, notifications ``n_``, conversations ``d_``, messages ``m_``) and nested
``author``/``submolt`` objects with ``id`` and ``name``, plus the flat ``*_id``/``*_name``
fields that older clients read.
"""

from __future__ import annotations

from typing import Any

from crt_loops.core.clock import iso
from crt_loops.db.conn import Row

# Columns every post listing selects; joins: s = submolts, a = authors.
POST_SELECT = (
    "SELECT p.seq, p.id, p.title, p.content, p.url, p.created_at, p.upvotes, p.downvotes, "
    "p.score, p.hot, p.comment_count, p.is_pinned, p.verification_status, p.author_id, "
    "p.submolt_id AS submolt_seq, s.name AS submolt, s.display_name AS submolt_display, "
    "s.public_id AS submolt_public_id, a.name AS author, a.public_id AS author_public_id "
    "FROM posts p JOIN submolts s ON s.id = p.submolt_id JOIN agents a ON a.id = p.author_id"
)
COMMENT_SELECT = (
    "SELECT c.seq, c.id, c.content, c.depth, c.created_at, c.upvotes, c.downvotes, c.score, "
    "c.parent_seq, c.is_deleted, c.verification_status, c.author_id, c.post_seq, "
    "par.id AS parent_id, p.id AS post_id, p.title AS post_title, a.name AS author, "
    "a.public_id AS author_public_id FROM comments c JOIN posts p ON p.seq = c.post_seq "
    "JOIN agents a ON a.id = c.author_id LEFT JOIN comments par ON par.seq = c.parent_seq"
)
AGENT_SELECT = (
    "SELECT g.id, g.public_id, g.name, g.description, g.created_at, g.metadata, "
    "g.avatar_type, "
    "(SELECT COUNT(*) FROM follows f WHERE f.followee_id = g.id) AS follower_count, "
    "(SELECT COUNT(*) FROM follows f WHERE f.follower_id = g.id) AS following_count, "
    "(SELECT COUNT(*) FROM posts p WHERE p.author_id = g.id) AS post_count, "
    "(SELECT COUNT(*) FROM comments c WHERE c.author_id = g.id AND c.is_deleted = 0) "
    "AS comment_count, "
    "(SELECT COALESCE(SUM(score), 0) FROM posts p WHERE p.author_id = g.id) + "
    "(SELECT COALESCE(SUM(score), 0) FROM comments c WHERE c.author_id = g.id) AS karma "
    "FROM agents g"
)
SUBMOLT_SELECT = (
    "SELECT s.id, s.public_id, s.name, s.display_name, s.description, s.created_at, "
    "s.banner_color, s.theme_color, s.avatar_type, s.banner_type, a.name AS creator, "
    "a.public_id AS creator_public_id, "
    "(SELECT COUNT(*) FROM posts p WHERE p.submolt_id = s.id) AS post_count, "
    "(SELECT COUNT(*) FROM subscriptions u WHERE u.submolt_id = s.id) AS subscriber_count "
    "FROM submolts s LEFT JOIN agents a ON a.id = s.creator_id"
)
DELETED = "[deleted]"


def post(row: Row) -> dict[str, Any]:
    return {
        "id": row["id"],
        "title": row["title"],
        "content": row["content"],
        "url": row["url"],
        "type": "link" if row["url"] else "text",
        "submolt": {
            "id": row["submolt_public_id"],
            "name": row["submolt"],
            "display_name": row["submolt_display"],
        },
        "submolt_id": row["submolt_public_id"],
        "submolt_name": row["submolt"],
        "author": {"id": row["author_public_id"], "name": row["author"]},
        "author_id": row["author_public_id"],
        "author_name": row["author"],
        "upvotes": row["upvotes"],
        "downvotes": row["downvotes"],
        "score": row["score"],
        "comment_count": row["comment_count"],
        "is_pinned": bool(row["is_pinned"]),
        "verification_status": row["verification_status"],
        "created_at": iso(row["created_at"]),
    }


def comment(row: Row) -> dict[str, Any]:
    deleted = bool(row["is_deleted"])
    return {
        "id": row["id"],
        "post_id": row["post_id"],
        "parent_id": row["parent_id"],
        "depth": row["depth"],
        "content": DELETED if deleted else row["content"],
        "author": {"id": row["author_public_id"], "name": row["author"]},
        "author_id": row["author_public_id"],
        "author_name": row["author"],
        "upvotes": row["upvotes"],
        "downvotes": row["downvotes"],
        "score": row["score"],
        "is_deleted": deleted,
        "verification_status": row["verification_status"],
        "created_at": iso(row["created_at"]),
    }


def agent(row: Row, *, base_url: str = "") -> dict[str, Any]:
    return {
        "id": row["public_id"],
        "name": row["name"],
        "display_name": row["name"],
        "description": row["description"],
        "karma": row["karma"],
        "follower_count": row["follower_count"],
        "following_count": row["following_count"],
        "posts_count": row["post_count"],
        "comments_count": row["comment_count"],
        "post_count": row["post_count"],
        "comment_count": row["comment_count"],
        "is_claimed": True,
        "claimed": True,
        "is_active": True,
        "status": "claimed",
        "avatar_url": (
            f"{base_url}/api/v1/agents/{row['name']}/avatar" if row["avatar_type"] else None
        ),
        "created_at": iso(row["created_at"]),
    }


def submolt(row: Row, *, base_url: str = "") -> dict[str, Any]:
    def image(kind: str) -> str | None:
        if not row[f"{kind}_type"]:
            return None
        return f"{base_url}/api/v1/submolts/{row['name']}/{kind}"

    return {
        "id": row["public_id"],
        "name": row["name"],
        "display_name": row["display_name"],
        "description": row["description"],
        "subscriber_count": row["subscriber_count"],
        "post_count": row["post_count"],
        "banner_color": row["banner_color"],
        "theme_color": row["theme_color"],
        "avatar_url": image("avatar"),
        "banner_url": image("banner"),
        "owner": row["creator"],
        "owner_id": row["creator_public_id"],
        "created_by": row["creator"],
        "created_at": iso(row["created_at"]),
    }
