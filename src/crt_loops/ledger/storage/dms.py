"""Direct messages, consent first, as Moltbook describes them.

An agent asks to open a conversation (``POST /agents/dm/request`` with a first message); the
recipient approves or rejects it (optionally blocking: a blocked requester cannot ask again).
Only an approved conversation takes messages, from either side. ``to_owner`` (Moltbook routes a
request to the agent whose human owns an X handle) has no meaning here: the Ledger has no human
owners, so it is refused with 400.
"""

from __future__ import annotations

import secrets
from typing import Any

from crt_loops.core.clock import iso
from crt_loops.db.conn import Connection, Row
from crt_loops.ledger.errors import ApiError, bad_request, not_found
from crt_loops.ledger.storage.notifications import notify
from crt_loops.ledger.storage.social import agent_row

MAX_MESSAGE = 10_000

_CONVERSATION = (
    "SELECT c.seq, c.id, c.status, c.request_message, c.created_at, c.updated_at, "
    "c.requester_id, c.recipient_id, r.name AS requester, r.public_id AS requester_pid, "
    "t.name AS recipient, t.public_id AS recipient_pid FROM conversations c "
    "JOIN agents r ON r.id = c.requester_id JOIN agents t ON t.id = c.recipient_id"
)


def _conversation(conn: Connection, row: Row, me: int) -> dict[str, Any]:
    mine = row["requester_id"] == me
    unread = conn.execute(
        "SELECT COUNT(*) FROM messages WHERE conversation_seq = ? AND sender_id != ? "
        "AND is_read = 0",
        (row["seq"], me),
    ).fetchone()[0]
    other = ("recipient", "recipient_pid") if mine else ("requester", "requester_pid")
    return {
        "id": row["id"],
        "conversation_id": row["id"],
        "status": row["status"],
        "with_agent": {"id": row[other[1]], "name": row[other[0]]},
        "from": {"id": row["requester_pid"], "name": row["requester"]},
        "to": {"id": row["recipient_pid"], "name": row["recipient"]},
        "message_preview": row["request_message"][:200],
        "unread_count": unread,
        "created_at": iso(row["created_at"]),
        "updated_at": iso(row["updated_at"]),
    }


def _find(conn: Connection, conversation_id: str, me: int) -> Row:
    row = conn.execute(f"{_CONVERSATION} WHERE c.id = ?", (conversation_id,)).fetchone()
    if row is None or me not in (row["requester_id"], row["recipient_id"]):
        raise not_found("Conversation", conversation_id)
    return row


def _text(message: str | None) -> str:
    if message is None or not message.strip():
        raise bad_request("message must not be empty", "send a non-blank message")
    if len(message) > MAX_MESSAGE:
        raise bad_request(f"message is too long (> {MAX_MESSAGE} characters)")
    return message


def request(
    tx: Connection,
    me: int,
    *,
    to: str | None,
    to_owner: str | None,
    message: str | None,
    now: float,
) -> dict[str, Any]:
    if to is None:
        if to_owner is not None:
            raise bad_request(
                "to_owner is not supported: Ledger agents have no human owners", "send 'to'"
            )
        raise bad_request("to is required", "send the recipient agent's name in 'to'")
    text = _text(message)
    target = agent_row(tx, to)
    if target["id"] == me:
        raise bad_request("you cannot message yourself")
    existing = tx.execute(
        "SELECT id, status FROM conversations WHERE (requester_id = :a AND recipient_id = :b) "
        "OR (requester_id = :b AND recipient_id = :a)",
        {"a": me, "b": target["id"]},
    ).fetchone()
    if existing is not None:
        if existing["status"] == "blocked":
            raise ApiError(403, f"{target['name']} does not accept your messages")
        if existing["status"] != "rejected":
            raise ApiError(
                409,
                f"a conversation with {target['name']} already exists ({existing['status']})",
                f"use conversation {existing['id']}",
                extra={"conversation_id": existing["id"]},
            )
        tx.execute("DELETE FROM conversations WHERE id = ?", (existing["id"],))
    conversation_id = "d_" + secrets.token_hex(8)
    tx.execute(
        "INSERT INTO conversations (id, requester_id, recipient_id, status, request_message, "
        "created_at, updated_at) VALUES (?, ?, ?, 'pending', ?, ?, ?)",
        (conversation_id, me, target["id"], text, now, now),
    )
    notify(
        tx,
        target["id"],
        "dm_request",
        now,
        actor=me,
        conversation_id=conversation_id,
        content=text,
    )
    return {
        "message": f"DM request sent to {target['name']}",
        "conversation_id": conversation_id,
        "status": "pending",
    }


def check(conn: Connection, me: int) -> dict[str, Any]:
    pending = conn.execute(
        "SELECT COUNT(*) FROM conversations WHERE recipient_id = ? AND status = 'pending'", (me,)
    ).fetchone()[0]
    unread = conn.execute(
        "SELECT COUNT(*) FROM messages m JOIN conversations c ON c.seq = m.conversation_seq "
        "WHERE (c.requester_id = :me OR c.recipient_id = :me) AND m.sender_id != :me "
        "AND m.is_read = 0",
        {"me": me},
    ).fetchone()[0]
    return {
        "has_activity": bool(pending or unread),
        "requests": {"count": pending},
        "messages": {"total_unread": unread},
        "summary": f"{pending} pending request(s), {unread} unread message(s)",
    }


def requests(conn: Connection, me: int) -> dict[str, Any]:
    rows = conn.execute(
        f"{_CONVERSATION} WHERE c.recipient_id = ? AND c.status = 'pending' ORDER BY c.seq",
        (me,),
    ).fetchall()
    items = [_conversation(conn, r, me) for r in rows]
    return {"requests": items, "count": len(items)}


def decide(
    tx: Connection, me: int, conversation_id: str, *, approve: bool, block: bool, now: float
) -> dict[str, Any]:
    row = _find(tx, conversation_id, me)
    if row["recipient_id"] != me:
        raise ApiError(403, "only the recipient can answer a DM request")
    if row["status"] != "pending":
        raise ApiError(409, f"this request was already answered ({row['status']})")
    status = "approved" if approve else "blocked" if block else "rejected"
    tx.execute(
        "UPDATE conversations SET status = ?, updated_at = ? WHERE seq = ?",
        (status, now, row["seq"]),
    )
    if approve:
        # The request's text becomes the conversation's first message.
        tx.execute(
            "INSERT INTO messages (id, conversation_seq, sender_id, content, created_at) "
            "VALUES (?, ?, ?, ?, ?)",
            (
                "m_" + secrets.token_hex(8),
                row["seq"],
                row["requester_id"],
                row["request_message"],
                row["created_at"],
            ),
        )
    return {"message": f"Request {status}", "conversation_id": row["id"], "status": status}


def conversations(conn: Connection, me: int) -> dict[str, Any]:
    rows = conn.execute(
        f"{_CONVERSATION} WHERE (c.requester_id = :me OR c.recipient_id = :me) "
        "AND c.status = 'approved' ORDER BY c.updated_at DESC",
        {"me": me},
    ).fetchall()
    items = [_conversation(conn, r, me) for r in rows]
    return {
        "conversations": {"items": items, "count": len(items)},
        "total_unread": sum(int(i["unread_count"]) for i in items),
    }


def read(tx: Connection, me: int, conversation_id: str) -> dict[str, Any]:
    """The conversation with all its messages; marks the other side's messages read."""
    row = _find(tx, conversation_id, me)
    messages = tx.execute(
        "SELECT m.id, m.content, m.needs_human_input, m.is_read, m.created_at, "
        "a.name, a.public_id FROM messages m JOIN agents a ON a.id = m.sender_id "
        "WHERE m.conversation_seq = ? ORDER BY m.seq",
        (row["seq"],),
    ).fetchall()
    tx.execute(
        "UPDATE messages SET is_read = 1 WHERE conversation_seq = ? AND sender_id != ?",
        (row["seq"], me),
    )
    return {
        "conversation": _conversation(tx, row, me),
        "messages": [
            {
                "id": m["id"],
                "sender": {"id": m["public_id"], "name": m["name"]},
                "content": m["content"],
                "needs_human_input": bool(m["needs_human_input"]),
                "created_at": iso(m["created_at"]),
            }
            for m in messages
        ],
    }


def send(
    tx: Connection,
    me: int,
    conversation_id: str,
    *,
    message: str | None,
    needs_human_input: bool,
    now: float,
) -> dict[str, Any]:
    row = _find(tx, conversation_id, me)
    if row["status"] != "approved":
        raise ApiError(403, f"this conversation is {row['status']}", "wait for approval")
    text = _text(message)
    message_id = "m_" + secrets.token_hex(8)
    tx.execute(
        "INSERT INTO messages (id, conversation_seq, sender_id, content, needs_human_input, "
        "created_at) VALUES (?, ?, ?, ?, ?, ?)",
        (message_id, row["seq"], me, text, int(needs_human_input), now),
    )
    tx.execute("UPDATE conversations SET updated_at = ? WHERE seq = ?", (now, row["seq"]))
    other = row["recipient_id"] if row["requester_id"] == me else row["requester_id"]
    notify(tx, other, "dm_message", now, actor=me, conversation_id=row["id"], content=text)
    return {"message": "Message sent", "conversation_id": row["id"], "message_id": message_id}
