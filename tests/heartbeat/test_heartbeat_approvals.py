"""Approval: proposed actions wait for the owner; approve (optionally edited) sends once with the
original key after validating again, reject and expiry close them, and the next prompt shows
the owner's edits and rejections. Real SQLite, the real Ledger on loopback, the fake Ollama."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support import heartbeat_scripts as hs
from support.fake_ollama import FakeOllama, Reply
from support.hb_env import HeartbeatEnv, heartbeat_env

from crt_loops.db import approvals as records
from crt_loops.db import heartbeats
from crt_loops.db.approvals import get_action
from crt_loops.db.session import SessionDB
from crt_loops.heartbeat import approvals
from crt_loops.heartbeat.approvals import ApprovalConflict, ApprovalDesk, ApprovalInvalid
from crt_loops.heartbeat.executor import HeartbeatRunner, RunnerDeps
from crt_loops.heartbeat.loop import HeartbeatLoop

POST = {"type": "post", "submolt": "general", "title": "On small habits", "content": "Notes."}


@pytest.fixture
def env(tmp_path: Path, fake_ollama: FakeOllama, db_target: Path | str) -> Iterator[HeartbeatEnv]:
    with heartbeat_env(tmp_path, fake_ollama, db_target=db_target) as e:
        e.configure(enabled=True, every_seconds=600, target="any", approval="posts")
        yield e


def answer(env: HeartbeatEnv, *actions: dict[str, Any]) -> None:
    reply = hs.decision(list(actions), "decided")
    env.fake.route("HeartbeatDecision", lambda req: Reply(content=reply))


def propose(env: HeartbeatEnv, thread_id: str = "default", **post: Any) -> int:
    answer(env, {**POST, **post})
    run = env.run(thread_id)
    assert run.outcome == "proposed", (run.outcome, run.reason, run.error)
    (action,) = run.actions
    assert action.state == "proposed"
    return action.id


def last_prompt(env: HeartbeatEnv) -> str:
    return hs.prompt_text(env.fake.calls_for("HeartbeatDecision")[-1])


def test_a_proposed_post_waits_and_is_sent_once_with_its_key_on_approval(
    env: HeartbeatEnv,
) -> None:
    action_id = propose(env)
    assert env.ledger_posts() == []
    (waiting,) = records.list_proposed(env.db)
    assert waiting.action.id == action_id
    assert waiting.expires_at == pytest.approx(env.clock.now + 86_400)
    assert waiting.as_api()["run_summary"] == "decided"
    desk = ApprovalDesk(env.runner)
    sent = desk.approve(action_id)
    assert sent.state == "sent" and sent.ledger_id
    (post,) = env.ledger_posts()
    assert str(post.id) == sent.ledger_id and post.title == POST["title"]
    assert sent.idempotency_key.endswith("-0")
    # a second click is a conflict that says the state, and nothing is posted again
    with pytest.raises(ApprovalConflict) as caught:
        desk.approve(action_id)
    assert caught.value.state == "sent" and "sent" in str(caught.value)
    assert len(env.ledger_posts()) == 1
    assert records.list_proposed(env.db) == []


def test_posts_mode_gates_only_posts_and_all_mode_gates_every_action(env: HeartbeatEnv) -> None:
    target = env.neighbour_post()
    answer(env, {"type": "vote", "post_id": target, "direction": "up"})
    run = env.run()
    assert (run.outcome, run.actions[0].state) == ("acted", "sent")
    env.configure(approval="all")
    other = env.neighbour_post("Another", "More.")
    answer(env, {"type": "comment", "post_id": other, "content": "Nice one."})
    run = env.run()
    assert (run.outcome, run.actions[0].state) == ("proposed", "proposed")


def test_a_run_with_sent_and_proposed_actions_is_acted_with_reason_proposed(
    env: HeartbeatEnv,
) -> None:
    target = env.neighbour_post()
    answer(env, POST, {"type": "vote", "post_id": target, "direction": "up"})
    run = env.run()
    assert (run.outcome, run.reason) == ("acted", "proposed")
    assert [a.state for a in run.actions] == ["proposed", "sent"]


def test_dry_run_never_proposes(env: HeartbeatEnv) -> None:
    answer(env, POST)
    run = env.run(force_dry_run=True)
    assert (run.outcome, run.actions[0].state) == ("dry_run", "dry_run")


def test_an_edited_post_is_sent_as_edited_and_the_next_prompt_says_what_changed(
    env: HeartbeatEnv,
) -> None:
    action_id = propose(env)
    sent = ApprovalDesk(env.runner).approve(
        action_id, edits={"title": "On tiny habits", "content": "Shorter notes."}
    )
    assert sent.state == "sent"
    (post,) = env.ledger_posts()
    assert (post.title, post.content) == ("On tiny habits", "Shorter notes.")
    answer(env)
    env.run()
    prompt = last_prompt(env)
    assert "What your owner changed or declined" in prompt
    assert "On small habits" in prompt and "On tiny habits" in prompt


def test_a_rejection_with_its_reason_is_shown_in_that_threads_next_prompt_only(
    env: HeartbeatEnv,
) -> None:
    action_id = propose(env)
    rejected = ApprovalDesk(env.runner).reject(action_id, reason="too preachy")
    assert rejected.state == "rejected" and rejected.error == "rejected: too preachy"
    assert env.ledger_posts() == []
    with pytest.raises(ApprovalConflict, match="rejected"):
        ApprovalDesk(env.runner).approve(action_id)
    answer(env)
    env.run()
    assert "declined your post" in last_prompt(env) and "too preachy" in last_prompt(env)
    env.configure("other", enabled=True, every_seconds=600)
    env.run("other")
    assert "too preachy" not in last_prompt(env)


@pytest.mark.parametrize(
    ("edits", "field"),
    [
        ({"content": "   "}, "content"),
        ({"title": "x" * 301}, "title"),
        ({"content": 5}, "content"),
        ({"parent_id": "abc"}, "parent_id"),
    ],
)
def test_a_bad_edit_is_refused_naming_the_field_and_the_action_stays_proposed(
    env: HeartbeatEnv, edits: dict[str, Any], field: str
) -> None:
    action_id = propose(env)
    with pytest.raises(ApprovalInvalid) as caught:
        ApprovalDesk(env.runner).approve(action_id, edits=edits)
    assert caught.value.field == field
    action = get_action(env.db, action_id)
    assert action is not None and action.state == "proposed"


def test_an_edit_carrying_a_secret_is_refused(env: HeartbeatEnv) -> None:
    action_id = propose(env)
    with pytest.raises(ApprovalInvalid, match="secret"):
        ApprovalDesk(env.runner).approve(action_id, edits={"content": f"key {env.api_key}"})
    assert env.ledger_posts() == []


def test_unanswered_proposals_expire_after_approval_ttl(env: HeartbeatEnv) -> None:
    env.configure(approval_ttl="1h")
    action_id = propose(env)
    env.clock.advance(3599)
    assert approvals.expire_due(env.db, env.clock.now) == 0
    env.clock.advance(2)
    assert approvals.expire_due(env.db, env.clock.now) == 1
    action = get_action(env.db, action_id)
    assert action is not None and action.state == "expired"
    with pytest.raises(ApprovalConflict) as caught:
        ApprovalDesk(env.runner).approve(action_id)
    assert caught.value.state == "expired"
    assert env.ledger_posts() == []


def test_approve_past_the_ttl_is_expired_even_before_any_expiry_pass(env: HeartbeatEnv) -> None:
    env.configure(approval_ttl="1h")
    action_id = propose(env)
    env.clock.advance(3601)
    with pytest.raises(ApprovalConflict, match="expired"):
        ApprovalDesk(env.runner).approve(action_id)


def test_approve_racing_expiry_has_exactly_one_winner(env: HeartbeatEnv) -> None:
    env.configure(approval_ttl="1h")
    outcomes: list[str] = []
    for _ in range(6):
        env.clock.advance(1900)  # past the post cooldown of the previous round, if any
        action_id = propose(env, title=f"Race {len(outcomes)}")
        env.clock.advance(3600 - 0.001)
        results = race(env, action_id)
        final = get_action(env.db, action_id)
        assert final is not None
        if final.state == "sent":
            assert results["approve"] == "sent" and results["expired"] == 0
        else:
            assert final.state == "expired" and results["approve"] == "conflict:expired"
        outcomes.append(final.state)
    sent = sum(1 for s in outcomes if s == "sent")
    assert len(env.ledger_posts()) == sent


def test_an_approved_post_no_longer_allowed_at_send_time_is_blocked_with_its_reason(
    tmp_path: Path, fake_ollama: FakeOllama
) -> None:
    with heartbeat_env(tmp_path, fake_ollama, post_cooldown=1800) as env:
        env.configure(enabled=True, every_seconds=600, approval="posts")
        env.configure("other", enabled=True, every_seconds=600)
        action_id = propose(env)
        answer(env, {**POST, "title": "Meanwhile elsewhere"})
        assert env.run("other").outcome == "acted"  # the cooldown now runs
        blocked = ApprovalDesk(env.runner).approve(action_id)
        assert blocked.state == "blocked"
        assert blocked.error is not None and blocked.error.startswith("rate_limited")
        assert [p.title for p in env.ledger_posts()] == ["Meanwhile elsewhere"]


def test_an_approved_comment_whose_post_is_gone_is_blocked(env: HeartbeatEnv) -> None:
    env.configure(approval="all")
    target = env.neighbour_post()
    answer(env, {"type": "comment", "post_id": target, "content": "Well said."})
    (action,) = env.run().actions
    env.neighbour.delete_post(target)
    blocked = ApprovalDesk(env.runner).approve(action.id)
    assert blocked.state == "blocked"
    assert blocked.error is not None and blocked.error.startswith("unknown_post")


def test_an_approved_duplicate_is_blocked(env: HeartbeatEnv) -> None:
    first = propose(env)
    env.clock.advance(10)
    second = propose(env, title="Another title")
    desk = ApprovalDesk(env.runner)
    assert desk.approve(first).state == "sent"
    same = {"title": POST["title"], "content": POST["content"]}
    blocked = desk.approve(second, edits=same)
    assert blocked.state == "blocked" and str(blocked.error).startswith("duplicate")


def test_approve_after_a_restart(tmp_path: Path, fake_ollama: FakeOllama) -> None:
    with heartbeat_env(tmp_path, fake_ollama) as env:
        env.configure(enabled=True, approval="posts")
        action_id = propose(env)
        env.db.close()
        db = SessionDB(tmp_path / "crt.db", clock=env.clock)
        try:
            runner = fresh_runner(env, db)
            assert runner.recover() == {"interrupted": 0, "resent": 0, "failed": 0}
            (waiting,) = records.list_proposed(db)
            assert waiting.action.id == action_id
            sent = ApprovalDesk(runner).approve(action_id)
            assert sent.state == "sent"
            assert len(env.ledger_posts()) == 1
        finally:
            db.close()


def test_an_approval_interrupted_before_the_ledger_answered_is_sent_once_by_recovery(
    env: HeartbeatEnv,
) -> None:
    action_id = propose(env)
    action = get_action(env.db, action_id)
    assert action is not None
    # The crash point: the approval's transaction (proposed -> pending) committed, and the
    # same key may even have reached the Ledger before the process died.
    with env.db.write() as tx:
        tx.execute("UPDATE heartbeat_actions SET state = 'pending' WHERE id = ?", (action_id,))
    key = action.idempotency_key
    env.ledger.create_post("general", POST["title"], "Notes.", idempotency_key=key)
    assert env.runner.recover()["resent"] == 1
    final = get_action(env.db, action_id)
    assert final is not None and final.state == "sent"
    assert len(env.ledger_posts()) == 1


def test_a_proposed_text_is_not_proposed_again_while_it_waits(env: HeartbeatEnv) -> None:
    propose(env)
    answer(env, POST)
    run = env.run()
    assert (run.outcome, run.reason) == ("silent", "duplicate")
    assert "On small habits" in last_prompt(env)  # shown among its recent actions


def race(env: HeartbeatEnv, action_id: int) -> dict[str, Any]:
    """Approve and expire one action at the same moment, from two threads."""
    start = threading.Barrier(2)
    results: dict[str, Any] = {}

    def do_approve() -> None:
        start.wait()
        try:
            results["approve"] = ApprovalDesk(env.runner).approve(action_id).state
        except ApprovalConflict as exc:
            results["approve"] = f"conflict:{exc.state}"

    def do_expire() -> None:
        start.wait()
        env.clock.advance(0.002)
        results["expired"] = approvals.expire_due(env.db, env.clock.now)

    threads = [threading.Thread(target=do_approve), threading.Thread(target=do_expire)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    return results


def fresh_runner(env: HeartbeatEnv, db: SessionDB) -> HeartbeatRunner:
    """The runner a restarted service builds: same settings, a new DB connection."""
    old = env.runner
    deps = RunnerDeps(
        db=db, llm=old.llm, ledger=old.ledger, heartbeat_md=old.heartbeat_md, clock=old.clock
    )
    return HeartbeatRunner(deps, old.options)


def test_store_keeps_expires_at(env: HeartbeatEnv) -> None:
    action_id = propose(env)
    run = heartbeats.list_runs(env.db, "default")[0]
    assert run.actions[0].as_api()["action_id"] == action_id


def test_the_heartbeat_loop_expires_proposals_on_its_ticks(env: HeartbeatEnv) -> None:
    env.configure(approval_ttl="1h")
    action_id = propose(env)
    loop = HeartbeatLoop(
        runner_factory=lambda: env.runner,
        interval_seconds=1800,
        enabled=True,
        db=env.db,
        clock=env.clock,
    )
    loop.tick()
    assert records.counts(env.db)["proposed"] == 1
    env.clock.advance(3601)
    loop.tick()
    action = get_action(env.db, action_id)
    assert action is not None and action.state == "expired"
    assert records.counts(env.db) == {"proposed": 0, "rejected": 0, "expired": 1}
