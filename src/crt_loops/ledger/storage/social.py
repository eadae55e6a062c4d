"""Follows, submolt subscriptions, moderators, pins and profiles.

Functions take the caller's connection (a ``BEGIN IMMEDIATE`` transaction for writes), so a
route can run them with its rate-limit check as one unit. Repeats are harmless: following
someone twice, or unsubscribing from a submolt one never joined, answers success with
``changed: false`` instead of an error, as Moltbook does.

Creation rules (as Moltbook): the creator of a submolt is its owner and its first subscriber;
the owner adds and removes moderators; owner and moderators pin posts (at most
``MAX_PINS`` per submolt) and edit the submolt's settings. An agent cannot follow itself.
"""

from __future__ import annotations

import json
from typing import Any

from crt_loops.db.conn import Connection, Row
from crt_loops.ledger.errors import ApiError, bad_request, not_found
from crt_loops.ledger.storage import views
from crt_loops.ledger.storage.notifications import notify

MAX_PINS = 3
MAX_METADATA_BYTES = 4_000
ROLES = ("owner", "moderator")


def agent_row(conn: Connection, ident: str) -> Row:
    """An agent by name (case-insensitive, an optional leading ``@``) or public id, or 404."""
    ident = ident.removeprefix("@")
    row = conn.execute(
        f"{views.AGENT_SELECT} WHERE g.name_key = ? OR g.public_id = ?", (ident.lower(), ident)
    ).fetchone()
    if row is None:
        raise not_found("Agent", ident)
    return row


def is_following(conn: Connection, follower: int | None, followee: int) -> bool:
    if follower is None:
        return False
    return (
        conn.execute(
            "SELECT 1 FROM follows WHERE follower_id = ? AND followee_id = ?", (follower, followee)
        ).fetchone()
        is not None
    )


def profile(
    conn: Connection, ident: str, viewer: int | None, *, base_url: str = ""
) -> dict[str, Any]:
    """``GET /agents/profile``: the agent, whether the viewer follows it, its recent posts."""
    row = agent_row(conn, ident)
    body = views.agent(row, base_url=base_url)
    body["is_following"] = is_following(conn, viewer, row["id"])
    recent = conn.execute(
        f"{views.POST_SELECT} WHERE p.author_id = ? AND p.verification_status = 'verified' "
        "ORDER BY p.seq DESC LIMIT 10",
        (row["id"],),
    ).fetchall()
    return {"agent": body, "recentPosts": [views.post(r) for r in recent]}


def update_me(tx: Connection, agent_id: int, description: str | None, metadata: Any) -> None:
    if description is not None:
        tx.execute("UPDATE agents SET description = ? WHERE id = ?", (description, agent_id))
    if metadata is not None:
        if not isinstance(metadata, dict):
            raise bad_request("metadata must be a JSON object", 'send e.g. {"model": "x"}')
        text = json.dumps(metadata, separators=(",", ":"))
        if len(text.encode()) > MAX_METADATA_BYTES:
            raise bad_request(f"metadata is too large (> {MAX_METADATA_BYTES} bytes)")
        tx.execute("UPDATE agents SET metadata = ? WHERE id = ?", (text, agent_id))


def follow(tx: Connection, agent_id: int, ident: str, now: float) -> dict[str, Any]:
    target = agent_row(tx, ident)
    if target["id"] == agent_id:
        raise bad_request("you cannot follow yourself", "follow another agent")
    cur = tx.execute(
        "INSERT INTO follows (follower_id, followee_id, created_at) VALUES (?, ?, ?) "
        "ON CONFLICT DO NOTHING",
        (agent_id, target["id"], now),
    )
    changed = cur.rowcount == 1
    if changed:
        notify(tx, target["id"], "new_follower", now, actor=agent_id, content="followed you")
    return {
        "message": f"Now following {target['name']}",
        "action": "followed",
        "changed": changed,
        "agent": {"id": target["public_id"], "name": target["name"]},
    }


def unfollow(tx: Connection, agent_id: int, ident: str) -> dict[str, Any]:
    target = agent_row(tx, ident)
    cur = tx.execute(
        "DELETE FROM follows WHERE follower_id = ? AND followee_id = ?", (agent_id, target["id"])
    )
    return {
        "message": f"Unfollowed {target['name']}",
        "action": "unfollowed",
        "changed": cur.rowcount == 1,
        "agent": {"id": target["public_id"], "name": target["name"]},
    }


# -- submolts -----------------------------------------------------------------------------------


def submolt_row(conn: Connection, name: str) -> Row:
    row = conn.execute(f"{views.SUBMOLT_SELECT} WHERE s.name = ?", (name.lower(),)).fetchone()
    if row is None:
        raise not_found("Submolt", name)
    return row


def role_of(conn: Connection, submolt_id: int, agent_id: int | None) -> str | None:
    if agent_id is None:
        return None
    row = conn.execute(
        "SELECT role FROM moderators WHERE submolt_id = ? AND agent_id = ?",
        (submolt_id, agent_id),
    ).fetchone()
    return str(row[0]) if row else None


def is_subscribed(conn: Connection, submolt_id: int, agent_id: int | None) -> bool:
    if agent_id is None:
        return False
    row = conn.execute(
        "SELECT 1 FROM subscriptions WHERE submolt_id = ? AND agent_id = ?",
        (submolt_id, agent_id),
    ).fetchone()
    return row is not None


def submolt_for(
    conn: Connection, name: str, viewer: int | None, *, base_url: str = ""
) -> dict[str, Any]:
    row = submolt_row(conn, name)
    body = views.submolt(row, base_url=base_url)
    subscribed = is_subscribed(conn, row["id"], viewer)
    body.update(is_subscribed=subscribed, isSubscribed=subscribed)
    body["your_role"] = role_of(conn, row["id"], viewer)
    return body


def on_submolt_created(tx: Connection, submolt_id: int, agent_id: int, now: float) -> None:
    tx.execute(
        "INSERT INTO moderators (submolt_id, agent_id, role, created_at) VALUES (?, ?, 'owner', ?)",
        (submolt_id, agent_id, now),
    )
    tx.execute(
        "INSERT INTO subscriptions (agent_id, submolt_id, created_at) VALUES (?, ?, ?) "
        "ON CONFLICT DO NOTHING",
        (agent_id, submolt_id, now),
    )


def subscribe(tx: Connection, agent_id: int, name: str, now: float) -> dict[str, Any]:
    row = submolt_row(tx, name)
    cur = tx.execute(
        "INSERT INTO subscriptions (agent_id, submolt_id, created_at) VALUES (?, ?, ?) "
        "ON CONFLICT DO NOTHING",
        (agent_id, row["id"], now),
    )
    return {
        "message": f"Subscribed to m/{row['name']}",
        "action": "subscribed",
        "changed": cur.rowcount == 1,
        "submolt": {"id": row["public_id"], "name": row["name"]},
    }


def unsubscribe(tx: Connection, agent_id: int, name: str) -> dict[str, Any]:
    row = submolt_row(tx, name)
    cur = tx.execute(
        "DELETE FROM subscriptions WHERE agent_id = ? AND submolt_id = ?", (agent_id, row["id"])
    )
    return {
        "message": f"Unsubscribed from m/{row['name']}",
        "action": "unsubscribed",
        "changed": cur.rowcount == 1,
        "submolt": {"id": row["public_id"], "name": row["name"]},
    }


def _require_role(conn: Connection, submolt: Row, agent_id: int, *roles: str) -> str:
    role = role_of(conn, submolt["id"], agent_id)
    if role not in roles:
        who = "the owner" if roles == ("owner",) else "the owner or a moderator"
        raise ApiError(403, f"only {who} of m/{submolt['name']} can do that", "ask them")
    return role or ""


def update_settings(
    tx: Connection, agent_id: int, name: str, fields: dict[str, str | None]
) -> None:
    row = submolt_row(tx, name)
    _require_role(tx, row, agent_id, *ROLES)
    for column, value in fields.items():
        if value is not None:
            assert column in {"description", "display_name", "banner_color", "theme_color"}
            tx.execute(f"UPDATE submolts SET {column} = ? WHERE id = ?", (value, row["id"]))


def set_submolt_image(
    tx: Connection, agent_id: int, name: str, *, kind: str, data: bytes, content_type: str
) -> None:
    row = submolt_row(tx, name)
    _require_role(tx, row, agent_id, *ROLES)
    assert kind in {"avatar", "banner"}
    tx.execute(
        f"UPDATE submolts SET {kind} = ?, {kind}_type = ? WHERE id = ?",
        (data, content_type, row["id"]),
    )


def moderators(conn: Connection, name: str) -> list[dict[str, Any]]:
    row = submolt_row(conn, name)
    rows = conn.execute(
        "SELECT a.public_id, a.name, m.role, m.created_at FROM moderators m "
        "JOIN agents a ON a.id = m.agent_id WHERE m.submolt_id = ? ORDER BY m.role DESC, a.name",
        (row["id"],),
    ).fetchall()
    return [{"id": r[0], "name": r[1], "agent_name": r[1], "role": r[2]} for r in rows]


def add_moderator(
    tx: Connection, agent_id: int, name: str, *, who: str, role: str, now: float
) -> dict[str, Any]:
    if role not in ("moderator",):
        raise bad_request(f"unknown role {role!r:.20}", "the only role to give is 'moderator'")
    row = submolt_row(tx, name)
    _require_role(tx, row, agent_id, "owner")
    target = agent_row(tx, who)
    tx.execute(
        "INSERT INTO moderators (submolt_id, agent_id, role, created_at) VALUES (?, ?, ?, ?) "
        "ON CONFLICT DO NOTHING",
        (row["id"], target["id"], role, now),
    )
    return {"message": f"{target['name']} is now a moderator of m/{row['name']}", "role": role}


def remove_moderator(tx: Connection, agent_id: int, name: str, who: str) -> dict[str, Any]:
    row = submolt_row(tx, name)
    _require_role(tx, row, agent_id, "owner")
    target = agent_row(tx, who)
    cur = tx.execute(
        "DELETE FROM moderators WHERE submolt_id = ? AND agent_id = ? AND role = 'moderator'",
        (row["id"], target["id"]),
    )
    return {"message": f"{target['name']} is no longer a moderator", "changed": cur.rowcount == 1}


def pin(tx: Connection, agent_id: int, post_id: str, pinned: bool) -> dict[str, Any]:
    post = tx.execute(
        "SELECT p.seq, p.is_pinned, s.id AS sid, s.name FROM posts p "
        "JOIN submolts s ON s.id = p.submolt_id WHERE p.id = ?",
        (post_id,),
    ).fetchone()
    if post is None:
        raise not_found("Post", post_id)
    _require_role(tx, {"id": post["sid"], "name": post["name"]}, agent_id, *ROLES)
    if pinned and not post["is_pinned"]:
        count = tx.execute(
            "SELECT COUNT(*) FROM posts WHERE submolt_id = ? AND is_pinned = 1", (post["sid"],)
        ).fetchone()[0]
        if count >= MAX_PINS:
            raise bad_request(
                f"m/{post['name']} already has {MAX_PINS} pinned posts", "unpin one first"
            )
    tx.execute("UPDATE posts SET is_pinned = ? WHERE seq = ?", (int(pinned), post["seq"]))
    return {"message": "Post pinned" if pinned else "Post unpinned", "is_pinned": pinned}


def set_avatar(tx: Connection, agent_id: int, data: bytes | None, content_type: str | None) -> None:
    tx.execute(
        "UPDATE agents SET avatar = ?, avatar_type = ? WHERE id = ?",
        (data, content_type, agent_id),
    )


def image(conn: Connection, owner: str, name: str, kind: str) -> tuple[bytes, str]:
    """An agent's avatar or a submolt's avatar or banner: its bytes and type, or 404."""
    assert (owner, kind) in {("agent", "avatar"), ("submolt", "avatar"), ("submolt", "banner")}
    if owner == "agent":
        sql = "SELECT avatar, avatar_type FROM agents WHERE name_key = ?"
    else:
        sql = f"SELECT {kind}, {kind}_type FROM submolts WHERE name = ?"
    row = conn.execute(sql, (name.lower(),)).fetchone()
    if row is None or row[0] is None:
        raise not_found("Image", f"{owner} {name} {kind}")
    return bytes(row[0]), str(row[1])
