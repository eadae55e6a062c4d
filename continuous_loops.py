"""The four background loops (``build_loops``); the code lives in ``crt_loops.loops``."""

from __future__ import annotations

from crt_loops.core.enums import LoopState, TickOutcome
from crt_loops.core.identity import PROCESS_OWNER
from crt_loops.loops.build import build_loops
from crt_loops.loops.runner import (
    LOOP_NAMES,
    BackgroundLoop,
    LoopStateError,
    PersonalityLoop,
    ReflectionLoop,
    SelfReplyLoop,
    ServiceLoop,
    TickResult,
    Waiter,
    event_waiter,
)

__all__ = [
    "LOOP_NAMES",
    "PROCESS_OWNER",
    "BackgroundLoop",
    "LoopState",
    "LoopStateError",
    "PersonalityLoop",
    "ReflectionLoop",
    "SelfReplyLoop",
    "ServiceLoop",
    "TickOutcome",
    "TickResult",
    "Waiter",
    "build_loops",
    "event_waiter",
]
