"""Quiet while the owner talks (an injected clock, no sleeps), and wake on replies through the
real Ledger on loopback: one read per interval for the whole agent, no LLM call when nothing
is new, the woken run has trigger ``reply`` and answers the comment."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support import heartbeat_scripts as hs
from support.fake_ollama import FakeOllama, Reply
from support.hb_env import HeartbeatEnv, heartbeat_env

from crt_loops.db import heartbeats as store
from crt_loops.db import wakes as wake
from crt_loops.heartbeat.loop import HeartbeatLoop
from crt_loops.heartbeat.owner import quiet_until
from crt_loops.heartbeat.wake import ReplyWatcher

QUIET = 120.0
POST = {"type": "post", "submolt": "general", "title": "On small habits", "content": "Notes."}


@pytest.fixture
def env(tmp_path: Path, fake_ollama: FakeOllama, db_target: Path | str) -> Iterator[HeartbeatEnv]:
    # The real Ledger server on a loopback port: replies go through HTTP, as in the service.
    with heartbeat_env(
        tmp_path, fake_ollama, db_target=db_target, real_ledger=True, owner_quiet_seconds=QUIET
    ) as e:
        e.configure(enabled=True, every_seconds=1800, target="any")
        hs.install(fake_ollama, hs.silent)
        yield e


def answer(env: HeartbeatEnv, *actions: dict[str, Any]) -> None:
    reply = hs.decision(list(actions), "decided")
    env.fake.route("HeartbeatDecision", lambda req: Reply(content=reply))


def make_loop(env: HeartbeatEnv) -> HeartbeatLoop:
    return HeartbeatLoop(
        runner_factory=lambda: env.runner,
        interval_seconds=1800,
        enabled=True,
        db=env.db,
        clock=env.clock,
        reply_wake_seconds=120.0,
    )


# -- quiet while the owner talks ------------------------------------------------------------


def test_quiet_until_is_pure_time_maths() -> None:
    assert quiet_until(None, 120, 1000) is None
    assert quiet_until(950, 120, 1000) == 1070
    assert quiet_until(880, 120, 1000) is None
    assert quiet_until(999, 0, 1000) is None  # 0 turns the deferral off


def test_a_scheduled_run_waits_while_the_owner_talks_and_retries_soon(env: HeartbeatEnv) -> None:
    env.db.add_message("default", "user", "hang on, let me tell you about my day")
    env.clock.advance(30)
    run = env.runner.run("default", trigger="schedule")
    assert (run.outcome, run.reason) == ("skipped", "owner_active")
    assert run.retry_at == pytest.approx(env.clock.now + 90)
    assert "retrying at" in run.summary
    assert env.fake.calls_for("HeartbeatDecision") == []  # no LLM call
    hb = store.get_thread_heartbeat(env.db, "default")
    assert hb is not None and hb.next_due == pytest.approx(env.clock.now + 90)
    # the owner keeps talking: deferred again, from the newest message
    env.clock.advance(60)
    env.db.add_message("default", "user", "and another thing")
    run = env.runner.run("default", trigger="schedule")
    assert run.reason == "owner_active" and run.retry_at == pytest.approx(env.clock.now + QUIET)
    # quiet for the whole window: the run goes ahead
    env.clock.advance(QUIET)
    run = env.runner.run("default", trigger="schedule")
    assert run.outcome == "silent"
    assert len(env.fake.calls_for("HeartbeatDecision")) == 1


def test_the_assistants_own_messages_do_not_count_as_the_owner_talking(env: HeartbeatEnv) -> None:
    env.db.add_message("default", "assistant", "I answered you")
    assert env.runner.run("default", trigger="schedule").outcome == "silent"


def test_run_now_is_never_deferred(env: HeartbeatEnv) -> None:
    env.db.add_message("default", "user", "what do you think?")
    assert env.runner.run("default", trigger="manual").outcome == "silent"


def test_the_loop_retries_a_deferred_thread_at_the_end_of_the_quiet_window(
    env: HeartbeatEnv,
) -> None:
    loop = make_loop(env)
    hb = store.get_thread_heartbeat(env.db, "default")
    assert hb is not None and hb.next_due is not None
    env.clock.advance(hb.next_due - env.clock.now)
    env.db.add_message("default", "user", "busy talking")
    assert loop.tick().detail["runs"] == 1
    assert loop.next_delay() == pytest.approx(QUIET)
    env.clock.advance(QUIET)
    assert loop.tick().detail["runs"] == 1
    outcomes = [(r.outcome, r.reason) for r in store.list_runs(env.db, "default")]
    assert outcomes == [("silent", None), ("skipped", "owner_active")]


# -- wake on replies ------------------------------------------------------------------------


def own_post(env: HeartbeatEnv) -> str:
    answer(env, POST)
    run = env.runner.run("default", trigger="manual")
    assert run.outcome == "acted"
    post_id = run.actions[0].ledger_id
    assert post_id
    hs.install(env.fake, hs.silent)
    return post_id


def test_a_reply_wakes_its_thread_through_the_real_ledger(env: HeartbeatEnv) -> None:
    post_id = own_post(env)
    loop = make_loop(env)
    assert loop.tick().detail["runs"] == 0  # polled once: nothing new, nothing woken
    calls = len(env.fake.calls_for("HeartbeatDecision"))
    comment = env.neighbour.create_comment(post_id, "Why do you think so?")
    assert loop.tick().detail["runs"] == 0  # the next read waits for the interval
    assert loop.next_delay() == pytest.approx(120)
    env.clock.advance(120)

    def reply(request: dict[str, Any]) -> Reply:
        assert f"comment_id={comment.id}" in hs.prompt_text(request)
        return Reply(
            content=hs.decision(
                [
                    {
                        "type": "comment",
                        "post_id": post_id,
                        "parent_id": str(comment.id),
                        "content": "Because small steps add up.",
                    }
                ],
                "answered",
            )
        )

    env.fake.route("HeartbeatDecision", reply)
    detail = loop.tick().detail
    assert detail["runs"] == 1 and detail["reply_wakes"] == 1
    run = store.list_runs(env.db, "default")[0]
    assert (run.trigger, run.outcome) == ("reply", "acted")
    assert len(env.fake.calls_for("HeartbeatDecision")) == calls + 1
    comments = env.neighbour.list_comments(post_id).comments
    assert any(c.content == "Because small steps add up." for c in comments)
    assert wake.pending_wake(env.db, "default") is None
    assert store.count_runs_with(env.db, "reply") == 1


def test_no_new_reply_means_no_wake_and_no_llm_call(env: HeartbeatEnv) -> None:
    own_post(env)
    watcher = ReplyWatcher(env.runner, interval=120)
    before = store.get_thread_heartbeat(env.db, "default")
    assert watcher.poll() == 0
    assert watcher.status.polls == 1
    after = store.get_thread_heartbeat(env.db, "default")
    assert before is not None and after is not None and after.next_due == before.next_due
    assert len(env.fake.calls_for("HeartbeatDecision")) == 1  # only own_post's


def test_one_ledger_read_per_interval_for_the_whole_agent(env: HeartbeatEnv) -> None:
    own_post(env)
    first, second = ReplyWatcher(env.runner, interval=120), ReplyWatcher(env.runner, interval=120)
    first.poll()
    second.poll()  # another worker in the same interval: the DB lease says someone read
    assert (first.status.polls, second.status.polls) == (1, 0)
    env.clock.advance(120)
    second.poll()
    assert second.status.polls == 1


def test_a_reply_outside_active_hours_does_not_wake(env: HeartbeatEnv) -> None:
    post_id = own_post(env)
    hour = int((env.clock.now % 86_400) // 3600)
    env.configure(active_hours_start=(hour + 2) % 24, active_hours_end=(hour + 3) % 24)
    env.neighbour.create_comment(post_id, "Hello?")
    watcher = ReplyWatcher(env.runner, interval=120)
    assert watcher.poll() == 0
    assert watcher.status.replies_seen == 1
    assert wake.pending_wake(env.db, "default") is None


def test_a_reply_while_the_owner_talks_waits_for_the_quiet_window(env: HeartbeatEnv) -> None:
    post_id = own_post(env)
    env.neighbour.create_comment(post_id, "Hello?")
    assert ReplyWatcher(env.runner, interval=120).poll() == 1
    env.db.add_message("default", "user", "talking to you now")
    run = env.runner.run("default", trigger="schedule")
    assert (run.trigger, run.reason) == ("reply", "owner_active")
    assert wake.pending_wake(env.db, "default") is not None  # kept for the retry
    env.clock.advance(QUIET)
    run = env.runner.run("default", trigger="schedule")
    assert (run.trigger, run.outcome) == ("reply", "silent")
    assert wake.pending_wake(env.db, "default") is None
