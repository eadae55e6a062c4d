"""One heartbeat end to end: every outcome and reason, the outbox, dry runs, recovery, backoff,
and the fault matrix: each fault leaves a run record with its reason, sends
nothing, and the next healthy run acts."""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support import heartbeat_scripts as hs
from support.fake_ollama import FakeOllama, Reply
from support.hb_env import HeartbeatEnv, heartbeat_env

from crt_loops.core import identity
from crt_loops.core.enums import ActionState
from crt_loops.core.server_thread import ServerThread
from crt_loops.db import heartbeat_claims, heartbeats
from crt_loops.db.heartbeats import OutboxRow
from crt_loops.heartbeat.context import FEED_LIMIT
from crt_loops.heartbeat.executor import BACKOFF_STEPS, HeartbeatBusy, LedgerLimits
from crt_loops.llm.schema import schema_max_tokens

POST = {"type": "post", "submolt": "general", "title": "On small habits", "content": "Notes."}


@pytest.fixture
def env(tmp_path: Path, fake_ollama: FakeOllama, db_target: Path | str) -> Iterator[HeartbeatEnv]:
    with heartbeat_env(tmp_path, fake_ollama, db_target=db_target) as e:
        e.configure(enabled=True, every_seconds=600, target="any")
        yield e


def answer(env: HeartbeatEnv, reply: Reply | str | Any) -> None:
    env.fake.route("HeartbeatDecision", reply if callable(reply) else (lambda req: reply))


def decide(*actions: dict[str, Any], summary: str = "decided") -> str:
    return hs.decision(list(actions), summary)


def healthy_run_acts(env: HeartbeatEnv) -> None:
    """After a fault: the next healthy run acts."""
    env.fake.release.set()
    hs.install(env.fake, hs.poster)
    run = env.run()
    assert (run.outcome, run.reason) == ("acted", None), run.error
    assert run.actions[0].state == "sent"


# -- outcomes --------------------------------------------------------------------------------


def test_acted_post_lands_once_with_outbox_record(env: HeartbeatEnv) -> None:
    answer(env, decide(POST, summary="shared a note"))
    run = env.run()
    assert (run.outcome, run.reason, run.summary) == ("acted", None, "shared a note")
    (action,) = run.actions
    assert action.state == "sent" and action.type == "post"
    assert action.idempotency_key == f"crt-{run.run_id}-0"
    posts = env.ledger_posts()
    assert [p.id for p in posts] == [action.ledger_id]
    assert posts[0].author == "crt"  # the key's agent, never a client-supplied name
    hb = heartbeats.get_thread_heartbeat(env.db, "default")
    assert hb is not None
    assert hb.last_outcome == "acted" and hb.last_summary == "shared a note"
    assert hb.last_actions[0]["ledger_id"] == action.ledger_id
    assert hb.last_run == env.clock.now
    assert run.prompt_chars and run.prompt_chars > 100
    assert run.model == "llama3.2:latest"


def test_llm_request_uses_config_model_tokens_temperature_and_keep_alive(env: HeartbeatEnv) -> None:
    env.configure(model="qwen3:8b", max_tokens=2345, temperature=0.2, every_seconds=3600)
    answer(env, "HEARTBEAT_OK")
    env.run()
    sent = env.fake.calls_for("HeartbeatDecision")[-1]
    assert sent["model"] == "qwen3:8b"
    assert sent["options"] == {"temperature": 0.2, "num_predict": 2345}
    assert sent["keep_alive"] == "4200s"  # longer than the interval: no cold load per run
    assert sent["format"]["title"] == "HeartbeatDecision"
    assert sent["format"]["properties"]["actions"]["maxItems"] == 3
    assert sent["format"]["additionalProperties"] is False


def test_max_tokens_is_never_below_what_the_schema_allows(env: HeartbeatEnv) -> None:
    env.configure(max_tokens=50, max_actions=1, target="comment")
    answer(env, "HEARTBEAT_OK")
    run = env.run()
    sent = env.fake.calls_for("HeartbeatDecision")[-1]
    schema = sent["format"]
    assert schema["properties"]["actions"]["maxItems"] == 1
    assert schema["properties"]["actions"]["items"]["properties"]["type"]["enum"] == ["comment"]
    assert sent["options"]["num_predict"] == schema_max_tokens(schema) > 50
    assert run.max_tokens == sent["options"]["num_predict"]


def test_cut_reply_is_recorded_with_what_was_cut(env: HeartbeatEnv) -> None:
    answer(env, Reply(content='{"summary": "I will post about', done_reason="length"))
    run = env.run()
    assert (run.outcome, run.reason) == ("failed", "invalid_decision")
    assert run.raw_reply == '{"summary": "I will post about'
    assert "cut at" in run.summary and "I will post about" in run.summary
    stored = heartbeats.list_runs(env.db, "default")[0]
    assert stored.raw_reply == run.raw_reply and stored.max_tokens == run.max_tokens


def test_run_records_the_calls_tokens(env: HeartbeatEnv) -> None:
    answer(env, "HEARTBEAT_OK")
    run = env.run()
    assert run.usage is not None
    assert run.usage.prompt_tokens == 10 and run.usage.completion_tokens == 1
    api = heartbeats.list_runs(env.db, "default")[0].as_api()
    assert api["tokens"]["prompt_tokens"] == 10 and api["tokens"]["generation_ms"] == 0.5


def test_unknown_model_fails_the_run_naming_the_model(env: HeartbeatEnv) -> None:
    env.configure(model="nosuch:3b")
    answer(env, "HEARTBEAT_OK")
    run = env.run()
    assert (run.outcome, run.reason) == ("failed", "llm_error")
    assert "nosuch:3b" in run.summary and "nosuch:3b" in (run.error or "")
    assert "llama3.2:latest" in (run.error or "")  # what the server does have


def test_heartbeat_ok_is_silence(env: HeartbeatEnv) -> None:
    answer(env, "  HEARTBEAT_OK  ")
    run = env.run()
    assert (run.outcome, run.reason, run.actions) == ("silent", None, [])
    assert env.ledger_posts() == []


def test_target_none_records_blocked_and_sends_nothing(env: HeartbeatEnv) -> None:
    env.configure(target="none")
    answer(env, decide(POST))
    run = env.run()
    assert (run.outcome, run.reason) == ("silent", "target")
    # The stored error is "reason: detail": why, in words, not only the code.
    assert [(a.state, a.error) for a in run.actions] == [
        ("blocked", "target: target is 'none': post not allowed")
    ]
    assert env.ledger_posts() == []


def test_target_list_allows_only_its_types(env: HeartbeatEnv) -> None:
    post_id = env.neighbour_post()
    env.configure(target="comment,vote")
    answer(
        env,
        decide(POST, {"type": "vote", "post_id": post_id, "direction": "up"}),
    )
    run = env.run()
    assert run.outcome == "acted"
    assert [(a.type, a.state) for a in run.actions] == [("post", "blocked"), ("vote", "sent")]
    assert env.ledger.get_post(post_id).score == 1


def test_dry_run_goes_through_the_whole_pipeline_and_sends_nothing(env: HeartbeatEnv) -> None:
    """The earlier system recorded dry runs as executed; ElizaOS v0 skipped the loop entirely."""
    answer(env, decide(POST))
    run = env.run(force_dry_run=True)
    assert (run.outcome, run.dry_run) == ("dry_run", True)
    assert [a.state for a in run.actions] == ["dry_run"]
    assert env.fake.calls_for("HeartbeatDecision"), "a dry run still asks the LLM"
    assert env.ledger_posts() == []
    env.configure(dry_run=True)
    run = env.run()
    assert run.outcome == "dry_run" and env.ledger_posts() == []


def test_duplicate_text_within_24h_is_blocked(env: HeartbeatEnv) -> None:
    answer(env, decide(POST))
    assert env.run().outcome == "acted"
    env.clock.advance(3600)
    run = env.run()
    assert (run.outcome, run.reason) == ("silent", "duplicate")
    assert len(env.ledger_posts()) == 1
    env.clock.advance(86_400)
    assert env.run().outcome == "acted"  # a day later the same words are allowed again


def test_unknown_post_id_is_blocked_not_sent(env: HeartbeatEnv) -> None:
    """The earlier prompt asked for post ids it never showed; ours shows them and checks them."""
    shown = env.neighbour_post()
    answer(env, decide({"type": "comment", "post_id": "p_0000000000000000", "content": "Hi"}))
    run = env.run()
    assert (run.outcome, run.reason) == ("silent", "unknown_post")
    prompt = hs.prompt_text(env.fake.calls_for("HeartbeatDecision")[-1])
    assert f"post_id={shown}" in prompt


def test_no_second_vote_on_the_same_post(env: HeartbeatEnv) -> None:
    post_id = env.neighbour_post()
    answer(env, decide({"type": "vote", "post_id": post_id, "direction": "up"}))
    assert env.run().outcome == "acted"
    run = env.run()
    assert (run.outcome, run.reason) == ("silent", "already_voted")
    assert env.ledger.get_post(post_id).score == 1


def test_a_vote_on_an_own_post_the_feed_no_longer_shows_is_a_self_vote(env: HeartbeatEnv) -> None:
    """The history is read about what the prompt shows; a decision naming anything else is
    refused with what the history says of that id, not only "not shown"."""
    answer(env, decide(POST))
    assert env.run().outcome == "acted"
    (own,) = [p.id for p in env.ledger_posts()]
    for i in range(FEED_LIMIT + 1):  # newer posts push the agent's own out of the hot feed
        env.neighbour_post(f"post {i}", f"text {i}")
    answer(env, decide({"type": "vote", "post_id": own, "direction": "up"}))
    run = env.run()
    assert f"post_id={own}" not in hs.prompt_text(env.fake.calls_for("HeartbeatDecision")[-1])
    assert (run.outcome, run.reason) == ("silent", "self_vote")
    assert run.actions[0].state == "blocked"


def test_post_cooldown_known_ahead_of_a_429(tmp_path: Path, fake_ollama: FakeOllama) -> None:
    with heartbeat_env(tmp_path, fake_ollama, post_cooldown=1800) as env:
        env.configure(enabled=True, every_seconds=600)
        hs.install(fake_ollama, hs.poster)
        assert env.run().outcome == "acted"
        run = env.run()
        assert (run.outcome, run.reason) == ("silent", "rate_limited")
        assert run.actions[0].state == "blocked"
        assert len(env.ledger_posts()) == 1


def test_max_actions_caps_a_run(env: HeartbeatEnv) -> None:
    ids = [env.neighbour_post(f"post {i}", f"text {i}") for i in range(3)]
    env.configure(max_actions=2)
    answer(env, decide(*[{"type": "vote", "post_id": i, "direction": "up"} for i in ids]))
    run = env.run()
    assert [a.state for a in run.actions] == ["sent", "sent", "blocked"]
    assert run.actions[2].error == "max_actions: max_actions is 2"


def test_replies_to_comments_on_own_posts_first_and_only_once(env: HeartbeatEnv) -> None:
    answer(env, decide(POST))
    own = env.run().actions[0].ledger_id
    assert own
    comment = env.neighbour.create_comment(own, "Interesting - why do you think so?")

    def reply(request: dict[str, Any]) -> Reply:
        text = hs.prompt_text(request)
        assert f"comment_id={comment.id}" in text
        return Reply(
            content=decide(
                {"type": "comment", "post_id": own, "parent_id": comment.id, "content": "Because."}
            )
        )

    answer(env, reply)
    run = env.run()
    assert run.outcome == "acted", run.actions
    # answered: not shown again, and a second reply is refused
    answer(
        env,
        decide(
            {
                "type": "comment",
                "post_id": own,
                "parent_id": comment.id,
                "content": "Because, again.",
            }
        ),
    )
    run = env.run()
    assert run.outcome == "silent"
    assert f"comment_id={comment.id}" not in hs.prompt_text(
        env.fake.calls_for("HeartbeatDecision")[-1]
    )


def test_activity_survives_a_failed_run(env: HeartbeatEnv) -> None:
    """/home shows a new comment once; a run that fails after reading it must not lose it."""
    answer(env, decide(POST))
    own = env.run().actions[0].ledger_id
    assert own
    comment = env.neighbour.create_comment(own, "A question for you")
    answer(env, Reply(status=500, error="boom"))
    assert env.run().outcome == "failed"
    answer(env, "HEARTBEAT_OK")
    env.run()
    assert f"comment_id={comment.id}" in hs.prompt_text(env.fake.calls_for("HeartbeatDecision")[-1])


class HeldReads:
    """The env's in-process Ledger, seen from a LedgerClient: ``GET /home`` is answered only
    once the feed's ``GET /posts`` has arrived too (or a deadline has passed), and the feed is
    answered only once ``release`` is set. What each saw is kept for the test to read."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.feed_arrived = threading.Event()
        self.home_answered = threading.Event()
        self.release = threading.Event()
        self.release.set()
        self.home_saw_feed: bool | None = None
        self.feed_done = threading.Event()
        self.home_status = 200

    @property
    def is_closed(self) -> bool:
        return bool(self.inner.is_closed)

    def request(self, method: str, url: Any, **kwargs: Any) -> Any:
        path = str(url).split("?")[0]
        if method == "GET" and path.endswith("/posts"):
            self.feed_arrived.set()
            assert self.release.wait(10), "the test never released the feed's read"
            try:
                return self.inner.request(method, url, **kwargs)
            finally:
                self.feed_done.set()
        if method == "GET" and path.endswith("/home"):
            self.home_saw_feed = self.feed_arrived.wait(5)
            try:
                if self.home_status != 200:
                    import httpx

                    request = httpx.Request(method, str(url))
                    return httpx.Response(self.home_status, json={"error": "down"}, request=request)
                return self.inner.request(method, url, **kwargs)
            finally:
                self.home_answered.set()
        return self.inner.request(method, url, **kwargs)


def held_ledger(env: HeartbeatEnv) -> HeldReads:
    """Puts a LedgerClient over :class:`HeldReads` in the runner's place; returns the probe."""
    from crt_loops.ledger.client import LedgerClient

    held = HeldReads(env.ledger._http)
    env.runner.ledger = LedgerClient(
        env.ledger.base_url, env.api_key, http_client=held, max_retries=0
    )
    return held


def test_home_and_the_feed_are_read_at_once(env: HeartbeatEnv) -> None:
    """One round trip to a remote Ledger for both reads, not two: /home is not answered
    until the feed's request has been made too."""
    env.neighbour_post("Something to see")
    held = held_ledger(env)
    answer(env, "HEARTBEAT_OK")
    run = env.run()
    assert held.home_saw_feed is True, "the feed was read only after /home's answer"
    assert run.outcome == "silent"
    sent = hs.prompt_text(env.fake.calls_for("HeartbeatDecision")[-1])
    assert "Something to see" in sent, "the feed read in parallel reached the prompt"


def test_a_failed_home_waits_for_the_feed_before_the_verdict(env: HeartbeatEnv) -> None:
    """/home fails while the feed is still being read: the run's verdict (ledger_error) comes
    only after the feed's request ended, so no request of a run outlives it."""
    held = held_ledger(env)
    held.home_status = 503
    held.release.clear()
    done: list[heartbeats.RunRecord] = []
    runner = threading.Thread(target=lambda: done.append(env.run()), name="run")
    runner.start()
    assert held.home_answered.wait(10), "/home was never asked"
    assert not held.feed_done.is_set()
    held.release.set()
    runner.join(10)
    assert not runner.is_alive()
    assert held.feed_done.is_set()
    (run,) = done
    assert (run.outcome, run.reason) == ("failed", "ledger_error")
    assert env.fake.calls_for("HeartbeatDecision") == []


# -- gates -----------------------------------------------------------------------------------


def test_disabled_thread_is_skipped_by_the_schedule_but_run_now_is_forced(
    env: HeartbeatEnv,
) -> None:
    env.configure(enabled=False)
    answer(env, "HEARTBEAT_OK")
    run = env.run(trigger="schedule")
    assert (run.outcome, run.reason) == ("skipped", "disabled")
    assert env.fake.chat_calls == []
    assert env.run(trigger="manual").outcome == "silent"


def test_quiet_hours_skip_and_reschedule_to_the_window(env: HeartbeatEnv) -> None:
    # FakeClock starts 2026-01-01T00:00Z; 09:00-17:00 in New York is 14:00-22:00 UTC.
    env.configure(active_hours_start="09:00", active_hours_end="17:00", timezone="America/New_York")
    answer(env, "HEARTBEAT_OK")
    run = env.run(trigger="schedule")
    assert (run.outcome, run.reason) == ("skipped", "quiet_hours")
    assert env.fake.chat_calls == []
    hb = heartbeats.get_thread_heartbeat(env.db, "default")
    assert hb is not None and hb.next_due is not None
    assert 14 * 3600 <= hb.next_due - env.clock.now < 22 * 3600
    # run-now bypasses active hours
    assert env.run(trigger="manual").outcome == "silent"
    env.clock.advance(15 * 3600)  # 15:00 UTC = 10:00 in New York
    assert env.run(trigger="schedule").reason != "quiet_hours"


@pytest.mark.parametrize(
    "content", [None, "", "# HEARTBEAT\n\n## Checklist\n- \n<!-- nothing -->\n"]
)
def test_effectively_empty_instructions_skip_without_llm(
    env: HeartbeatEnv, content: str | None
) -> None:
    if content is None:
        env.md.unlink()
    else:
        env.md.write_text(content, encoding="utf-8")
    run = env.run()
    assert (run.outcome, run.reason) == ("skipped", "empty_instructions")
    assert env.fake.chat_calls == []


def test_llm_unavailable_skips_without_a_call(tmp_path: Path) -> None:
    fake = FakeOllama().start()
    url = fake.url
    fake.stop()  # nothing listens there now
    with FakeOllama() as other, heartbeat_env(tmp_path, other) as env:
        env.runner.llm = type(env.llm)(url, "llama3.2:latest")
        env.configure(enabled=True)
        run = env.run()
        assert (run.outcome, run.reason) == ("skipped", "llm_unavailable")
        assert other.chat_calls == []


def test_nothing_new_skips_scheduled_runs_but_not_run_now(env: HeartbeatEnv) -> None:
    answer(env, "HEARTBEAT_OK")
    assert env.run(trigger="schedule").outcome == "silent"
    calls = len(env.fake.chat_calls)
    run = env.run(trigger="schedule")
    assert (run.outcome, run.reason) == ("skipped", "no_new_context")
    assert len(env.fake.chat_calls) == calls
    assert env.run(trigger="manual").outcome == "silent"
    env.db.add_message("default", "user", "Something new happened")
    assert env.run(trigger="schedule").outcome == "silent"


def test_busy_thread_refuses_run_now_and_schedule_retries_shortly(env: HeartbeatEnv) -> None:
    assert heartbeat_claims.take_thread_lease(env.db, "default", "someone-else", 60)
    with pytest.raises(HeartbeatBusy):
        env.run()
    env.runner.record_busy("default", retry_in=15)
    (run,) = heartbeats.list_runs(env.db, "default")
    assert (run.outcome, run.reason) == ("skipped", "busy")
    hb = heartbeats.get_thread_heartbeat(env.db, "default")
    assert hb is not None and hb.next_due == env.clock.now + 15  # not a whole interval later


# -- recovery ------------------------------------------------------------------------------


def test_recovery_closes_interrupted_runs_and_resends_pending_once(env: HeartbeatEnv) -> None:
    # A crash between the outbox write and the Ledger call: simulate its leftovers exactly.
    heartbeats.start_run(
        env.db,
        run_id="r1",
        thread_id="default",
        trigger="schedule",
        dry_run=False,
        now=env.clock.now,
    )
    heartbeats.add_actions(
        env.db,
        "r1",
        "default",
        [
            OutboxRow(
                seq=0,
                type="post",
                payload={"submolt": "general", "title": "T", "content": "C"},
                state=ActionState.PENDING,
                idempotency_key="crt-r1-0",
            )
        ],
    )
    # ... and the same key already landed once before the crash (the Ledger deduplicates).
    env.ledger.create_post("general", "T", "C", idempotency_key="crt-r1-0")
    # The crashed holder was a process on this host that no longer exists.
    import subprocess
    import sys

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    assert heartbeat_claims.take_thread_lease(
        env.db, "default", f"{identity.HOSTNAME}:{dead.pid}:x", 600
    )
    result = env.runner.recover()
    assert result == {"interrupted": 1, "resent": 1, "failed": 0}
    run = heartbeats.get_run(env.db, "r1")
    assert run is not None and (run.outcome, run.reason) == ("failed", "interrupted")
    assert run.actions[0].state == "sent"
    assert len(env.ledger_posts()) == 1
    assert env.runner.recover() == {"interrupted": 0, "resent": 0, "failed": 0}


def test_recovery_leaves_a_live_holders_run_until_its_lease_expires(env: HeartbeatEnv) -> None:
    heartbeats.start_run(
        env.db,
        run_id="r2",
        thread_id="default",
        trigger="schedule",
        dry_run=False,
        now=env.clock.now,
    )
    assert heartbeat_claims.take_thread_lease(env.db, "default", "other-host:4242:x", 600)
    assert env.runner.recover()["interrupted"] == 0  # another machine may still be running it
    env.clock.advance(601)
    assert env.runner.recover()["interrupted"] == 1


# -- backoff ---------------------------------------------------------------------------------


def test_consecutive_failures_back_off_and_reset_on_success(env: HeartbeatEnv) -> None:
    env.configure(every_seconds=600)
    answer(env, Reply(status=500, error="model crashed"))
    gaps = []
    for _ in range(5):
        env.run(trigger="schedule")
        hb = heartbeats.get_thread_heartbeat(env.db, "default")
        assert hb is not None and hb.next_due is not None
        gaps.append(hb.next_due - env.clock.now)
        env.clock.advance(1)
    assert gaps == [BACKOFF_STEPS[0], BACKOFF_STEPS[1], BACKOFF_STEPS[2], 600, 600]
    assert hb.failures == 5
    answer(env, "HEARTBEAT_OK")
    env.run(trigger="schedule")
    hb = heartbeats.get_thread_heartbeat(env.db, "default")
    assert hb is not None and hb.failures == 0 and hb.next_due == env.clock.now + 600


# -- fault matrix: Ollama ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reply", "outcome", "reason"),
    [
        (Reply(status=500, error="runner crashed"), "failed", "llm_error"),
        (Reply(status=429, error="too many requests"), "failed", "llm_error"),
        (Reply(raw_body=b"<html>bad gateway</html>"), "failed", "llm_error"),
        (Reply(raw_body=b'{"error": "out of memory"}'), "failed", "llm_error"),
        (
            Reply(content='{"actions": [{"type": "post", "title": "cut', done_reason="length"),
            "failed",
            "invalid_decision",
        ),
        (Reply(content="I think I will post something nice today."), "failed", "invalid_decision"),
        (Reply(content='{"action": null}'), "silent", None),
        (
            Reply(content=decide({"type": "vote", "post_id": "nope", "direction": "sideways"})),
            "silent",
            "invalid",
        ),
    ],
    ids=[
        "500",
        "429",
        "garbage",
        "error-in-200",
        "cut-short",
        "prose",
        "legacy-null",
        "bad-actions",
    ],
)
def test_ollama_faults(env: HeartbeatEnv, reply: Reply, outcome: str, reason: str | None) -> None:
    answer(env, reply)
    run = env.run()
    assert (run.outcome, run.reason) == (outcome, reason), run.error
    assert all(a.state in ("blocked",) for a in run.actions)
    if outcome == "failed":
        assert run.error
    assert env.ledger_posts() == []
    healthy_run_acts(env)


def test_ollama_unknown_model(env: HeartbeatEnv) -> None:
    env.configure(model="missing:1b")
    run = env.run()
    assert (run.outcome, run.reason) == ("failed", "llm_error")
    assert "ollama pull missing:1b" in (run.error or "")
    env.configure(model=None)
    healthy_run_acts(env)


def test_ollama_timeout(tmp_path: Path, fake_ollama: FakeOllama) -> None:
    with heartbeat_env(tmp_path, fake_ollama, llm_timeout=0.3) as env:
        env.configure(enabled=True)
        answer(env, Reply(content="HEARTBEAT_OK", delay=1.0))
        run = env.run()
        assert (run.outcome, run.reason) == ("failed", "llm_timeout")
        assert env.ledger_posts() == []
        healthy_run_acts(env)


def test_ollama_refused_mid_run(env: HeartbeatEnv) -> None:
    answer(env, Reply(drop=True))
    run = env.run()
    assert run.outcome in ("failed", "skipped")
    assert run.reason in ("llm_error", "llm_unavailable")
    assert env.ledger_posts() == []
    env.llm.available(refresh=True)
    healthy_run_acts(env)


# -- fault matrix: the Ledger -----------------------------------------------------------------


def test_ledger_refused(tmp_path: Path, fake_ollama: FakeOllama) -> None:
    # A real server, so that stopping it leaves a port that refuses connections.
    with heartbeat_env(tmp_path, fake_ollama, real_ledger=True) as env:
        env.configure(enabled=True, every_seconds=600, target="any")
        assert env.ledger_server is not None
        answer(env, decide(POST))
        port = env.ledger_server.port
        env.ledger_server.stop()
        run = env.run()
        assert (run.outcome, run.reason) == ("failed", "ledger_error")
        assert env.fake.calls_for("HeartbeatDecision") == []  # no LLM call without a Ledger
        # bring it back on the same port: the next healthy run acts
        from support.hb_env import Settings, create_ledger_app

        settings = Settings(  # type: ignore[call-arg]
            _env_file=None, data_dir=env.tmp / "data", ledger_post_cooldown_seconds=0
        )
        env.ledger_server = ServerThread(
            create_ledger_app(settings, clock=env.clock), port=port or 0
        )
        env.ledger_server.start()
        healthy_run_acts(env)


def test_ledger_429_with_retry_after(tmp_path: Path, fake_ollama: FakeOllama) -> None:
    # The runner does not know the cooldown ahead (an external Ledger), so the Ledger says 429.
    with heartbeat_env(
        tmp_path, fake_ollama, post_cooldown=1800, known_limits=LedgerLimits(0, 0, 50)
    ) as env:
        env.configure(enabled=True)
        hs.install(fake_ollama, hs.poster)
        assert env.run().outcome == "acted"
        run = env.run()
        assert (run.outcome, run.reason) == ("failed", "rate_limited")
        assert run.actions[0].state == "failed" and "rate_limited" in (run.actions[0].error or "")
        assert len(env.ledger_posts()) == 1
        env.clock.advance(1801)
        assert env.run().outcome == "acted"


def test_ledger_target_gone_404(env: HeartbeatEnv) -> None:
    post_id = env.neighbour_post()

    def comment_then_delete(request: dict[str, Any]) -> Reply:
        env.neighbour.delete_post(post_id)  # gone between the feed read and the comment
        return Reply(content=decide({"type": "comment", "post_id": post_id, "content": "Nice"}))

    answer(env, comment_then_delete)
    run = env.run()
    assert (run.outcome, run.reason) == ("failed", "ledger_error")
    assert run.actions[0].state == "failed"
    healthy_run_acts(env)


@pytest.mark.parametrize("mode", ["500", "slow"])
def test_ledger_500_and_slow(tmp_path: Path, fake_ollama: FakeOllama, mode: str) -> None:
    import httpx
    from fastapi import FastAPI
    from fastapi.responses import JSONResponse

    from crt_loops.ledger.client import LedgerClient

    broken = FastAPI()
    stall = threading.Event()

    @broken.get("/api/v1/home")
    def home() -> JSONResponse:
        if mode == "slow":
            stall.wait(3)
            return JSONResponse({"success": True})
        return JSONResponse({"success": False, "error": "db down"}, status_code=500)

    with heartbeat_env(tmp_path, fake_ollama) as env, ServerThread(broken) as bad:
        env.configure(enabled=True)
        good = env.runner.ledger
        env.runner.ledger = LedgerClient(
            bad.url + "/api/v1",
            "k",
            max_retries=1,
            backoff_base=0.01,
            timeout=httpx.Timeout(0.3, connect=0.3),
        )
        run = env.run()
        stall.set()
        assert (run.outcome, run.reason) == ("failed", "ledger_error")
        assert run.error
        assert env.fake.calls_for("HeartbeatDecision") == []
        env.runner.ledger.close()
        env.runner.ledger = good
        healthy_run_acts(env)


# -- fault matrix: SQLite and HEARTBEAT.md ---------------------------------------------------


def test_sqlite_busy_past_its_timeout(tmp_path: Path, fake_ollama: FakeOllama) -> None:
    with heartbeat_env(tmp_path, fake_ollama, busy_timeout_ms=200) as env:
        env.configure(enabled=True)
        locked = threading.Event()
        release = threading.Event()

        def hold_lock() -> None:
            conn = sqlite3.connect(env.db.path, isolation_level=None)
            conn.execute("BEGIN IMMEDIATE")
            locked.set()
            release.wait(10)
            conn.execute("ROLLBACK")
            conn.close()

        holder = threading.Thread(target=hold_lock, name="lock-holder")

        def decide_while_locked(request: dict[str, Any]) -> Reply:
            holder.start()
            locked.wait(5)
            # release after the executor's outbox write has timed out (200 ms busy timeout)
            threading.Timer(0.6, release.set).start()
            return Reply(content=decide(POST))

        answer(env, decide_while_locked)
        run = env.run()
        holder.join(10)
        assert (run.outcome, run.reason) == ("failed", "db_error")
        assert "locked" in (run.error or "")
        assert env.ledger_posts() == []
        healthy_run_acts(env)


def test_heartbeat_md_unreadable(env: HeartbeatEnv) -> None:
    env.md.write_bytes(b"\xff\xfe not utf-8 \xff")
    run = env.run()
    assert (run.outcome, run.reason) == ("failed", "instructions_error")
    assert env.fake.chat_calls == []
    env.md.unlink()
    env.md.mkdir()  # a directory where the file should be
    run = env.run()
    assert (run.outcome, run.reason) == ("failed", "instructions_error")
    env.md.rmdir()
    env.md.write_text("## Checklist\n- Post a note\n", encoding="utf-8")
    healthy_run_acts(env)


def test_run_records_are_json_friendly(env: HeartbeatEnv) -> None:
    answer(env, decide(POST))
    record = env.run().as_api()
    assert json.loads(json.dumps(record))["outcome"] == "acted"
    assert record["started_at"].endswith("Z") and record["finished_at"].endswith("Z")
    assert set(record) >= {
        "run_id",
        "thread_id",
        "trigger",
        "outcome",
        "reason",
        "dry_run",
        "summary",
        "actions",
        "started_at",
        "finished_at",
        "duration_ms",
        "error",
    }
    assert set(record["actions"][0]) >= {
        "type",
        "title",
        "content",
        "submolt",
        "state",
        "ledger_id",
        "error",
        "idempotency_key",
    }


def test_concurrent_partial_config_updates_lose_nothing(env: HeartbeatEnv) -> None:
    """Read-merge-write is one transaction: two partial POSTs at once keep both fields."""
    fields = [
        {"max_actions": 2},
        {"temperature": 0.3},
        {"submolt": "reflections"},
        {"max_tokens": 256},
        {"target": "post,comment"},
        {"dry_run": True},
    ]
    barrier = threading.Barrier(len(fields))

    def update(patch: dict[str, Any]) -> None:
        barrier.wait(5)
        env.runner.update_config("default", patch)

    threads = [threading.Thread(target=update, args=(p,)) for p in fields]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    hb = heartbeats.get_thread_heartbeat(env.db, "default")
    assert hb is not None
    cfg = hb.config
    assert (
        cfg.max_actions,
        cfg.temperature,
        cfg.submolt,
        cfg.max_tokens,
        cfg.target,
        cfg.dry_run,
    ) == (2, 0.3, "reflections", 256, "post,comment", True)
    assert cfg.enabled is True and cfg.every_seconds == 600  # set before, kept


def test_a_post_made_during_the_llm_call_counts_for_the_cooldown(
    tmp_path: Path, fake_ollama: FakeOllama
) -> None:
    with heartbeat_env(tmp_path, fake_ollama, post_cooldown=1800) as env:
        env.configure(enabled=True)
        env.db.ensure_thread("other")

        def another_run_posts_meanwhile(request: dict[str, Any]) -> Reply:
            # Another thread's heartbeat (maybe another worker) sends a post while this run
            # waits on the model: its outbox record is what this run must see.
            heartbeats.start_run(
                env.db,
                run_id="o1",
                thread_id="other",
                trigger="schedule",
                dry_run=False,
                now=env.clock.now,
            )
            heartbeats.add_actions(
                env.db,
                "o1",
                "other",
                [
                    OutboxRow(
                        seq=0,
                        type="post",
                        payload={"submolt": "general", "title": "X", "content": "Y"},
                        state=ActionState.SENT,
                        idempotency_key="crt-o1-0",
                    )
                ],
            )
            return Reply(content=decide(POST))

        answer(env, another_run_posts_meanwhile)
        run = env.run()
        assert (run.outcome, run.reason) == ("silent", "rate_limited")
        assert env.ledger_posts() == []


def test_prompt_shows_the_latest_reflection_however_much_journal_followed(
    env: HeartbeatEnv,
) -> None:
    """It once looked only at the 20 newest journal entries, so a busy journal hid it."""
    from crt_loops.db.journal import insert_entry

    with env.db.write() as tx:
        now = env.clock.now
        insert_entry(
            tx,
            thread_id="default",
            entry_type="reflection",
            title="Insight",
            body="I keep coming back to gardening.",
            created_at=now,
        )
        for i in range(25):
            insert_entry(
                tx,
                thread_id="default",
                entry_type="self_reply",
                title=f"Reply {i}",
                body="More thoughts.",
                created_at=now,
            )
    answer(env, "HEARTBEAT_OK")
    env.run()
    prompt = hs.prompt_text(env.fake.calls_for("HeartbeatDecision")[-1])
    assert "I keep coming back to gardening." in prompt


def test_lone_surrogates_from_the_model_do_not_cost_the_runs_actions(env: HeartbeatEnv) -> None:
    post = {"type": "post", "title": "Bread \ud800 notes", "content": "Rye \udfff works well"}
    answer(env, decide(post, summary="sharing \ud83d a note"))
    run = env.run()
    assert (run.outcome, run.reason) == ("acted", None), run.error
    assert run.summary == "sharing \ufffd a note"
    posts = env.ledger_posts()
    assert [p.title for p in posts] == ["Bread \ufffd notes"]
    api = heartbeats.list_runs(env.db, "default")[0].as_api()
    json.dumps(api, ensure_ascii=False).encode("utf-8")  # stored in a form that serialises


def test_a_trickling_model_ends_at_the_deadline_and_frees_the_slot(
    tmp_path: Path, fake_ollama: FakeOllama
) -> None:
    with heartbeat_env(tmp_path, fake_ollama, llm_timeout=0.5) as env:
        env.configure(enabled=True, every_seconds=600, target="any")
        # A token every 0.1 s for 100 tokens: no read ever waits long, the whole takes 10 s.
        answer(env, Reply(content=" ".join(["tok"] * 100), chunk_delay=0.1))
        run = env.run()
        assert (run.outcome, run.reason) == ("failed", "llm_timeout"), run.error
        assert run.llm_ms is not None and 500 <= run.llm_ms < 5000  # its deadline, not 10 s
        answer(env, "HEARTBEAT_OK")  # the slot is free: the next run gets its answer
        assert env.run().outcome == "silent"
