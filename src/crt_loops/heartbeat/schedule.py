"""Pure scheduling maths for the heartbeat: due times, per-thread phase, active hours.

Every function takes Unix seconds (floats) and never reads a clock: the caller passes ``now``.
Active hours are evaluated on the *local wall-clock time* of an instant in the configured zone,
so a 09:00-17:00 window means 09:00-17:00 in that zone on every day, DST days included (the
earlier implementation compared the server's clock and ignored the zone: docs/reference.md §6).

Windows are minutes from local midnight: ``start_min`` in [0, 1440) inclusive, ``end_min`` in
[0, 1440] exclusive (1440 is the end of the day); ``start_min > end_min`` wraps past midnight.
Every function raises ValueError for an impossible input (a window outside those ranges or with
equal ends, an interval that is not a positive finite number): callers pass validated config.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from datetime import time as wall_time
from zoneinfo import ZoneInfo

__all__ = [
    "BACKOFF_STEPS",
    "FIRST_RUN_BOUND_SECONDS",
    "MINUTES_PER_DAY",
    "ActiveWindow",
    "backoff_delay",
    "due_after_failure",
    "in_active_hours",
    "next_due",
    "next_window_opening",
    "thread_phase",
]

MINUTES_PER_DAY = 1440
# Consecutive failures back off (a failing heartbeat must not hammer the model or the Ledger),
# never past the thread's own interval, and reset on the first success.
BACKOFF_STEPS = (30.0, 60.0, 300.0, 900.0)
# A newly enabled (or never run) thread runs within min(interval, this) of being enabled: a
# person who just switched the heartbeat on wants to see it work, not wait half an hour.
FIRST_RUN_BOUND_SECONDS = 60.0
# Real DST transitions are hours or months apart; sampling the UTC offset every 15 minutes finds
# each one, and a binary search then pins it to the second.
_OFFSET_SAMPLE_SECONDS = 900
# A window of at least one minute opens on every local day except, at most, the day a DST gap
# (or a skipped calendar day, as Samoa did in 2011) swallows it; eight days is ample.
_HORIZON_DAYS = 8


def thread_phase(thread_id: str, interval: float) -> float:
    """A deterministic offset in [0, interval) for ``thread_id``, so threads do not fire together.

    Derived from the SHA-256 of the id: the same id always gets the same phase, in every process.
    """
    _check_interval(interval)
    digest = hashlib.sha256(thread_id.encode("utf-8", "surrogatepass")).digest()
    # 53 bits: exactly representable in a float, so the fraction is strictly below 1.
    fraction = (int.from_bytes(digest[:8], "big") >> 11) / float(1 << 53)
    phase = fraction * interval
    # fraction * interval can round up to interval itself for some intervals; keep it half-open.
    return phase if phase < interval else math.nextafter(interval, 0.0)


def in_active_hours(ts: float, start_min: int, end_min: int, tz: ZoneInfo) -> bool:
    """Whether the local wall-clock time of ``ts`` in ``tz`` is inside [start, end).

    The window wraps past midnight when ``start_min > end_min`` (22:00-06:00). On a fall-back
    day a repeated hour is inside or outside both times, because only the wall clock counts.
    """
    _check_window(start_min, end_min)
    minute = _minute_of_day(ts, tz)
    if start_min < end_min:
        return start_min <= minute < end_min
    return minute >= start_min or minute < end_min


def next_window_opening(ts: float, start_min: int, end_min: int, tz: ZoneInfo) -> float:
    """The earliest instant >= ``ts`` inside the window (``ts`` itself when it is inside).

    The window is entered either when the wall clock reaches ``start_min`` (on a fall-back day
    that wall time may occur twice: both are candidates) or when a DST jump lands the wall clock
    inside the window. An opening that falls in a spring-forward gap (02:30 on a day that skips
    02:00-03:00) therefore becomes the first existing instant after the gap (03:00), provided
    that is still before the window's end; otherwise the next day's opening.
    """
    _check_window(start_min, end_min)
    if in_active_hours(ts, start_min, end_min, tz):
        return ts
    first_day = datetime.fromtimestamp(ts, tz).date()
    best: float | None = None
    found_on: int | None = None
    for offset in range(_HORIZON_DAYS + 1):
        # Examine one more local day after the first hit: a zone that falls back across
        # midnight repeats part of the previous date after the next date has begun.
        if found_on is not None and offset > found_on + 1:
            break
        for instant in _wall_instants(first_day + timedelta(days=offset), start_min, tz):
            if instant >= ts and in_active_hours(instant, start_min, end_min, tz):
                if best is None or instant < best:
                    best = instant
                if found_on is None:
                    found_on = offset
    horizon = best if best is not None else ts + _HORIZON_DAYS * 86400.0
    for transition in _offset_transitions(ts, horizon, tz):
        if in_active_hours(transition, start_min, end_min, tz) and (
            best is None or transition < best
        ):
            best = transition
    if best is None:
        raise ValueError(
            f"the window {start_min}-{end_min} (minutes) never opens within {_HORIZON_DAYS} days "
            f"after {ts} in {tz.key}"
        )
    return best


@dataclass(frozen=True)
class ActiveWindow:
    """Active hours bound to a zone: ``start_min`` inclusive, ``end_min`` exclusive."""

    start_min: int
    end_min: int
    tz: ZoneInfo

    def __post_init__(self) -> None:
        _check_window(self.start_min, self.end_min)

    def contains(self, ts: float) -> bool:
        """Whether ``ts`` is inside the window (see :func:`in_active_hours`)."""
        return in_active_hours(ts, self.start_min, self.end_min, self.tz)

    def next_opening(self, ts: float) -> float:
        """The earliest instant >= ``ts`` inside the window (see :func:`next_window_opening`)."""
        return next_window_opening(ts, self.start_min, self.end_min, self.tz)

    def describe(self) -> str:
        """Human form for logs and skip reasons, e.g. ``09:00-17:00 Europe/Berlin``."""
        return f"{_hhmm(self.start_min)}-{_hhmm(self.end_min)} {self.tz.key}"


def next_due(
    last_run: float | None,
    interval: float,
    now: float,
    thread_id: str,
    *,
    window: ActiveWindow | None = None,
) -> float:
    """When the thread's next heartbeat is due.

    - Never run (or just enabled: pass ``last_run=None``): ``now`` plus the thread's phase inside
      min(interval, 60 s), so it runs soon while simultaneous enables still spread out. The
      result depends on ``now``: compute it once when the thread is enabled and store it;
      recomputing it on every check would keep moving it later.
    - Otherwise ``last_run + interval``; a thread already overdue is due at ``now`` exactly
      (one catch-up run, never a burst of missed ones).
    - With active hours, a time outside the window moves to the window's next opening, plus the
      thread's phase when that is still inside the window, so threads sharing a 09:00 window do
      not all wake at 09:00:00. The thread then sleeps until the opening instead of waking to
      skip.
    """
    _check_interval(interval)
    spread = thread_phase(thread_id, min(interval, FIRST_RUN_BOUND_SECONDS))
    due = now + spread if last_run is None else max(last_run + interval, now)
    if window is not None and not window.contains(due):
        opening = window.next_opening(due)
        due = opening + spread if window.contains(opening + spread) else opening
    return due


def backoff_delay(failures: int, interval: float) -> float:
    """How long to wait after the ``failures``-th consecutive failure (1 for the first).

    The steps of :data:`BACKOFF_STEPS`, the last repeating, capped at ``interval``.
    """
    _check_interval(interval)
    if failures < 1:
        raise ValueError(f"failures counts the failure just recorded: >= 1, got {failures!r}")
    return min(BACKOFF_STEPS[min(failures, len(BACKOFF_STEPS)) - 1], interval)


def due_after_failure(
    now: float, failures: int, interval: float, *, window: ActiveWindow | None = None
) -> float:
    """When a thread whose run just failed (the ``failures``-th time in a row) is due again:
    after its backoff delay, moved to the window's next opening when that falls outside."""
    due = now + backoff_delay(failures, interval)
    if window is not None and not window.contains(due):
        due = window.next_opening(due)
    return due


def _check_interval(interval: float) -> None:
    if not (math.isfinite(interval) and interval > 0):
        raise ValueError(f"interval must be a positive number of seconds, got {interval!r}")


def _check_window(start_min: int, end_min: int) -> None:
    if not 0 <= start_min < MINUTES_PER_DAY:
        raise ValueError(f"start_min must be in [0, 1440), got {start_min!r}")
    if not 0 <= end_min <= MINUTES_PER_DAY:
        raise ValueError(f"end_min must be in [0, 1440], got {end_min!r}")
    if start_min == end_min:
        raise ValueError("an active-hours window needs different start and end times")


def _minute_of_day(ts: float, tz: ZoneInfo) -> float:
    local = datetime.fromtimestamp(ts, tz)
    return local.hour * 60 + local.minute + (local.second + local.microsecond / 1e6) / 60


def _hhmm(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def _wall_instants(day: date, minute: int, tz: ZoneInfo) -> list[float]:
    """Every instant whose local wall clock in ``tz`` reads ``day`` at ``minute``: none in a
    spring-forward gap, two in a fall-back overlap, otherwise one."""
    naive = datetime.combine(day, wall_time(minute // 60, minute % 60))
    found: list[float] = []
    for fold in (0, 1):
        instant = naive.replace(tzinfo=tz, fold=fold).timestamp()
        # A nonexistent wall time converts to *some* instant; the round trip tells us it is fake.
        if datetime.fromtimestamp(instant, tz).replace(tzinfo=None) == naive and (
            instant not in found
        ):
            found.append(instant)
    return found


def _offset_transitions(start: float, end: float, tz: ZoneInfo) -> list[float]:
    """The instants in [start, end] at which ``tz``'s UTC offset changes (first second of the
    new offset), found by sampling and then bisecting to the second."""
    transitions: list[float] = []
    t = start
    offset = datetime.fromtimestamp(t, tz).utcoffset()
    while t < end:
        nxt = min(t + _OFFSET_SAMPLE_SECONDS, end)
        nxt_offset = datetime.fromtimestamp(nxt, tz).utcoffset()
        if nxt_offset != offset:
            # Invariant: offset(lo) == offset, offset(hi) != offset. Transitions fall on whole
            # seconds, so bisecting integers finds the exact first instant of the new offset.
            lo, hi = math.floor(t), math.ceil(nxt)
            while hi - lo > 1:
                mid = (lo + hi) // 2
                if datetime.fromtimestamp(mid, tz).utcoffset() == offset:
                    lo = mid
                else:
                    hi = mid
            if start <= hi <= end:
                transitions.append(float(hi))
            offset = nxt_offset
        t = nxt
    return transitions
