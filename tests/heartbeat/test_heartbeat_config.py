"""heartbeat.config: HeartbeatConfig rules, partial merges, stored JSON, the effective zone."""

from __future__ import annotations

import json
import logging
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from crt_loops.heartbeat.config import (
    ConfigPatch,
    HeartbeatConfig,
    config_from_json,
    config_to_json,
    effective_timezone,
    host_timezone,
    merge_config,
    parse_duration,
)
from crt_loops.heartbeat.schedule import ActiveWindow


def errors_of(data: dict[str, Any]) -> list[tuple[tuple[Any, ...], str]]:
    with pytest.raises(ValidationError) as info:
        HeartbeatConfig.model_validate(data)
    return [(tuple(err["loc"]), str(err["msg"])) for err in info.value.errors()]


def test_defaults_are_design_section_4() -> None:
    assert HeartbeatConfig().model_dump() == {
        "enabled": False,
        "every_seconds": 1800,
        "target": "any",
        "model": None,
        "max_tokens": 500,
        "temperature": 0.7,
        "dry_run": False,
        "active_hours_start": None,
        "active_hours_end": None,
        "timezone": None,
        "max_actions": 3,
        "skip_when_unchanged": True,
        "submolt": "general",
    }


def test_seed_curl_body_answers_with_every_seconds() -> None:
    config = HeartbeatConfig.model_validate({"enabled": True, "every": 1800, "target": "none"})
    dumped = config.model_dump()
    assert dumped["every_seconds"] == 1800
    assert "every" not in dumped
    assert config.enabled
    assert config.allowed_actions() == frozenset()


def test_seed_per_thread_example() -> None:
    config = HeartbeatConfig.model_validate(
        {
            "enabled": True,
            "every_seconds": 3600,
            "target": "post",
            "model": "llama3.2:latest",
            "max_tokens": 500,
            "temperature": 0.7,
            "dry_run": False,
            "active_hours_start": 9,
            "active_hours_end": 17,
        }
    )
    assert (config.active_hours_start, config.active_hours_end) == ("09:00", "17:00")
    assert config.active_hours_minutes() == (540, 1020)
    assert config.model_or("fallback") == "llama3.2:latest"


@pytest.mark.parametrize(
    ("key", "value", "seconds"),
    [
        ("every", 600, 600),
        ("every_seconds", 600, 600),
        ("every", "30m", 1800),
        ("every_seconds", "1h", 3600),
        ("every", "90s", 90),
        ("every", "1h30m", 5400),
        ("every", " 1h 30m ", 5400),
        ("every", "2d", 172800),
        ("every", "1.5h", 5400),
        ("every", "10 minutes", 600),
        ("every", "1800", 1800),
        ("every_seconds", 1800.0, 1800),
        ("every", "7d", 604800),
        ("every", 10, 10),
    ],
)
def test_interval_spellings(key: str, value: Any, seconds: int) -> None:
    """Regression (docs/reference.md §6): `every` was stored but `every_seconds` read; both
    count."""
    assert HeartbeatConfig.model_validate({key: value}).every_seconds == seconds


@pytest.mark.parametrize(
    "value", [9, 0, -5, 604801, "8d", "abc", "30x", "", True, 1.5, None, "0.5s", [1], "9" * 50]
)
def test_bad_intervals_name_the_field(value: Any) -> None:
    problems = errors_of({"every": value})
    assert problems[0][0] == ("every_seconds",)


def test_interval_range_message_is_a_sentence() -> None:
    [(loc, msg)] = errors_of({"every_seconds": 5})
    assert loc == ("every_seconds",)
    assert "between 10 s and 7 days" in msg


def test_every_and_every_seconds_must_agree() -> None:
    assert HeartbeatConfig.model_validate({"every": "1m", "every_seconds": 60}).every_seconds == 60
    [(_, msg)] = errors_of({"every": 60, "every_seconds": 120})
    assert "disagree" in msg


def test_parse_duration_directly() -> None:
    assert parse_duration("2h") == 7200
    with pytest.raises(ValueError, match="unknown duration unit"):
        parse_duration("3w")


@pytest.mark.parametrize(
    ("target", "canonical", "allowed"),
    [
        ("any", "any", {"post", "comment", "vote"}),
        ("none", "none", set()),
        ("post", "post", {"post"}),
        ("comment,vote", "comment,vote", {"comment", "vote"}),
        (" Vote , COMMENT ,vote", "comment,vote", {"comment", "vote"}),
        ("vote,post", "post,vote", {"post", "vote"}),
        ("post,comment,vote", "any", {"post", "comment", "vote"}),
        (["comments", "votes"], "comment,vote", {"comment", "vote"}),
        ("ALL", "any", {"post", "comment", "vote"}),
    ],
)
def test_targets_are_normalised(target: Any, canonical: str, allowed: set[str]) -> None:
    config = HeartbeatConfig.model_validate({"target": target})
    assert config.target == canonical
    assert config.allowed_actions() == frozenset(allowed)


@pytest.mark.parametrize(
    ("target", "fragment"),
    [
        ("none,post", "cannot be combined"),
        ("any,vote", "do not combine"),
        ("dance", "unknown target"),
        ("", "must not be empty"),
        (" , ", "must not be empty"),
        (5, "must be a string"),
    ],
)
def test_bad_targets(target: Any, fragment: str) -> None:
    [(loc, msg)] = errors_of({"target": target})
    assert loc == ("target",)
    assert fragment in msg


@pytest.mark.parametrize(
    ("start", "end", "expected"),
    [
        (9, 17, ("09:00", "17:00")),
        ("9:30", "17:45", ("09:30", "17:45")),
        ("09:00", 17.0, ("09:00", "17:00")),
        (22, 6, ("22:00", "06:00")),
        (0, 24, ("00:00", "24:00")),
        ("23", "24:00", ("23:00", "24:00")),
        (None, None, (None, None)),
        ("", "", (None, None)),
    ],
)
def test_active_hours_accept_hours_and_clock_strings(
    start: Any, end: Any, expected: tuple[str | None, str | None]
) -> None:
    config = HeartbeatConfig.model_validate({"active_hours_start": start, "active_hours_end": end})
    assert (config.active_hours_start, config.active_hours_end) == expected


@pytest.mark.parametrize(
    ("data", "loc", "fragment"),
    [
        ({"active_hours_start": 9}, "active_hours_end", "both be set"),
        ({"active_hours_end": 17}, "active_hours_end", "both be set"),
        ({"active_hours_start": 9, "active_hours_end": "09:00"}, "active_hours_end", "both 09:00"),
        ({"active_hours_start": 24, "active_hours_end": 6}, "active_hours_start", "only valid"),
        ({"active_hours_start": "25:00", "active_hours_end": 6}, "active_hours_start", "00:00"),
        ({"active_hours_start": "09:60", "active_hours_end": 6}, "active_hours_start", "00:00"),
        ({"active_hours_start": "24:30", "active_hours_end": 6}, "active_hours_start", "00:00"),
        ({"active_hours_start": 9.5, "active_hours_end": 17}, "active_hours_start", "hour"),
        ({"active_hours_start": True, "active_hours_end": 17}, "active_hours_start", "boolean"),
        ({"active_hours_start": "9am", "active_hours_end": 17}, "active_hours_start", "HH:MM"),
    ],
)
def test_bad_active_hours(data: dict[str, Any], loc: str, fragment: str) -> None:
    problems = errors_of(data)
    assert problems[0][0] == (loc,)
    assert fragment in problems[0][1]


@pytest.mark.parametrize("zone", ["Europe/Berlin", "America/New_York", "UTC", " Asia/Tokyo "])
def test_known_zones(zone: str) -> None:
    assert HeartbeatConfig.model_validate({"timezone": zone}).timezone == zone.strip()


@pytest.mark.parametrize(
    "zone", ["Mars/Base", "America", "../etc/passwd", "/etc/localtime", "x" * 300]
)
def test_unknown_zones(zone: str) -> None:
    [(loc, msg)] = errors_of({"timezone": zone})
    assert loc == ("timezone",)
    assert "IANA" in msg


@pytest.mark.parametrize(
    ("data", "loc"),
    [
        ({"max_tokens": 0}, "max_tokens"),
        ({"max_tokens": 8193}, "max_tokens"),
        ({"max_tokens": True}, "max_tokens"),
        ({"temperature": -0.1}, "temperature"),
        ({"temperature": 2.01}, "temperature"),
        ({"temperature": float("nan")}, "temperature"),
        ({"max_actions": 0}, "max_actions"),
        ({"max_actions": 6}, "max_actions"),
        ({"submolt": "a"}, "submolt"),
        ({"submolt": "has space"}, "submolt"),
        ({"submolt": "x" * 31}, "submolt"),
        ({"model": "two words"}, "model"),
        ({"enabled": None}, "enabled"),
        ({"enabled": "maybe"}, "enabled"),
        ({"bogus": 1}, "bogus"),
    ],
)
def test_field_rules(data: dict[str, Any], loc: str) -> None:
    assert errors_of(data)[0][0] == (loc,)


def test_boundaries_and_normalisation() -> None:
    config = HeartbeatConfig.model_validate(
        {
            "max_tokens": 8192,
            "temperature": 2,
            "max_actions": 5,
            "submolt": " Reflections ",
            "model": "  ",
        }
    )
    assert (config.max_tokens, config.temperature, config.max_actions) == (8192, 2.0, 5)
    assert config.submolt == "reflections"
    assert config.model is None
    assert config.model_or("llama3.2:latest") == "llama3.2:latest"


def test_config_is_immutable() -> None:
    with pytest.raises(ValidationError):
        HeartbeatConfig().enabled = True  # type: ignore[misc]


# -- merge_config ---------------------------------------------------------------------------


STORED = HeartbeatConfig.model_validate(
    {
        "enabled": True,
        "every_seconds": 3600,
        "target": "comment,vote",
        "model": "qwen3:8b",
        "active_hours_start": 9,
        "active_hours_end": 17,
        "timezone": "Europe/Berlin",
        "max_actions": 2,
    }
)


def test_post_keeps_omitted_fields() -> None:
    """Regression (docs/reference.md §6): a config POST reset every field it did not name."""
    merged = merge_config(STORED, {"dry_run": True})
    assert merged == STORED.model_copy(update={"dry_run": True})


def test_empty_patch_changes_nothing() -> None:
    assert merge_config(STORED, {}) == STORED


def test_patch_on_nothing_stored_starts_from_defaults() -> None:
    merged = merge_config(None, {"enabled": True, "every": 1800, "target": "none"})
    assert merged == HeartbeatConfig(enabled=True, target="none")


def test_every_alias_replaces_stored_interval() -> None:
    assert merge_config(STORED, {"every": "10m"}).every_seconds == 600
    assert merge_config(STORED, {"every_seconds": 60}).every_seconds == 60


def test_explicit_null_clears_nullable_fields() -> None:
    merged = merge_config(
        STORED,
        {"model": None, "timezone": None, "active_hours_start": None, "active_hours_end": None},
    )
    assert merged.model is None and merged.timezone is None
    assert merged.active_hours_minutes() is None
    assert merged.every_seconds == 3600


def test_clearing_half_the_window_is_an_error_naming_it() -> None:
    with pytest.raises(ValidationError) as info:
        merge_config(STORED, {"active_hours_start": None})
    assert info.value.errors()[0]["loc"] == ("active_hours_end",)


def test_null_for_a_required_field_is_an_error() -> None:
    with pytest.raises(ValidationError) as info:
        merge_config(STORED, {"enabled": None})
    assert info.value.errors()[0]["loc"] == ("enabled",)


def test_unknown_fields_are_named_with_a_hint() -> None:
    with pytest.raises(ValidationError) as info:
        merge_config(STORED, {"evry_seconds": 60, "colour": "red"})
    errors = {err["loc"][0]: err["msg"] for err in info.value.errors()}
    assert "did you mean 'every_seconds'?" in errors["evry_seconds"]
    assert errors["colour"] == "unknown field colour"


def test_disagreeing_aliases_in_a_patch_name_every() -> None:
    with pytest.raises(ValidationError) as info:
        merge_config(None, {"every": 60, "every_seconds": 120})
    assert info.value.errors()[0]["loc"] == ("every",)


def test_config_patch_model_keeps_only_what_was_sent() -> None:
    patch = ConfigPatch.model_validate({"every": "30m", "model": None})
    assert patch.to_patch() == {"every": "30m", "model": None}
    assert merge_config(STORED, patch.to_patch()).every_seconds == 1800
    with pytest.raises(ValidationError):
        ConfigPatch.model_validate({"nope": 1})


# -- stored JSON ----------------------------------------------------------------------------


def test_json_round_trip() -> None:
    text = config_to_json(STORED)
    assert json.loads(text)["active_hours_start"] == "09:00"
    assert config_from_json(text) == STORED


@pytest.mark.parametrize("text", [None, "", "   ", "not json", "[1, 2]", "null", '"x"', "{"])
def test_unreadable_rows_fall_back_to_defaults(text: str | None) -> None:
    assert config_from_json(text, thread_id="t") == HeartbeatConfig()


def test_unreadable_row_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="crt_loops.heartbeat.config"):
        config_from_json("{broken", thread_id="t1")
    assert "thread t1" in caplog.text and "not JSON" in caplog.text


def test_older_rows_are_repaired_field_by_field(caplog: pytest.LogCaptureFixture) -> None:
    old = {
        "enabled": True,
        "every": 600,  # the earlier implementation's key
        "retired_option": 1,
        "timezone": "Nowhere/Land",
        "active_hours_start": 9,
        "active_hours_end": 30,
        "target": "comment",
    }
    with caplog.at_level(logging.WARNING, logger="crt_loops.heartbeat.config"):
        config = config_from_json(json.dumps(old), thread_id="legacy")
    assert config.enabled and config.every_seconds == 600 and config.target == "comment"
    assert config.timezone is None
    assert config.active_hours_minutes() is None  # a broken half clears the whole window
    assert "retired_option" in caplog.text
    assert "timezone" in caplog.text


def test_canonical_key_wins_over_legacy_alias_in_a_row() -> None:
    assert config_from_json('{"every": 60, "every_seconds": 120}').every_seconds == 120


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=10,
)
config_keys = st.sampled_from([*HeartbeatConfig.model_fields, "every", "other"])


@settings(max_examples=200, deadline=None)
@given(
    text=st.one_of(
        st.text(max_size=200),
        st.dictionaries(config_keys, json_values, max_size=8).map(json.dumps),
    )
)
def test_reading_a_stored_row_never_raises(text: str) -> None:
    assert isinstance(config_from_json(text), HeartbeatConfig)


valid_configs = st.builds(
    HeartbeatConfig,
    enabled=st.booleans(),
    every_seconds=st.integers(10, 604800),
    target=st.sampled_from(["any", "none", "post", "comment,vote", "post,vote"]),
    model=st.sampled_from([None, "llama3.2:latest"]),
    max_tokens=st.integers(1, 8192),
    temperature=st.floats(0, 2),
    max_actions=st.integers(1, 5),
    timezone=st.sampled_from([None, "UTC", "Europe/Berlin"]),
)


@settings(max_examples=100, deadline=None)
@given(config=valid_configs)
def test_round_trip_property(config: HeartbeatConfig) -> None:
    assert config_from_json(config_to_json(config)) == config
    assert merge_config(config, {}) == config


# -- zones ----------------------------------------------------------------------------------


def test_effective_zone_prefers_config_then_default_then_host(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TZ", "Asia/Tokyo")
    with_zone = HeartbeatConfig(timezone="America/New_York")
    assert effective_timezone(with_zone, "Europe/Berlin") == ZoneInfo("America/New_York")
    assert effective_timezone(HeartbeatConfig(), "Europe/Berlin") == ZoneInfo("Europe/Berlin")
    assert effective_timezone(HeartbeatConfig(), None) == ZoneInfo("Asia/Tokyo")
    assert host_timezone() == ZoneInfo("Asia/Tokyo")


def test_host_zone_without_tz_is_still_a_zone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TZ", raising=False)
    assert isinstance(host_timezone(), ZoneInfo)


def test_active_window_uses_the_configured_zone() -> None:
    """Regression (docs/reference.md §6): active hours ignored the configured zone."""
    config = HeartbeatConfig.model_validate(
        {"active_hours_start": 9, "active_hours_end": 17, "timezone": "America/New_York"}
    )
    window = config.active_window("UTC")
    assert window == ActiveWindow(540, 1020, ZoneInfo("America/New_York"))
    four_pm_new_york = 1718049600.0  # 2024-06-10 20:00 UTC
    assert window.contains(four_pm_new_york)
    utc_window = config.model_copy(update={"timezone": None}).active_window("UTC")
    assert utc_window is not None and not utc_window.contains(four_pm_new_york)
    assert HeartbeatConfig().active_window("UTC") is None
