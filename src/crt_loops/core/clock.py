"""Time as the service sees it: Unix seconds inside, ISO-8601 UTC at the API boundary.

Loops and services take a ``Clock`` (a zero-argument callable returning Unix seconds) so tests
can drive hours of schedule in milliseconds.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from functools import lru_cache

Clock = Callable[[], float]


def system_clock() -> float:
    """Wall-clock Unix seconds."""
    return time.time()


# Every dashboard poll formats the same few hundred stored times again (a thread list of 100
# rows is 200 of them, a fifth of its request); a stored time never changes its text.
@lru_cache(maxsize=16_384)
def iso(ts: float | None) -> str | None:
    """Unix seconds as an ISO-8601 UTC string (``None`` stays ``None``)."""
    if ts is None:
        return None
    return (
        datetime.fromtimestamp(ts, tz=UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    )
