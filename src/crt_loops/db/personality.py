"""Personality records: each thread's profile (versioned), its change history and entries.

A profile is saved only if its version is still the one the caller started from (optimistic
concurrency: a manual run may have saved meanwhile), decided by the write's own ``WHERE``, and
together with its history row, its journal entry and the thread's watermark, in one transaction.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from crt_loops.db import progress
from crt_loops.db.journal import write_entry
from crt_loops.db.session import SessionDB, dumps


@dataclass(frozen=True)
class StoredProfile:
    profile: dict[str, Any]
    version: int
    updated_at: float


@dataclass(frozen=True)
class ProfileChange:
    """What a changed profile writes beside itself: a history row and a journal entry."""

    changes: list[dict[str, Any]]
    reason: str
    public_profile: dict[str, Any]
    title: str
    body: str
    meta: dict[str, Any]


@dataclass(frozen=True)
class HistoryItem:
    id: int
    created_at: float
    changes: list[dict[str, Any]]
    reason: str


def stored_profile(db: SessionDB, thread_id: str) -> StoredProfile | None:
    """The thread's saved profile, or None before the first pass saw a message of the person."""
    row = db.query_one(
        "SELECT profile_json, version, updated_at FROM personality_profiles WHERE thread_id = ?",
        (thread_id,),
    )
    if row is None:
        return None
    return StoredProfile(json.loads(row[0]), int(row[1]), float(row[2]))


def save_profile(
    db: SessionDB,
    *,
    loop: str,
    thread_id: str,
    up_to_id: int,
    expected_version: int,
    profile: dict[str, Any],
    version: int,
    now: float,
    change: ProfileChange | None,
) -> bool:
    """Save ``profile`` as ``version`` and raise the thread's watermark to ``up_to_id``;
    False (nothing written) when the stored version is no longer ``expected_version``."""
    with db.write() as tx:
        # The version check is the write's own WHERE (or the conflict of a first insert), so it
        # holds whatever the isolation level: a profile saved meanwhile makes this a no-op.
        if expected_version == 0:
            cur = tx.execute(
                "INSERT INTO personality_profiles (thread_id, profile_json, version, updated_at) "
                "VALUES (?, ?, ?, ?) ON CONFLICT(thread_id) DO NOTHING",
                (thread_id, dumps(profile), version, now),
            )
        else:
            cur = tx.execute(
                "UPDATE personality_profiles SET profile_json = ?, version = ?, updated_at = ? "
                "WHERE thread_id = ? AND version = ?",
                (dumps(profile), version, now, thread_id, expected_version),
            )
        if cur.rowcount != 1:
            return False
        if change is not None:
            tx.execute(
                "INSERT INTO personality_history (thread_id, created_at, changes_json, reason, "
                "profile_json) VALUES (?, ?, ?, ?, ?)",
                (
                    thread_id,
                    now,
                    dumps(change.changes),
                    change.reason,
                    dumps(change.public_profile),
                ),
            )
            write_entry(
                tx,
                thread_id=thread_id,
                entry_type="personality",
                title=change.title,
                body=change.body,
                created_at=now,
                meta=change.meta,
            )
        progress.raise_thread_watermark(tx, loop, thread_id, up_to_id, db.clock())
    return True


def history(db: SessionDB, thread_id: str, *, limit: int) -> list[HistoryItem]:
    """The thread's latest profile changes, newest first."""
    rows = db.query(
        "SELECT id, created_at, changes_json, reason FROM personality_history "
        "WHERE thread_id = ? ORDER BY id DESC LIMIT ?",
        (thread_id, limit),
    )
    return [HistoryItem(int(r[0]), float(r[1]), json.loads(r[2]), str(r[3])) for r in rows]
