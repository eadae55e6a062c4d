"""``build_loops``: the four loops wired to their services, in docs/seed.md's order.

The composition of the loop layer: it imports the runner, the thinking services and the
heartbeat loop, and none of them imports it.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

from crt_loops.core.clock import Clock, system_clock
from crt_loops.core.identity import PROCESS_OWNER
from crt_loops.db.session import SessionDB
from crt_loops.heartbeat.loop import HeartbeatLoop
from crt_loops.llm.client import LLM
from crt_loops.loops.retention import RetentionJob, RetentionPolicy
from crt_loops.loops.runner import (
    BackgroundLoop,
    PersonalityLoop,
    ReflectionLoop,
    SelfReplyLoop,
    Waiter,
    event_waiter,
)
from crt_loops.mind.journal import SelfReplyService
from crt_loops.mind.personality import PersonalityService
from crt_loops.mind.reflection import ReflectionService
from crt_loops.settings import Settings


def build_loops(
    session_db: SessionDB,
    *,
    settings: Settings,
    llm: LLM,
    heartbeat_runner_factory: Callable[[], Any] | None = None,
    clock: Clock = system_clock,
    waiter: Waiter = event_waiter,
    rng: random.Random | None = None,
) -> list[BackgroundLoop]:
    """The four loops, in docs/seed.md's order: reflection, personality, self-reply, heartbeat."""
    common: dict[str, Any] = {"db": session_db, "clock": clock, "waiter": waiter}
    retention = RetentionJob(
        session_db,
        RetentionPolicy(
            heartbeat_days=settings.heartbeat_retention_days,
            journal_days=settings.journal_retention_days,
            message_days=settings.message_retention_days,
        ),
        clock=clock,
        owner=PROCESS_OWNER,
    )
    reflection = ReflectionLoop(
        ReflectionService(
            session_db,
            llm,
            window=settings.loop_window,
            threshold=settings.reflection_threshold,
            clock=clock,
        ),
        interval_seconds=settings.reflection_loop_seconds,
        enabled=settings.reflection_loop_enabled,
        maintenance=retention.maybe_run,
        **common,
    )
    personality = PersonalityLoop(
        PersonalityService(session_db, llm, window=settings.loop_window, clock=clock),
        interval_seconds=settings.personality_loop_seconds,
        enabled=settings.personality_loop_enabled,
        **common,
    )
    self_reply = SelfReplyLoop(
        SelfReplyService(
            session_db,
            llm,
            chance=settings.journal_self_reply_chance,
            min_seconds=settings.journal_self_reply_min_seconds,
            window=settings.loop_window,
            rng=rng or random.Random(),
            clock=clock,
        ),
        interval_seconds=settings.journal_self_reply_loop_seconds,
        enabled=settings.journal_self_reply_loop_enabled,
        **common,
    )
    heartbeat: HeartbeatLoop = HeartbeatLoop(
        runner_factory=heartbeat_runner_factory,
        max_concurrency=settings.heartbeat_max_concurrency,
        reply_wake_seconds=settings.heartbeat_reply_wake_seconds,
        interval_seconds=settings.heartbeat_loop_seconds,
        enabled=settings.heartbeat_loop_enabled,
        maintenance=retention.maybe_run,
        **common,
    )
    return [reflection, personality, self_reply, heartbeat]
