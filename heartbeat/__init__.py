"""The heartbeat, by its design-card name; the code lives in ``crt_loops.heartbeat``.

Importing this package starts nothing: it re-exports the heartbeat's main types.
"""

from __future__ import annotations

from crt_loops.heartbeat.config import HeartbeatConfig
from crt_loops.heartbeat.executor import HeartbeatRunner
from crt_loops.heartbeat.loop import HeartbeatLoop

__all__ = ["HeartbeatConfig", "HeartbeatLoop", "HeartbeatRunner"]
