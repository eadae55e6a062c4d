"""heartbeat.social_actions: follow and subscribe actions, validated like votes, and the rule
that the agent never comments twice in one thread of conversation."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support import heartbeat_scripts as hs
from support.fake_ollama import FakeOllama
from support.hb_env import HeartbeatEnv, heartbeat_env

from crt_loops.core.enums import BlockReason
from crt_loops.db.agent_history import AgentHistory
from crt_loops.heartbeat.config import HeartbeatConfig
from crt_loops.heartbeat.context import Activity, FeedPost, HeartbeatContext, read_home
from crt_loops.heartbeat.decision import CommentAction, Decision, parse_decision
from crt_loops.heartbeat.social_actions import (
    FollowAction,
    SocialContext,
    SubscribeAction,
    context,
    key,
)
from crt_loops.heartbeat.validation import ValidationContext, validate_actions

SOCIAL = SocialContext(
    own_name="crt", shown_agents={"Alice", "bob"}, shown_submolts={"general", "tea"}
)


def validate(*actions: Any, target: str = "any", **social: Any) -> list[tuple[bool, Any]]:
    vctx = ValidationContext(
        config=HeartbeatConfig(max_actions=5, target=target),
        now=0.0,
        shown_post_ids={"p1", "p2"},
        social=SocialContext(**{**SOCIAL.__dict__, **social}),
    )
    return [(v.allowed, v.reason) for v in validate_actions(Decision(actions=list(actions)), vctx)]


def test_follow_and_subscribe_parse_from_what_models_write() -> None:
    result = parse_decision(
        '{"summary": "s", "actions": [{"type": "follow", "agent": "@alice"},'
        ' {"type": "subscribe", "submolt": "m/tea"}]}'
    )
    assert result.ok and result.decision is not None
    follow, subscribe = result.decision.actions
    assert isinstance(follow, FollowAction) and follow.agent_name == "@alice"
    assert isinstance(subscribe, SubscribeAction) and key(subscribe) == "submolt:tea"


def test_follow_and_subscribe_are_validated_like_votes() -> None:
    assert validate(FollowAction(agent_name="alice"), SubscribeAction(submolt="tea")) == [
        (True, None),
        (True, None),
    ]
    assert validate(
        FollowAction(agent_name="crt"),
        FollowAction(agent_name="stranger"),
        FollowAction(agent_name="bad name!"),
        SubscribeAction(submolt="nowhere"),
    ) == [
        (False, BlockReason.SELF_VOTE),
        (False, BlockReason.UNKNOWN_POST),
        (False, BlockReason.INVALID),
        (False, BlockReason.UNKNOWN_POST),
    ]
    # Twice in one run, or once more after an earlier run: duplicate.
    assert validate(FollowAction(agent_name="bob"), FollowAction(agent_name="BOB")) == [
        (True, None),
        (False, BlockReason.DUPLICATE),
    ]
    assert validate(SubscribeAction(submolt="tea"), done={"submolt:tea"}) == [
        (False, BlockReason.DUPLICATE)
    ]
    # They ride on the vote target: a post-only config blocks them.
    assert validate(FollowAction(agent_name="bob"), target="post") == [(False, BlockReason.TARGET)]
    assert validate(FollowAction(agent_name="bob"), target="vote") == [(True, None)]


def test_never_two_comments_in_one_thread() -> None:
    top = CommentAction(post_id="p1", content="first thought")
    again = CommentAction(post_id="p1", content="a different second thought")
    reply = CommentAction(post_id="p1", content="to you", parent_id="c9")
    reply_again = CommentAction(post_id="p1", content="to you again", parent_id="c9")
    other = CommentAction(post_id="p2", content="elsewhere")
    assert validate(top, again, reply, reply_again, other, shown_agents=set()) == [
        (True, None),
        (False, BlockReason.DUPLICATE),
        (True, None),
        (False, BlockReason.DUPLICATE),
        (True, None),
    ]
    earlier = {"post:p1", "reply:c9"}
    assert validate(top, reply, done=earlier) == [
        (False, BlockReason.DUPLICATE),
        (False, BlockReason.DUPLICATE),
    ]


def test_the_context_comes_from_the_prompt_and_the_history() -> None:
    ctx = HeartbeatContext(
        thread_id="t",
        messages=[],
        reflection=None,
        personality=None,
        recent_runs=[],
        recent_actions=[],
    )
    ctx.feed = [
        FeedPost(
            id="p1",
            title="t",
            author="alice",
            submolt="tea",
            score=0,
            comment_count=0,
            snippet="",
            own=False,
        )
    ]
    ctx.activity = [
        Activity(post_id="p9", post_title="", comment_id="c1", author="bob", snippet="")
    ]
    past = AgentHistory(
        voted_post_ids=frozenset(),
        answered_comment_ids=frozenset({"c1"}),
        own_post_ids=frozenset(),
        recent_hashes=frozenset(),
        social_done=frozenset({"agent:carol"}),
        commented_post_ids=frozenset({"p1"}),
        last_post_at=None,
        last_comment_at=None,
        comments_last_24h=0,
    )
    social = context(ctx, past, "crt", "general")
    assert social.shown_agents == {"alice", "bob"}
    assert social.shown_submolts == {"tea", "general"}
    assert social.done == {"agent:carol", "reply:c1", "post:p1"}


# -- end to end, on the real Ledger ------------------------------------------------------------


@pytest.fixture
def env(tmp_path: Path, fake_ollama: FakeOllama, db_target: Path | str) -> Iterator[HeartbeatEnv]:
    with heartbeat_env(tmp_path, fake_ollama, db_target=db_target) as e:
        e.configure(enabled=True, every_seconds=600, target="any")
        yield e


def answer(env: HeartbeatEnv, *actions: dict[str, Any]) -> None:
    reply = hs.decision(list(actions), "decided")
    env.fake.route("HeartbeatDecision", lambda req: reply)


def test_a_run_follows_and_subscribes_once(env: HeartbeatEnv) -> None:
    env.neighbour_post()
    answer(
        env,
        {"type": "follow", "agent_name": "neighbour"},
        {"type": "subscribe", "submolt": "general"},
    )
    run = env.run()
    assert run.outcome == "acted", run.error
    assert [(a.type, a.state, a.ledger_id) for a in run.actions] == [
        ("follow", "sent", "agent:neighbour"),
        ("subscribe", "sent", "submolt:general"),
    ]
    assert env.ledger.profile("neighbour").agent.is_following
    assert env.ledger.get_submolt("general").is_subscribed
    again = env.run()
    # A blocked action's error leads with its reason.
    assert [(a.state, (a.error or "").split(":")[0]) for a in again.actions] == [
        ("blocked", "duplicate"),
        ("blocked", "duplicate"),
    ]


def test_a_second_comment_on_the_same_post_is_blocked_in_a_later_run(env: HeartbeatEnv) -> None:
    post_id = env.neighbour_post()
    answer(env, {"type": "comment", "post_id": post_id, "content": "A first reply."})
    assert env.run().actions[0].state == "sent"
    answer(env, {"type": "comment", "post_id": post_id, "content": "Another, different reply."})
    blocked = env.run().actions[0]
    assert (blocked.state, (blocked.error or "").split(":")[0]) == ("blocked", "duplicate")
    assert len(env.ledger.list_comments(post_id).comments) == 1


def test_replies_come_from_notifications_when_home_has_no_activity_list(
    env: HeartbeatEnv,
) -> None:
    # Moltbook's /home has only activity_on_your_posts; the context reads the replies there.
    own = env.ledger.create_post("general", "mine", "my words")
    comment = env.neighbour.create_comment(own.id, "a question for you")
    home = env.ledger.home().model_dump()
    del home["activity"]  # Moltbook's /home has no once-only list

    class MoltbookLike:
        def home(self) -> Any:
            return home

        def list_posts(self, **kwargs: Any) -> Any:
            return env.ledger.list_posts(**kwargs)

    read = read_home(MoltbookLike())
    assert [(a["comment_id"], a["author"], a["post_id"]) for a in read.activity] == [
        (comment.id, "neighbour", own.id)
    ]


def test_replies_come_from_notifications_when_home_only_previews_them(env: HeartbeatEnv) -> None:
    # Moltbook's activity_on_your_posts gives a preview per post, not the comments.
    own = env.ledger.create_post("general", "mine", "my words")
    comment = env.neighbour.create_comment(own.id, "what did you mean?")
    home = env.ledger.home().model_dump()
    del home["activity"]  # Moltbook's /home has no once-only list
    for group in home["activity_on_your_posts"]:
        group["comments"] = []

    class PreviewOnly:
        def home(self) -> Any:
            return home

        def list_posts(self, **kwargs: Any) -> Any:
            return env.ledger.list_posts(**kwargs)

        def notifications(self, **kwargs: Any) -> Any:
            return env.ledger.notifications(**kwargs)

    read = read_home(PreviewOnly())
    assert [(a["comment_id"], a["author"], a["post_title"]) for a in read.activity] == [
        (comment.id, "neighbour", "mine")
    ]
