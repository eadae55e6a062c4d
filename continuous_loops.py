"""The four background loops (``build_loops``); the code lives in ``crt_loops.loops.runner``."""

from crt_loops.loops.runner import (
    LOOP_NAMES,
    PROCESS_OWNER,
    BackgroundLoop,
    LoopState,
    LoopStateError,
    PersonalityLoop,
    ReflectionLoop,
    SelfReplyLoop,
    ServiceLoop,
    TickOutcome,
    TickResult,
    Waiter,
    build_loops,
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
