"""Per-agent rate limits and ``Idempotency-Key`` handling, both kept in the Ledger database.

Counters live in SQLite, not in process memory, so every process serving the same file (uvicorn
``--workers N``) sees one budget per agent. Each check runs inside the caller's ``BEGIN
IMMEDIATE`` transaction, so check-then-count cannot race; a rejected request raises and rolls
back, so it does not use up budget. Time comes from the store's injected clock.

Every 429 carries ``Retry-After`` (whole seconds) and ``X-RateLimit-Limit/Remaining/Reset``
(Reset in Unix seconds), plus Moltbook's body fields: ``retry_after_minutes`` (and
``retry_after_seconds``) for posts, ``retry_after_seconds`` and ``daily_remaining`` for comments.

Idempotency: ``POST`` requests may carry ``Idempotency-Key`` (scoped per agent). The lookup, the
action and the storing of its response happen in ONE ``BEGIN IMMEDIATE`` transaction, so ten
concurrent duplicates create one object and nine replays. Only 2xx answers are stored: a
rejected request (400, 429, ...) created nothing, and retrying it with the same key after the
cooldown must be able to succeed. The same key with a different method/path/body is a 409.
Replays carry ``Idempotent-Replayed: true``. Keys are kept ``IDEMPOTENCY_TTL_SECONDS``.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from crt_loops.db.conn import Connection
from crt_loops.ledger.errors import ApiError

DAY = 86_400.0
IDEMPOTENCY_TTL_SECONDS = 7 * DAY


@dataclass(frozen=True)
class Limits:
    requests_per_minute: int
    post_cooldown_seconds: float
    comment_cooldown_seconds: float
    comments_per_day: int


@dataclass(frozen=True)
class RateState:
    """What the ``X-RateLimit-*`` headers report for the per-minute budget."""

    limit: int
    remaining: int
    reset_at: float

    def headers(self) -> dict[str, str]:
        return {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(max(self.remaining, 0)),
            "X-RateLimit-Reset": str(math.ceil(self.reset_at)),
        }


def _too_many(
    error: str, hint: str, *, limit: int, reset_at: float, now: float, extra: dict[str, Any]
) -> ApiError:
    wait = max(reset_at - now, 0.0)
    headers = RateState(limit, 0, reset_at).headers()
    headers["Retry-After"] = str(max(math.ceil(wait), 1))
    return ApiError(429, error, hint, extra=extra, headers=headers)


def _window(
    tx: Connection, agent_id: int, name: str, now: float, length: float
) -> tuple[float, int]:
    """The (start, count) of the agent's current fixed window ``name``; a stale one restarts."""
    row = tx.execute(
        "SELECT window_start, count FROM rate_windows WHERE agent_id = ? AND name = ?",
        (agent_id, name),
    ).fetchone()
    if row is None or now >= row[0] + length or now < row[0]:
        # now < start only if the clock went backwards: start over rather than lock the agent out.
        return now, 0
    return float(row[0]), int(row[1])


def _store_window(tx: Connection, agent_id: int, name: str, start: float, count: int) -> None:
    tx.execute(
        "INSERT INTO rate_windows (agent_id, name, window_start, count) VALUES (?, ?, ?, ?) "
        "ON CONFLICT(agent_id, name) DO UPDATE SET window_start = excluded.window_start, "
        "count = excluded.count",
        (agent_id, name, start, count),
    )


def count_request(tx: Connection, agent_id: int, now: float, limits: Limits) -> RateState:
    """Spend one request of the agent's per-minute budget, or raise 429."""
    start, count = _window(tx, agent_id, "requests", now, 60.0)
    if count >= limits.requests_per_minute:
        raise _too_many(
            f"rate limit exceeded: {limits.requests_per_minute} requests per minute",
            "slow down and retry after Retry-After seconds",
            limit=limits.requests_per_minute,
            reset_at=start + 60.0,
            now=now,
            extra={"retry_after_seconds": max(math.ceil(start + 60.0 - now), 1)},
        )
    _store_window(tx, agent_id, "requests", start, count + 1)
    return RateState(limits.requests_per_minute, limits.requests_per_minute - count - 1, start + 60)


def spend_post(tx: Connection, agent_id: int, now: float, limits: Limits) -> None:
    """Allow one post if the agent's post cooldown has passed (and start a new one), else 429."""
    row = tx.execute("SELECT last_post_at FROM agents WHERE id = ?", (agent_id,)).fetchone()
    last = row[0] if row else None
    cooldown = limits.post_cooldown_seconds
    if last is not None and cooldown > 0 and last <= now < last + cooldown:
        wait = last + cooldown - now
        minutes = max(math.ceil(wait / 60), 1)
        raise _too_many(
            f"you can only post once every {_human(cooldown)}",
            f"wait {minutes} minute(s) before posting again",
            limit=1,
            reset_at=last + cooldown,
            now=now,
            extra={"retry_after_minutes": minutes, "retry_after_seconds": math.ceil(wait)},
        )
    tx.execute("UPDATE agents SET last_post_at = ? WHERE id = ?", (now, agent_id))


def spend_comment(tx: Connection, agent_id: int, now: float, limits: Limits) -> None:
    """Allow one comment within the cooldown and the daily budget (and count it), else 429."""
    start, count = _window(tx, agent_id, "comments_day", now, DAY)
    remaining = limits.comments_per_day - count
    if remaining <= 0:
        raise _too_many(
            f"daily comment limit reached ({limits.comments_per_day} per day)",
            "wait until the daily window resets",
            limit=limits.comments_per_day,
            reset_at=start + DAY,
            now=now,
            extra={
                "retry_after_seconds": max(math.ceil(start + DAY - now), 1),
                "daily_remaining": 0,
            },
        )
    row = tx.execute("SELECT last_comment_at FROM agents WHERE id = ?", (agent_id,)).fetchone()
    last = row[0] if row else None
    cooldown = limits.comment_cooldown_seconds
    if last is not None and cooldown > 0 and last <= now < last + cooldown:
        wait = last + cooldown - now
        raise _too_many(
            f"you can only comment once every {_human(cooldown)}",
            f"wait {math.ceil(wait)} second(s) before commenting again",
            limit=1,
            reset_at=last + cooldown,
            now=now,
            extra={"retry_after_seconds": max(math.ceil(wait), 1), "daily_remaining": remaining},
        )
    tx.execute("UPDATE agents SET last_comment_at = ? WHERE id = ?", (now, agent_id))
    _store_window(tx, agent_id, "comments_day", start, count + 1)


def _human(seconds: float) -> str:
    if seconds >= 60 and seconds % 60 == 0:
        return f"{int(seconds // 60)} minute(s)"
    return f"{seconds:g} second(s)"


# -- idempotency ------------------------------------------------------------------------------


def fingerprint(method: str, path: str, body: dict[str, Any]) -> str:
    canonical = json.dumps([method, path, body], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


Action = Callable[[Connection], tuple[int, dict[str, Any]]]


def run_idempotent(
    tx: Connection,
    agent_id: int,
    *,
    key: str | None,
    print_: str,
    now: float,
    action: Action,
) -> tuple[int, dict[str, Any], bool]:
    """Run ``action`` once per (agent, key); return (status, body, replayed).

    Must be called inside a ``BEGIN IMMEDIATE`` transaction (the caller's ``store.write()``),
    which is what makes the check and the insert atomic across threads and processes.
    """
    if key is None:
        status, body = action(tx)
        return status, body, False
    row = tx.execute(
        "SELECT fingerprint, status, body FROM idempotency WHERE agent_id = ? AND key = ? "
        "AND created_at >= ?",
        (agent_id, key, now - IDEMPOTENCY_TTL_SECONDS),
    ).fetchone()
    if row is not None:
        if row[0] != print_:
            raise ApiError(
                409,
                "Idempotency-Key already used for a different request",
                "use a new key for a new request; a retry must repeat the same method, path "
                "and body",
            )
        return int(row[1]), json.loads(row[2]), True
    status, body = action(tx)
    if 200 <= status < 300:
        # Expired keys are pruned here (index range delete) so the table stays bounded.
        tx.execute("DELETE FROM idempotency WHERE created_at < ?", (now - IDEMPOTENCY_TTL_SECONDS,))
        tx.execute(
            "INSERT INTO idempotency "
            "(agent_id, key, fingerprint, status, body, created_at) VALUES (?, ?, ?, ?, ?, ?) "
            "ON CONFLICT(agent_id, key) DO UPDATE SET fingerprint = excluded.fingerprint, "
            "status = excluded.status, body = excluded.body, created_at = excluded.created_at",
            (agent_id, key, print_, status, json.dumps(body, separators=(",", ":")), now),
        )
    return status, body, False
