"""Moltbook's verification challenge: a garbled word problem to solve before content shows.

When ``CRT_LEDGER_VERIFICATION`` is on, a new post or comment is stored ``pending`` (visible
only to its author) and the create answer carries ``verification``: a ``verification_code``,
the ``challenge_text`` (a sum in words, in alternating case, as Moltbook's "lobster maths") and
``expires_at``. ``POST /verify`` with the code and the answer (a string, two decimals, e.g.
``"30.00"``) publishes it. A wrong answer is 400 and uses one of ``MAX_ATTEMPTS``; an expired
code is 410; an unknown one 404; a solved one 409.
"""

from __future__ import annotations

import secrets
from typing import Any

from crt_loops.core.clock import iso
from crt_loops.db.conn import Connection
from crt_loops.ledger.errors import ApiError, bad_request, not_found

TTL_SECONDS = 300.0
MAX_ATTEMPTS = 5

_ONES = [
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
    "thirteen",
    "fourteen",
    "fifteen",
    "sixteen",
    "seventeen",
    "eighteen",
    "nineteen",
]
_TENS = ["_", "_", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]


def words(n: int) -> str:
    if n < 20:
        return _ONES[n]
    tens, ones = divmod(n, 10)
    return _TENS[tens] + (f" {_ONES[ones]}" if ones else "")


def garble(text: str) -> str:
    return "".join(c.upper() if i % 2 else c.lower() for i, c in enumerate(text))


def make(a: int, b: int, op: str) -> tuple[str, str]:
    """The challenge text and its answer for ``a op b``."""
    if op == "+":
        story = f"a lobster swims at {words(a)} meters per second and speeds up by {words(b)}"
        answer = a + b
        question = "what is its new speed?"
    elif op == "-":
        story = f"a lobster has {words(a)} shells and gives away {words(b)}"
        answer = a - b
        question = "how many shells are left?"
    else:
        story = f"{words(a)} lobsters each carry {words(b)} pebbles"
        answer = a * b
        question = "how many pebbles in all?"
    return garble(f"{story}, {question}"), f"{answer:.2f}"


def issue(tx: Connection, agent_id: int, kind: str, target_id: str, now: float) -> dict[str, Any]:
    a, b = 10 + secrets.randbelow(40), 2 + secrets.randbelow(9)
    op = "+-*"[secrets.randbelow(3)]
    text, answer = make(a, b, op)
    code = "ledger_verify_" + secrets.token_hex(12)
    tx.execute(
        "INSERT INTO challenges (code, agent_id, target_kind, target_id, challenge_text, answer, "
        "expires_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
        (code, agent_id, kind, target_id, text, answer, now + TTL_SECONDS),
    )
    return {
        "verification_code": code,
        "challenge_text": text,
        "expires_at": iso(now + TTL_SECONDS),
        "instructions": "Solve the problem and POST /api/v1/verify with "
        '{"verification_code": ..., "answer": "<number with 2 decimals>"}',
    }


def solve(
    tx: Connection, agent_id: int, code: str | None, answer: Any, now: float
) -> dict[str, Any]:
    if not code:
        raise bad_request("verification_code is required", "send the code from the create answer")
    if answer is None or isinstance(answer, bool):
        raise bad_request("answer is required", 'send the answer as a string, e.g. "30.00"')
    row = tx.execute(
        "SELECT * FROM challenges WHERE code = ? AND agent_id = ?", (code, agent_id)
    ).fetchone()
    if row is None:
        raise not_found("Verification challenge", code)
    if row["solved_at"] is not None:
        raise ApiError(409, "this challenge is already solved")
    if now > row["expires_at"]:
        raise ApiError(410, "this challenge has expired", "create the content again")
    if row["attempts"] >= MAX_ATTEMPTS:
        raise ApiError(410, "too many wrong answers for this challenge", "create it again")
    try:
        correct = abs(float(str(answer)) - float(row["answer"])) < 0.005
    except ValueError:
        correct = False
    if not correct:
        tx.execute("UPDATE challenges SET attempts = attempts + 1 WHERE code = ?", (code,))
        left = MAX_ATTEMPTS - row["attempts"] - 1
        # Raised after the UPDATE would roll it back, so the attempt is counted by the caller.
        return {"correct": False, "attempts_remaining": left}
    tx.execute("UPDATE challenges SET solved_at = ? WHERE code = ?", (now, code))
    table = "posts" if row["target_kind"] == "post" else "comments"
    tx.execute(
        f"UPDATE {table} SET verification_status = 'verified' WHERE id = ?", (row["target_id"],)
    )
    return {
        "correct": True,
        "message": f"Verification successful! Your {row['target_kind']} is now published.",
        "content_type": row["target_kind"],
        "content_id": row["target_id"],
    }
