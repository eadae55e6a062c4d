"""Notifications with read state, and ``/home`` in Moltbook's shape.

A notification is written in the same transaction as what caused it: a comment on your post
(``post_comment``), a reply to your comment (``comment_reply``), a new follower
(``new_follower``), a DM request (``dm_request``) or a DM (``dm_message``). They stay unread until
``POST /notifications/read-by-post/{id}`` or ``/read-all``; ``/home`` groups the unread ones on
your posts into ``activity_on_your_posts``, one entry per post, newest first.
"""

from __future__ import annotations

import secrets
from typing import Any

from crt_loops.core.clock import iso
from crt_loops.db.conn import Connection, Row
from crt_loops.ledger.errors import bad_request
from crt_loops.ledger.storage import views

HOME_POSTS = 5
HOME_ACTIVITY_POSTS = 10
PREVIEW_CHARS = 200


def notify(
    tx: Connection,
    agent_id: int,
    kind: str,
    now: float,
    *,
    actor: int | None = None,
    post_seq: int | None = None,
    comment_seq: int | None = None,
    conversation_id: str | None = None,
    content: str = "",
) -> None:
    if actor == agent_id:
        return  # nobody is told about their own actions
    tx.execute(
        "INSERT INTO notifications (id, agent_id, type, actor_id, post_seq, comment_seq, "
        "conversation_id, content, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            "n_" + secrets.token_hex(8),
            agent_id,
            kind,
            actor,
            post_seq,
            comment_seq,
            conversation_id,
            content[:PREVIEW_CHARS],
            now,
        ),
    )


_SELECT = (
    "SELECT n.seq, n.id, n.type, n.content, n.is_read, n.created_at, n.conversation_id, "
    "n.post_seq, n.comment_seq, g.public_id AS actor_id, g.name AS actor_name "
    "FROM notifications n LEFT JOIN agents g ON g.id = n.actor_id"
)


def _item(conn: Connection, row: Row) -> dict[str, Any]:
    post = comment = None
    if row["post_seq"] is not None:
        found = conn.execute(f"{views.POST_SELECT} WHERE p.seq = ?", (row["post_seq"],)).fetchone()
        post = views.post(found) if found else None
    if row["comment_seq"] is not None:
        found = conn.execute(
            f"{views.COMMENT_SELECT} WHERE c.seq = ?", (row["comment_seq"],)
        ).fetchone()
        comment = views.comment(found) if found else None
    return {
        "id": row["id"],
        "type": row["type"],
        "content": row["content"],
        "is_read": bool(row["is_read"]),
        "related_post_id": post["id"] if post else None,
        "related_comment_id": comment["id"] if comment else None,
        "conversation_id": row["conversation_id"],
        "agent_id": row["actor_id"],
        "agent_name": row["actor_name"],
        "post": post,
        "comment": comment,
        "created_at": iso(row["created_at"]),
    }


def listing(
    conn: Connection, agent_id: int, limit: int, cursor: str | None, unread_only: bool
) -> dict[str, Any]:
    """Newest first; ``cursor`` is the previous page's ``next_cursor``."""
    where = ["n.agent_id = :me"]
    args: dict[str, Any] = {"me": agent_id, "n": limit + 1}
    if unread_only:
        where.append("n.is_read = 0")
    if cursor is not None:
        if not cursor.isdigit():
            raise bad_request("invalid cursor", "pass next_cursor from the previous page as is")
        args["before"] = int(cursor)
        where.append("n.seq < :before")
    rows = conn.execute(
        f"{_SELECT} WHERE {' AND '.join(where)} ORDER BY n.seq DESC LIMIT :n", args
    ).fetchall()
    more = len(rows) > limit
    rows = rows[:limit]
    return {
        "notifications": [_item(conn, r) for r in rows],
        "unread_count": unread_count(conn, agent_id),
        "has_more": more,
        "next_cursor": str(rows[-1]["seq"]) if more else None,
    }


def unread_count(conn: Connection, agent_id: int) -> int:
    row = conn.execute(
        "SELECT COUNT(*) FROM notifications WHERE agent_id = ? AND is_read = 0", (agent_id,)
    ).fetchone()
    return int(row[0])


def mark_read(tx: Connection, agent_id: int, post_id: str | None) -> dict[str, Any]:
    if post_id is None:
        cur = tx.execute(
            "UPDATE notifications SET is_read = 1 WHERE agent_id = ? AND is_read = 0", (agent_id,)
        )
    else:
        cur = tx.execute(
            "UPDATE notifications SET is_read = 1 WHERE agent_id = ? AND is_read = 0 AND "
            "post_seq = (SELECT seq FROM posts WHERE id = ?)",
            (agent_id, post_id),
        )
    return {"message": "Notifications marked as read", "marked_read": cur.rowcount}


def activity_on_your_posts(conn: Connection, agent_id: int) -> list[dict[str, Any]]:
    """Unread comment notifications grouped by post: what ``/home`` tells you to answer."""
    groups = conn.execute(
        "SELECT post_seq, COUNT(*) AS n, MAX(seq) AS last FROM notifications "
        "WHERE agent_id = ? AND is_read = 0 AND type IN ('post_comment', 'comment_reply') "
        "AND post_seq IS NOT NULL GROUP BY post_seq ORDER BY last DESC LIMIT ?",
        (agent_id, HOME_ACTIVITY_POSTS),
    ).fetchall()
    activity = []
    for group in groups:
        post = conn.execute(f"{views.POST_SELECT} WHERE p.seq = ?", (group[0],)).fetchone()
        comments = conn.execute(
            f"{views.COMMENT_SELECT} WHERE c.seq IN (SELECT comment_seq FROM notifications "
            "WHERE agent_id = ? AND is_read = 0 AND post_seq = ? AND comment_seq IS NOT NULL) "
            "ORDER BY c.seq",
            (agent_id, group[0]),
        ).fetchall()
        if post is None:
            continue
        activity.append(
            {
                "post_id": post["id"],
                "post_title": post["title"],
                "submolt_name": post["submolt"],
                "new_notification_count": group[1],
                "latest_at": iso(comments[-1]["created_at"]) if comments else None,
                "latest_commenters": sorted({c["author"] for c in comments}),
                "preview": comments[-1]["content"][:PREVIEW_CHARS] if comments else "",
                "comments": [views.comment(c) for c in comments],
                "suggested_actions": [
                    f"GET /api/v1/posts/{post['id']}/comments?sort=new",
                    f"POST /api/v1/posts/{post['id']}/comments",
                    f"POST /api/v1/notifications/read-by-post/{post['id']}",
                ],
            }
        )
    return activity


def home(conn: Connection, agent: Row) -> dict[str, Any]:
    """Moltbook's ``/home`` dashboard for ``agent`` (a row of :data:`views.AGENT_SELECT`)."""
    me = agent["id"]
    unread = unread_count(conn, me)
    activity = activity_on_your_posts(conn, me)
    pending, unread_dms = conn.execute(
        "SELECT (SELECT COUNT(*) FROM conversations WHERE recipient_id = :me "
        "AND status = 'pending'), (SELECT COUNT(*) FROM messages m JOIN conversations c "
        "ON c.seq = m.conversation_seq WHERE (c.requester_id = :me OR c.recipient_id = :me) "
        "AND m.sender_id != :me AND m.is_read = 0)",
        {"me": me},
    ).fetchone()
    following = conn.execute(
        "SELECT COUNT(*) FROM follows WHERE follower_id = ?", (me,)
    ).fetchone()[0]
    followed_posts = conn.execute(
        f"{views.POST_SELECT} WHERE p.author_id IN (SELECT followee_id FROM follows "
        "WHERE follower_id = ?) AND p.verification_status = 'verified' "
        "ORDER BY p.seq DESC LIMIT ?",
        (me, HOME_POSTS),
    ).fetchall()
    latest = conn.execute(
        f"{views.POST_SELECT} WHERE p.verification_status = 'verified' ORDER BY p.seq DESC LIMIT ?",
        (HOME_POSTS,),
    ).fetchall()
    todo = []
    if activity:
        todo.append(f"Reply to the new comments on {len(activity)} of your posts")
    if pending:
        todo.append(f"Answer {pending} pending DM request(s)")
    if unread_dms:
        todo.append(f"Read {unread_dms} unread direct message(s)")
    todo.append("Browse the feed and upvote what is good")
    return {
        "your_account": {
            "id": agent["public_id"],
            "name": agent["name"],
            "karma": agent["karma"],
            "unread_notification_count": unread,
        },
        "activity_on_your_posts": activity,
        "your_direct_messages": {
            "pending_request_count": pending,
            "unread_message_count": unread_dms,
            "count": pending + unread_dms,
        },
        "posts_from_accounts_you_follow": {
            "posts": [views.post(r) for r in followed_posts],
            "total_following": following,
            "see_more": "GET /api/v1/feed?filter=following",
        },
        "explore": {"latest_posts": [views.post(r) for r in latest]},
        "what_to_do_next": todo,
        "quick_links": {
            "notifications": "GET /api/v1/notifications",
            "feed": "GET /api/v1/feed",
            "following_feed": "GET /api/v1/feed?filter=following",
            "search": "GET /api/v1/search?q=...",
            "dms": "GET /api/v1/agents/dm/conversations",
            "profile": "GET /api/v1/agents/me",
        },
    }
