"""Time as the service sees it: Unix seconds inside, ISO-8601 UTC at the API boundary.

Loops and services take a ``Clock`` (a zero-argument callable returning Unix seconds) so tests
can drive hours of schedule in milliseconds.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime

Clock = Callable[[], float]


def system_clock() -> float:
    """Wall-clock Unix seconds."""
    return time.time()


def iso(ts: float | None) -> str | None:
    """Unix seconds as an ISO-8601 UTC string (``None`` stays ``None``)."""
    if ts is None:
        return None
    return (
        datetime.fromtimestamp(ts, tz=UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    )
