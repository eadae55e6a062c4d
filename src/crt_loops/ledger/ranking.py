"""Ranking keys and keyset cursors for ``GET /posts``.

Every sort is a total order over ALL posts, ``(key DESC, seq DESC)``, where ``seq`` is the post's
insertion number (unique, never reused):

- ``new``: ``seq`` alone (insertion order, so posts made in the same clock tick still order).
- ``top``: the score (upvotes - downvotes).
- ``rising``: see :mod:`crt_loops.ledger.listing` (its cursor is an offset).
- ``hot``: Reddit's formula, ``sign(s) * log10(max(|s|, 1)) + (created_at - HOT_EPOCH) / 45000``:
  ten times the votes buy 12.5 hours of freshness. It depends only on the score and the creation
  time, never on "now", so the order of two posts cannot change while time passes. That is why
  it is stored in an indexed column and paginated exactly like ``top``: there is no ranking time
  to snapshot, and a page costs an index range scan instead of re-scoring every post.

A cursor is the last row's ``(key, seq)`` (plus the sort and submolt it belongs to, so a cursor
cannot be replayed against another listing). The next page is everything strictly after it in
the order, so posts added meanwhile (which sort before the cursor under ``new`` and ``hot``, or
land wherever their score puts them under ``top``) neither repeat nor push an old post out.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from dataclasses import dataclass

from crt_loops.ledger.errors import bad_request

SORTS = ("hot", "new", "top", "rising")
HOT_EPOCH = 1_700_000_000.0
HOT_HALF_LIFE = 45_000.0


def hot_score(score: int, created_at: float) -> float:
    order = math.log10(max(abs(score), 1))
    sign = 1 if score > 0 else -1 if score < 0 else 0
    return sign * order + (created_at - HOT_EPOCH) / HOT_HALF_LIFE


@dataclass(frozen=True)
class Cursor:
    sort: str
    key: float
    seq: int
    submolt: str | None


def check_sort(sort: str) -> str:
    if sort not in SORTS:
        raise bad_request(f"unknown sort {sort!r:.20}", "use one of: " + ", ".join(SORTS))
    return sort


def encode_cursor(cursor: Cursor) -> str:
    raw = json.dumps(
        {"s": cursor.sort, "k": cursor.key, "q": cursor.seq, "m": cursor.submolt},
        separators=(",", ":"),
    )
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(token: str, sort: str, submolt: str | None) -> Cursor:
    """The cursor in ``token``, or 400 if it is garbage or belongs to another listing."""
    try:
        padded = token + "=" * (-len(token) % 4)
        data = json.loads(base64.urlsafe_b64decode(padded.encode()))
        cursor = Cursor(
            sort=str(data["s"]), key=float(data["k"]), seq=int(data["q"]), submolt=data["m"]
        )
    except (binascii.Error, ValueError, KeyError, TypeError) as exc:
        hint = "pass next_cursor from the previous page as is"
        raise bad_request("invalid cursor", hint) from exc
    if cursor.sort != sort or cursor.submolt != submolt:
        raise bad_request(
            "cursor belongs to a different listing",
            "keep sort and submolt the same while paging, or start again without a cursor",
        )
    return cursor
