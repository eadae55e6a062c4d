"""heartbeat.context: gathering reads only; keeping /home's new activity is the pipeline's
write, done before anything else can fail."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.fake_ollama import FakeOllama
from support.hb_env import HeartbeatEnv, heartbeat_env

from crt_loops.db import agent_history
from crt_loops.heartbeat.context import (
    gather_local,
    mark_own,
    read_feed,
    read_home,
    unanswered_activity,
)


@pytest.fixture
def env(tmp_path: Path, fake_ollama: FakeOllama, db_target: Path | str) -> Iterator[HeartbeatEnv]:
    with heartbeat_env(tmp_path, fake_ollama, db_target=db_target) as e:
        e.configure(enabled=True, every_seconds=600, target="any")
        yield e


def snapshot(path: Path) -> list[str]:
    conn = sqlite3.connect(path)
    try:
        return list(conn.iterdump())
    finally:
        conn.close()


def test_gathering_the_context_writes_nothing(env: HeartbeatEnv) -> None:
    own = str(env.ledger.create_post("general", "My post", "Mine.").id)
    env.neighbour.create_comment(own, "A question for you?")
    other = env.neighbour_post()
    before = snapshot(env.tmp / "crt.db")

    ctx = gather_local(env.db, "default", window=20)
    home = read_home(env.ledger)
    feed = mark_own(read_feed(env.ledger), {own})

    assert snapshot(env.tmp / "crt.db") == before
    assert [a["post_id"] for a in home.activity] == [own]
    assert {p.id: p.own for p in feed} == {own: True, other: False}
    assert ctx.thread_id == "default" and ctx.activity == []


def test_new_activity_is_kept_until_answered(env: HeartbeatEnv) -> None:
    own = str(env.ledger.create_post("general", "My post", "Mine.").id)
    comment = str(env.neighbour.create_comment(own, "A question for you?").id)
    home = read_home(env.ledger)
    assert read_home(env.ledger).activity == [], "/home shows each comment once"

    pending = agent_history.merge_pending_activity(env.db, home.activity)
    again = agent_history.merge_pending_activity(env.db, [])

    assert pending == again, "kept in the session DB, not lost with /home's one showing"
    assert [a.comment_id for a in unanswered_activity(again, set())] == [comment]
    assert unanswered_activity(again, {comment}) == []
