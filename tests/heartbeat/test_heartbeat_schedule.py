"""heartbeat.schedule: pure time maths, tested with fixed dates and hypothesis, never a clock."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from crt_loops.heartbeat.schedule import (
    FIRST_RUN_BOUND_SECONDS,
    ActiveWindow,
    backoff_delay,
    due_after_failure,
    in_active_hours,
    next_due,
    next_window_opening,
    thread_phase,
)

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")
UTC = ZoneInfo("UTC")
H = 60  # minutes per hour, for readable windows


def at(text: str, tz: ZoneInfo, fold: int = 0) -> float:
    """Unix seconds of a local wall-clock time such as '2024-06-10 09:00' in ``tz``."""
    return datetime.fromisoformat(text).replace(tzinfo=tz, fold=fold).timestamp()


def utc(text: str) -> float:
    return at(text, UTC)


# -- in_active_hours ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("local", "inside"),
    [
        ("2024-06-10 08:59:59", False),
        ("2024-06-10 09:00", True),  # start inclusive
        ("2024-06-10 12:30", True),
        ("2024-06-10 16:59:59", True),
        ("2024-06-10 17:00", False),  # end exclusive
        ("2024-06-10 23:00", False),
    ],
)
def test_inside_and_outside_a_day_window(local: str, inside: bool) -> None:
    assert in_active_hours(at(local, BERLIN), 9 * H, 17 * H, BERLIN) is inside


@pytest.mark.parametrize(
    ("local", "inside"),
    [
        ("2024-06-10 21:59", False),
        ("2024-06-10 22:00", True),
        ("2024-06-10 23:59:59", True),
        ("2024-06-11 00:00", True),
        ("2024-06-11 05:59", True),
        ("2024-06-11 06:00", False),
        ("2024-06-11 12:00", False),
    ],
)
def test_window_wrapping_past_midnight(local: str, inside: bool) -> None:
    assert in_active_hours(at(local, BERLIN), 22 * H, 6 * H, BERLIN) is inside


def test_end_of_day_24_00_and_whole_day() -> None:
    assert in_active_hours(at("2024-06-10 23:59:59", BERLIN), 18 * H, 1440, BERLIN)
    assert not in_active_hours(at("2024-06-11 00:00", BERLIN), 18 * H, 1440, BERLIN)
    for local in ("2024-03-31 02:30", "2024-03-31 03:00", "2024-10-27 02:30", "2024-06-10 00:00"):
        assert in_active_hours(at(local, BERLIN), 0, 1440, BERLIN)


def test_the_zone_decides_not_the_server_clock() -> None:
    """Regression (docs/reference.md §6): active hours used the server's clock and ignored the
    zone."""
    instant = utc("2024-06-10 20:00")  # 16:00 in New York, 22:00 in Berlin
    assert in_active_hours(instant, 9 * H, 17 * H, NEW_YORK)
    assert not in_active_hours(instant, 9 * H, 17 * H, UTC)
    assert not in_active_hours(instant, 9 * H, 17 * H, BERLIN)
    early = utc("2024-06-10 08:00")  # 04:00 in New York
    assert in_active_hours(early, 7 * H, 12 * H, UTC)
    assert not in_active_hours(early, 7 * H, 12 * H, NEW_YORK)


@pytest.mark.parametrize(("start", "end"), [(0, 0), (540, 540), (-1, 60), (1440, 60), (0, 1441)])
def test_impossible_windows_are_refused(start: int, end: int) -> None:
    with pytest.raises(ValueError, match=r"start_min|end_min|different"):
        in_active_hours(0.0, start, end, UTC)
    with pytest.raises(ValueError, match=r"start_min|end_min|different"):
        ActiveWindow(start, end, UTC)


# -- next_window_opening: fixed dates ---------------------------------------------------------


def test_opening_later_today_tomorrow_and_now() -> None:
    assert next_window_opening(at("2024-06-10 07:15", BERLIN), 540, 1020, BERLIN) == at(
        "2024-06-10 09:00", BERLIN
    )
    assert next_window_opening(at("2024-06-10 18:00", BERLIN), 540, 1020, BERLIN) == at(
        "2024-06-11 09:00", BERLIN
    )
    inside = at("2024-06-10 10:00:30", BERLIN)
    assert next_window_opening(inside, 540, 1020, BERLIN) == inside


def test_opening_of_a_wrapping_window() -> None:
    assert next_window_opening(at("2024-06-10 12:00", BERLIN), 22 * H, 6 * H, BERLIN) == at(
        "2024-06-10 22:00", BERLIN
    )


def test_opening_in_another_zone() -> None:
    # 18:00 UTC on 10 June is 14:00 in New York: a New York 15:00-16:00 window opens in an hour.
    assert next_window_opening(utc("2024-06-10 18:00"), 15 * H, 16 * H, NEW_YORK) == utc(
        "2024-06-10 19:00"
    )


def test_berlin_spring_forward_gap_moves_opening_to_first_instant_after_it() -> None:
    # 2024-03-31: Berlin clocks jump from 02:00 CET to 03:00 CEST; 02:30 does not exist.
    opening = next_window_opening(at("2024-03-31 00:00", BERLIN), 2 * H + 30, 4 * H, BERLIN)
    assert opening == utc("2024-03-31 01:00")  # 03:00 CEST, the first instant after the gap
    assert datetime.fromtimestamp(opening, BERLIN).strftime("%H:%M") == "03:00"


def test_window_swallowed_by_the_gap_opens_next_day() -> None:
    opening = next_window_opening(at("2024-03-31 00:00", BERLIN), 2 * H + 15, 2 * H + 45, BERLIN)
    assert opening == at("2024-04-01 02:15", BERLIN)


def test_berlin_fall_back_reenters_the_window_at_the_transition() -> None:
    # 2024-10-27: 03:00 CEST becomes 02:00 CET, so 02:00-02:59 happens twice.
    first_pass = at("2024-10-27 02:45", BERLIN, fold=0)  # CEST, after the window's first pass
    assert not in_active_hours(first_pass, 2 * H, 2 * H + 30, BERLIN)
    opening = next_window_opening(first_pass, 2 * H, 2 * H + 30, BERLIN)
    assert opening == utc("2024-10-27 01:00")  # 02:00 CET: the repeated hour begins
    # A window starting before the repeated hour is also re-entered by the jump back.
    assert next_window_opening(first_pass, 110, 150, BERLIN) == utc("2024-10-27 01:00")


def test_both_passes_of_a_repeated_hour_are_inside() -> None:
    for fold in (0, 1):
        assert in_active_hours(at("2024-10-27 02:15", BERLIN, fold=fold), 120, 150, BERLIN)


def test_new_york_spring_forward_and_fall_back() -> None:
    # 2024-03-10: 02:00 EST -> 03:00 EDT (07:00 UTC).
    assert next_window_opening(at("2024-03-10 00:00", NEW_YORK), 150, 300, NEW_YORK) == utc(
        "2024-03-10 07:00"
    )
    # 2024-11-03: 02:00 EDT -> 01:00 EST (06:00 UTC); 01:45 EDT is after the first 01:00-01:30.
    first_pass = at("2024-11-03 01:45", NEW_YORK, fold=0)
    assert next_window_opening(first_pass, 60, 90, NEW_YORK) == utc("2024-11-03 06:00")
    # The second 01:15 (EST) is inside too, and is where a 01:15 opening lands after the first.
    second = at("2024-11-03 01:15", NEW_YORK, fold=1)
    after_first = at("2024-11-03 01:20", NEW_YORK, fold=0)
    assert next_window_opening(after_first, 75, 76, NEW_YORK) == second


# -- next_due -------------------------------------------------------------------------------


NOW = utc("2024-06-10 12:00")


def test_newly_enabled_thread_runs_within_a_minute_spread_by_phase() -> None:
    due = next_due(None, 1800, NOW, "default")
    assert NOW <= due < NOW + FIRST_RUN_BOUND_SECONDS
    assert due == NOW + thread_phase("default", 60)
    assert {next_due(None, 1800, NOW, f"t{i}") for i in range(20)}.__len__() == 20


def test_newly_enabled_short_interval_runs_within_the_interval() -> None:
    assert NOW <= next_due(None, 10, NOW, "default") < NOW + 10


def test_next_run_is_one_interval_after_the_last() -> None:
    """The seed: due when time since last_run reaches every_seconds, never earlier."""
    assert next_due(NOW - 100, 1800, NOW, "default") == NOW + 1700


def test_overdue_is_due_now_exactly_once() -> None:
    assert next_due(NOW - 3 * 86400, 1800, NOW, "default") == NOW


def test_outside_active_hours_sleeps_until_the_opening() -> None:
    window = ActiveWindow(9 * H, 17 * H, BERLIN)
    last = at("2024-06-10 16:50", BERLIN)
    due = next_due(last, 1800, last + 60, "default", window=window)
    opening = at("2024-06-11 09:00", BERLIN)
    assert due == opening + thread_phase("default", 60)
    assert window.contains(due)
    assert window.describe() == "09:00-17:00 Europe/Berlin"


def test_due_inside_window_is_not_moved() -> None:
    window = ActiveWindow(9 * H, 17 * H, BERLIN)
    last = at("2024-06-10 10:00", BERLIN)
    assert next_due(last, 1800, last, "default", window=window) == last + 1800


def test_bad_intervals_are_refused() -> None:
    for interval in (0.0, -5.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="interval"):
            next_due(None, interval, NOW, "t")
        with pytest.raises(ValueError, match="interval"):
            thread_phase("t", interval)


# -- properties -----------------------------------------------------------------------------

ZONES = [
    "UTC",
    "Europe/Berlin",
    "America/New_York",
    "Australia/Lord_Howe",  # 30-minute DST shift
    "Asia/Kolkata",  # +05:30, no DST
    "America/Santiago",  # southern-hemisphere DST at midnight
    "Pacific/Apia",  # skipped a whole calendar day in 2011
    "Africa/Casablanca",  # DST suspended every Ramadan
]
# Instants near real transitions, where the interesting bugs live.
DST_DAYS = [
    utc("2024-03-31 01:00"),
    utc("2024-10-27 01:00"),
    utc("2024-03-10 07:00"),
    utc("2024-11-03 06:00"),
    utc("2024-04-06 15:00"),  # Lord Howe
    utc("2024-09-08 04:00"),  # Santiago
    utc("2011-12-30 10:00"),  # Apia's skipped day
]
instants = st.one_of(
    st.integers(946_684_800, 2_100_000_000).map(float),
    st.sampled_from(DST_DAYS).flatmap(
        lambda t: st.integers(-2 * 86400, 2 * 86400).map(lambda d: t + d)
    ),
)
windows = st.tuples(st.integers(0, 1439), st.integers(0, 1440)).filter(lambda w: w[0] != w[1])
zones = st.sampled_from(ZONES).map(ZoneInfo)


@settings(max_examples=150, deadline=None)
@given(ts=instants, window=windows, tz=zones)
def test_opening_is_inside_and_nothing_before_it_is(
    ts: float, window: tuple[int, int], tz: ZoneInfo
) -> None:
    start, end = window
    opening = next_window_opening(ts, start, end, tz)
    assert opening >= ts
    assert in_active_hours(opening, start, end, tz)
    # Inside intervals last at least a minute (windows and real offsets are whole minutes), so
    # probing every 59 s cannot step over one.
    probe = ts
    while probe < opening:
        assert not in_active_hours(probe, start, end, tz), (probe, opening)
        probe += 59


@settings(max_examples=200, deadline=None)
@given(thread_id=st.text(max_size=64), interval=st.floats(1e-3, 1e7))
def test_phase_in_range_and_stable(thread_id: str, interval: float) -> None:
    phase = thread_phase(thread_id, interval)
    assert 0 <= phase < interval
    assert thread_phase(thread_id, interval) == phase


@settings(max_examples=200, deadline=None)
@given(
    thread_id=st.text(min_size=1, max_size=64),
    interval=st.integers(10, 7 * 86400).map(float),
    now=instants,
    since=st.one_of(st.none(), st.integers(-30 * 86400, 86400).map(float)),
    window=st.one_of(st.none(), st.tuples(windows, zones)),
)
def test_next_due_properties(
    thread_id: str,
    interval: float,
    now: float,
    since: float | None,
    window: tuple[tuple[int, int], ZoneInfo] | None,
) -> None:
    last_run = None if since is None else now - since
    bound = ActiveWindow(window[0][0], window[0][1], window[1]) if window else None
    due = next_due(last_run, interval, now, thread_id, window=bound)
    assert due >= now
    if bound is not None:
        assert bound.contains(due)
        return
    if last_run is None:
        assert due < now + min(interval, FIRST_RUN_BOUND_SECONDS)
    elif last_run + interval <= now:
        assert due == now  # overdue: due now, once
    else:
        assert due == last_run + interval


@settings(max_examples=50, deadline=None)
@given(window=windows, tz=zones, ts=instants)
def test_window_object_agrees_with_functions(
    window: tuple[int, int], tz: ZoneInfo, ts: float
) -> None:
    bound = ActiveWindow(window[0], window[1], tz)
    assume(not bound.contains(ts))
    assert bound.next_opening(ts) == next_window_opening(ts, window[0], window[1], tz)


# -- backoff ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("failures", "interval", "delay"),
    [
        (1, 1800, 30),
        (2, 1800, 60),
        (3, 1800, 300),
        (4, 1800, 900),
        (5, 1800, 900),  # the last step repeats
        (50, 1800, 900),
        (3, 120, 120),  # never past the thread's own interval
        (1, 10, 10),
    ],
)
def test_backoff_delay_steps_and_cap(failures: int, interval: float, delay: float) -> None:
    assert backoff_delay(failures, interval) == delay


@pytest.mark.parametrize(("failures", "interval"), [(0, 1800), (-1, 1800), (1, 0), (1, -5)])
def test_backoff_delay_refuses_impossible_input(failures: int, interval: float) -> None:
    with pytest.raises(ValueError):
        backoff_delay(failures, interval)


def test_due_after_failure_is_now_plus_the_delay() -> None:
    now = utc("2024-06-10 12:00")
    assert due_after_failure(now, 2, 1800) == now + 60


def test_due_after_failure_inside_the_window_stays() -> None:
    window = ActiveWindow(9 * H, 17 * H, BERLIN)
    now = at("2024-06-10 12:00", BERLIN)
    assert due_after_failure(now, 4, 3600, window=window) == now + 900


def test_due_after_failure_past_the_window_moves_to_its_next_opening() -> None:
    window = ActiveWindow(9 * H, 17 * H, BERLIN)
    now = at("2024-06-10 16:55", BERLIN)  # + 15 min is 17:10, after the window closed
    assert due_after_failure(now, 4, 3600, window=window) == at("2024-06-11 09:00", BERLIN)
