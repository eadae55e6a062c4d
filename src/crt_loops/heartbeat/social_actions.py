"""The heartbeat's social actions: follow an agent, subscribe to a submolt.

They ride on the ``vote`` target (light-touch engagement: a config that lets the agent vote
lets it follow and subscribe too) and are validated like votes: the agent or submolt must have
appeared in the prompt, the agent cannot follow itself, and a follow or subscription it
already made is blocked as ``duplicate`` (on the Ledger it would be a no-op).
"""

from __future__ import annotations

import re
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict

from crt_loops.db.agent_history import AgentHistory

if TYPE_CHECKING:
    from crt_loops.heartbeat.context import HeartbeatContext

SOCIAL_TYPES = ("follow", "subscribe")
TARGET_OF_SOCIAL = "vote"
AGENT_NAME_RE = re.compile(r"[A-Za-z0-9_-]{2,32}")
SUBMOLT_NAME_RE = re.compile(r"[a-z0-9-]{2,30}")


class FollowAction(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True, str_strip_whitespace=True)

    type: Literal["follow"] = "follow"
    agent_name: str


class SubscribeAction(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True, str_strip_whitespace=True)

    type: Literal["subscribe"] = "subscribe"
    submolt: str


SocialAction = FollowAction | SubscribeAction


def target_type(kind: str) -> str:
    """The config target that allows an action type (follows and subscriptions: vote)."""
    return TARGET_OF_SOCIAL if kind in SOCIAL_TYPES else kind


def check(
    action: SocialAction,
    *,
    own_name: str | None,
    shown_agents: AbstractSet[str],
    shown_submolts: AbstractSet[str],
    done: AbstractSet[str],
) -> tuple[str, str] | None:
    """``(reason, detail)`` when the action may not be sent, else None.

    ``done`` holds :func:`key` of every follow and subscription already made (or allowed
    earlier in this run); reasons are :class:`~crt_loops.heartbeat.decision.BlockReason` values.
    """
    if isinstance(action, FollowAction):
        name = action.agent_name.removeprefix("@")
        if not AGENT_NAME_RE.fullmatch(name):
            return "invalid", f"agent_name {name[:40]!r} is not an agent name"
        if own_name is not None and name.lower() == own_name.lower():
            return "self_vote", "the agent cannot follow itself"
        if name.lower() not in {a.lower() for a in shown_agents}:
            return "unknown_post", f"agent {name} was not shown in the prompt"
    else:
        name = action.submolt.removeprefix("m/").lower()
        if not SUBMOLT_NAME_RE.fullmatch(name):
            return "invalid", f"submolt {name[:40]!r} is not a valid name"
        if name not in shown_submolts:
            return "unknown_post", f"submolt {name} was not shown in the prompt"
    if key(action) in done:
        return "duplicate", f"already did: {action.type} {name}"
    return None


def key(action: SocialAction) -> str:
    """What a follow or subscription is about, as stored in the outbox (its ``ledger_id``)."""
    if isinstance(action, FollowAction):
        return "agent:" + action.agent_name.removeprefix("@").lower()
    return "submolt:" + action.submolt.removeprefix("m/").lower()


@dataclass(frozen=True)
class SocialContext:
    """What the social and thread checks know: who and what the prompt showed, what is done.

    ``done`` holds :func:`key` values: ``agent:<name>`` and ``submolt:<name>`` already followed
    or subscribed, ``reply:<comment id>`` already answered, ``post:<post id>`` already commented
    on at the top level.
    """

    own_name: str | None = None
    shown_agents: AbstractSet[str] = frozenset()
    shown_submolts: AbstractSet[str] = frozenset()
    done: AbstractSet[str] = frozenset()


def comment_key(post_id: str, parent_id: str | None) -> str:
    return f"reply:{parent_id}" if parent_id else f"post:{post_id}"


def targets(action: object) -> set[str]:
    """The keys an allowed action takes, so a later action of the same run cannot repeat it."""
    if isinstance(action, FollowAction | SubscribeAction):
        return {key(action)}
    post_id, parent_id = getattr(action, "post_id", None), getattr(action, "parent_id", None)
    if getattr(action, "type", None) == "comment" and isinstance(post_id, str):
        return {comment_key(post_id, parent_id)}
    return set()


def block(
    action: object, ctx: SocialContext, run_targets: AbstractSet[str]
) -> tuple[str, str] | None:
    """Why a follow, subscribe or comment may not be sent (or None).

    A comment answers one thing, once: the agent never comments twice in the same thread of
    conversation, that is twice on the same post at the top level, or twice to the same comment.
    """
    done = ctx.done | run_targets
    if isinstance(action, FollowAction | SubscribeAction):
        return check(
            action,
            own_name=ctx.own_name,
            shown_agents=ctx.shown_agents,
            shown_submolts=ctx.shown_submolts,
            done=done,
        )
    (target,) = targets(action) or {""}
    if target and target in done:
        what = "this comment" if target.startswith("reply:") else "this post"
        return "duplicate", f"already commented on {what} ({target.split(':', 1)[1]})"
    return None


def context(
    ctx: HeartbeatContext, past: AgentHistory, own_name: str, submolt: str
) -> SocialContext:
    """Who and what a run's prompt showed, and which follows and threads are done already
    (``past`` is :func:`crt_loops.db.agent_history.agent_history`)."""
    done = set(past.social_done)
    done |= {comment_key("", c) for c in past.answered_comment_ids}
    done |= {comment_key(p, None) for p in past.commented_post_ids}
    return SocialContext(
        own_name=own_name,
        shown_agents={p.author for p in ctx.feed} | {a.author for a in ctx.activity},
        shown_submolts={p.submolt for p in ctx.feed} | {submolt},
        done=done,
    )
