"""HeartbeatConfig: one thread's heartbeat settings (docs/architecture.md §4), stored as JSON in
``thread_sessions.heartbeat_config_json``.

Input is forgiving where a person would expect it (``every`` or ``every_seconds``, "30m" or
1800, hours as 9 or "09:00", "Comment, Vote"), output is canonical (``every_seconds`` in
seconds, hours as "HH:MM", targets in a fixed order), and anything wrong is a
``pydantic.ValidationError`` naming the field and the rule, which the route answers with 422.

A POST is a *partial* update: :func:`merge_config` applies only the fields it names (the earlier
implementation reset every omitted field: docs/reference.md §6).
"""

from __future__ import annotations

import difflib
import json
import logging
import math
import os
import re
import zoneinfo
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from crt_loops.heartbeat.schedule import ActiveWindow

logger = logging.getLogger(__name__)

MIN_EVERY_SECONDS = 10
MAX_EVERY_SECONDS = 7 * 86400
TARGET_ACTION_TYPES: tuple[str, ...] = ("post", "comment", "vote")  # canonical order
SUBMOLT_RE = re.compile(r"^[a-z0-9-]{2,30}$")  # Moltbook's submolt name rule

_TARGET_ALIASES = {"all": "any", "posts": "post", "comments": "comment", "votes": "vote"}
_DURATION_UNITS = {
    **dict.fromkeys(("s", "sec", "secs", "second", "seconds"), 1),
    **dict.fromkeys(("m", "min", "mins", "minute", "minutes"), 60),
    **dict.fromkeys(("h", "hr", "hrs", "hour", "hours"), 3600),
    **dict.fromkeys(("d", "day", "days"), 86400),
}
_DURATION_RE = re.compile(r"(?:\d+(?:\.\d+)?[a-z]+)+")
_DURATION_PART_RE = re.compile(r"(\d+(?:\.\d+)?)([a-z]+)")
_CLOCK_RE = re.compile(r"(\d{1,2})(?::(\d{2}))?")
_MODEL_NAME_RE = re.compile(r"[^\s\x00-\x1f\x7f]{1,200}")


def parse_duration(value: object) -> int:
    """Seconds from an int, a whole float, a digit string or a duration such as "1h30m".

    Units: s, m, h, d (also sec/min/hour/day and plurals). Raises ValueError with a sentence.
    """
    if isinstance(value, bool):
        raise ValueError("must be a number of seconds or a duration such as '30m', not a boolean")
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        if not (math.isfinite(value) and value.is_integer()):
            raise ValueError(f"must be a whole number of seconds, got {value!r}")
        return int(value)
    if not isinstance(value, str):
        raise ValueError("must be a number of seconds or a duration such as '30m', '1h', '2d'")
    text = "".join(value.split()).lower()
    if len(text) > 40:
        raise ValueError("duration string is too long")
    if text.isdigit():
        return int(text)
    if not _DURATION_RE.fullmatch(text):
        raise ValueError(
            f"{value!r} is not a duration; use seconds (1800) or forms such as '30m', '1h', "
            "'1h30m', '90s', '2d'"
        )
    total = 0.0
    for amount, unit in _DURATION_PART_RE.findall(text):
        if unit not in _DURATION_UNITS:
            raise ValueError(f"unknown duration unit {unit!r} in {value!r}; use s, m, h or d")
        total += float(amount) * _DURATION_UNITS[unit]
    if not total.is_integer():
        raise ValueError(f"{value!r} is not a whole number of seconds")
    return int(total)


def _parse_target(value: object) -> str:
    if isinstance(value, str):
        parts: list[object] = list(value.split(","))
    elif isinstance(value, list | tuple):
        parts = list(value)
    else:
        raise ValueError("must be a string such as 'any', 'none', 'post' or 'comment,vote'")
    names: list[str] = []
    for part in parts:
        if not isinstance(part, str):
            raise ValueError("every target must be a string")
        name = part.strip().lower()
        if name:
            names.append(_TARGET_ALIASES.get(name, name))
    if not names:
        raise ValueError("must not be empty; use 'none' to decide and record without acting")
    allowed = {"any", "none", *TARGET_ACTION_TYPES}
    for name in names:
        if name not in allowed:
            raise ValueError(
                f"unknown target {name!r}; use any, none, post, comment, vote, or a comma list "
                "such as 'comment,vote'"
            )
    chosen = set(names)
    if "none" in chosen and len(chosen) > 1:
        raise ValueError("'none' cannot be combined with other targets")
    if "any" in chosen and len(chosen) > 1:
        raise ValueError("'any' already allows every action; do not combine it with others")
    if chosen in ({"any"}, {"none"}):
        return names[0]
    if chosen == set(TARGET_ACTION_TYPES):
        return "any"
    return ",".join(t for t in TARGET_ACTION_TYPES if t in chosen)


def _parse_clock(value: object, field: str) -> str | None:
    """ "HH:MM" from an hour 0-24 or an "H", "HH:MM" string; 24 only as the end of the day."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise ValueError("must be an hour 0-24 or a time such as '09:30', not a boolean")
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, int):
        hours, minutes = value, 0
    elif isinstance(value, str):
        text = value.strip()
        if not text:
            return None
        match = _CLOCK_RE.fullmatch(text)
        if match is None:
            raise ValueError(f"{value!r} is not a time; use an hour 0-24 or 'HH:MM' (e.g. '09:30')")
        hours, minutes = int(match.group(1)), int(match.group(2) or 0)
    else:
        raise ValueError("must be an hour 0-24 or a time such as '09:30'")
    if not (0 <= hours <= 24 and 0 <= minutes <= 59) or (hours == 24 and minutes):
        raise ValueError(f"{value!r} is not a time of day between 00:00 and 24:00")
    if hours == 24 and field == "active_hours_start":
        raise ValueError("24:00 (end of day) is only valid for active_hours_end; use 0 or '00:00'")
    return f"{hours:02d}:{minutes:02d}"


def _clock_minutes(text: str) -> int:
    hours, minutes = text.split(":")
    return int(hours) * 60 + int(minutes)


def _same_duration(every: object, every_seconds: object) -> bool:
    """Whether the two spellings of the interval name the same number of seconds."""
    try:
        return parse_duration(every) == parse_duration(every_seconds)
    except ValueError:
        return False


def _reject_bool(value: object) -> object:
    # pydantic's lax mode turns true into 1; a boolean where a number belongs is a mistake.
    if isinstance(value, bool):
        raise ValueError("must be a number, not a boolean")
    return value


class HeartbeatConfig(BaseModel):
    """One thread's heartbeat settings (docs/architecture.md §4). Immutable: change it with
    merge_config."""

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)

    enabled: bool = Field(False, description="run this thread's heartbeat on its schedule")
    every_seconds: int = Field(
        1800,
        ge=MIN_EVERY_SECONDS,
        le=MAX_EVERY_SECONDS,
        description="interval; input also as `every`, and as '30m', '1h', '1h30m', '2d'",
    )
    target: str = Field(
        "any",
        description="allowed actions: any, none (decide and record, execute nothing), post, "
        "comment, vote, or a comma list such as 'comment,vote'",
    )
    model: str | None = Field(None, description="Ollama model; null means CRT_OLLAMA_MODEL")
    max_tokens: int = Field(500, ge=1, le=8192, description="num_predict for the decision")
    temperature: float = Field(0.7, ge=0, le=2, allow_inf_nan=False)
    dry_run: bool = Field(False, description="full pipeline, nothing sent to the Ledger")
    active_hours_start: str | None = Field(
        None, description="'HH:MM' (input also an hour 0-24), inclusive; null: all day"
    )
    active_hours_end: str | None = Field(
        None, description="'HH:MM' (input also an hour 0-24; 24 is end of day), exclusive"
    )
    timezone: str | None = Field(
        None, description="IANA zone for active hours; null: CRT_TIMEZONE, else the host's zone"
    )
    max_actions: int = Field(3, ge=1, le=5, description="actions per run")
    skip_when_unchanged: bool = Field(True, description="no LLM call when nothing is new")
    submolt: str = Field("general", description="default submolt for posts")

    @model_validator(mode="before")
    @classmethod
    def _accept_every(cls, data: Any) -> Any:
        # The seed writes both `every` and `every_seconds`; the earlier implementation stored
        # one and read the other, so per-thread intervals were silently ignored (docs/reference.md
        # §6).
        if not isinstance(data, Mapping) or "every" not in data:
            return data
        values = dict(data)
        every = values.pop("every")
        if "every_seconds" in values:
            if not _same_duration(every, values["every_seconds"]):
                raise ValueError(
                    "`every` and `every_seconds` are the same setting and disagree; send one"
                )
        else:
            values["every_seconds"] = every
        return values

    @field_validator("every_seconds", mode="before")
    @classmethod
    def _duration(cls, value: object) -> int:
        seconds = parse_duration(value)
        if not MIN_EVERY_SECONDS <= seconds <= MAX_EVERY_SECONDS:
            raise ValueError(
                f"must be between {MIN_EVERY_SECONDS} s and 7 days ({MAX_EVERY_SECONDS} s), "
                f"got {seconds} s (to turn the heartbeat off, set enabled to false)"
            )
        return seconds

    @field_validator("target", mode="before")
    @classmethod
    def _target(cls, value: object) -> str:
        return _parse_target(value)

    @field_validator("model", mode="before")
    @classmethod
    def _model(cls, value: object) -> object:
        if isinstance(value, str):
            value = value.strip() or None
            if value is not None and not _MODEL_NAME_RE.fullmatch(value):
                raise ValueError("a model name is 1-200 characters with no spaces")
        return value

    @field_validator("max_tokens", "temperature", "max_actions", mode="before")
    @classmethod
    def _numbers(cls, value: object) -> object:
        return _reject_bool(value)

    @field_validator("active_hours_start", "active_hours_end", mode="before")
    @classmethod
    def _clock(cls, value: object, info: ValidationInfo) -> str | None:
        return _parse_clock(value, info.field_name or "")

    @field_validator("active_hours_end")
    @classmethod
    def _window_pair(cls, end: str | None, info: ValidationInfo) -> str | None:
        if "active_hours_start" not in info.data:
            return end  # start was itself invalid and is already reported
        start = info.data["active_hours_start"]
        if (start is None) != (end is None):
            raise ValueError(
                "active_hours_start and active_hours_end must both be set, or both be null "
                "for no limit"
            )
        if start is not None and end is not None and _clock_minutes(start) == _clock_minutes(end):
            raise ValueError(
                f"active_hours_start and active_hours_end are both {start}: the window would "
                "never open; use different times, or null for both to run all day"
            )
        return end

    @field_validator("timezone", mode="before")
    @classmethod
    def _zone(cls, value: object) -> object:
        if not isinstance(value, str):
            return value
        name = value.strip()
        if not name:
            return None
        try:
            zoneinfo.ZoneInfo(name)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError) as exc:
            raise ValueError(
                f"{value!r} is not an IANA time zone known to tzdata (e.g. 'Europe/Berlin', "
                "'America/New_York', 'UTC')"
            ) from exc
        return name

    @field_validator("submolt", mode="before")
    @classmethod
    def _submolt(cls, value: object) -> object:
        if isinstance(value, str):
            value = value.strip().lower()
            if not SUBMOLT_RE.fullmatch(value):
                raise ValueError(
                    "a submolt name is 2-30 characters of lowercase letters, digits and hyphens"
                )
        return value

    def allowed_actions(self) -> frozenset[str]:
        """The action types this config lets the executor send (empty for target ``none``)."""
        if self.target == "any":
            return frozenset(TARGET_ACTION_TYPES)
        if self.target == "none":
            return frozenset()
        return frozenset(self.target.split(","))

    def active_hours_minutes(self) -> tuple[int, int] | None:
        """(start, end) in minutes from local midnight, or None when there is no limit."""
        if self.active_hours_start is None or self.active_hours_end is None:
            return None
        return _clock_minutes(self.active_hours_start), _clock_minutes(self.active_hours_end)

    def active_window(self, default_tz: str | None) -> ActiveWindow | None:
        """The active hours bound to :func:`effective_timezone`, or None for no limit."""
        minutes = self.active_hours_minutes()
        if minutes is None:
            return None
        return ActiveWindow(minutes[0], minutes[1], effective_timezone(self, default_tz))

    def model_or(self, default_model: str) -> str:
        """The model to call: this config's, else the settings' default."""
        return self.model or default_model


class ConfigPatch(BaseModel):
    """Body of ``POST /api/threads/{id}/heartbeat/config``: any subset of HeartbeatConfig's
    fields (plus the alias ``every``). Types are loose on purpose: the rules live in
    HeartbeatConfig and :func:`merge_config` applies them, so every error reads the same."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"example": {"enabled": True, "every": 1800, "target": "none"}},
    )

    enabled: bool | None = None
    every_seconds: int | str | None = Field(None, description="seconds or '30m', '1h', '2d'")
    every: int | str | None = Field(None, description="alias of every_seconds")
    target: str | list[str] | None = None
    model: str | None = Field(None, description="null: back to CRT_OLLAMA_MODEL")
    max_tokens: int | None = None
    temperature: float | None = None
    dry_run: bool | None = None
    active_hours_start: int | str | None = Field(None, description="hour 0-24 or 'HH:MM'")
    active_hours_end: int | str | None = Field(None, description="hour 0-24 or 'HH:MM'")
    timezone: str | None = Field(None, description="IANA zone; null: CRT_TIMEZONE or host zone")
    max_actions: int | None = None
    skip_when_unchanged: bool | None = None
    submolt: str | None = None

    def to_patch(self) -> dict[str, Any]:
        """Only the fields the client sent (an explicit null included), for merge_config."""
        return self.model_dump(exclude_unset=True)


_PATCH_KEYS = frozenset(HeartbeatConfig.model_fields) | {"every"}


def merge_config(stored: HeartbeatConfig | None, patch: Mapping[str, Any]) -> HeartbeatConfig:
    """Apply a partial update: omitted fields keep their stored value, an explicit null clears a
    nullable field. Raises pydantic.ValidationError (field name and rule) on any bad value,
    including an unknown field, which also gets a "did you mean" hint."""
    errors: list[InitErrorDetails] = []
    both = "every" in patch and "every_seconds" in patch
    if both and not _same_duration(patch["every"], patch["every_seconds"]):
        # Checked here too (the model validator also refuses it) so the 422 names a field.
        errors.append(
            InitErrorDetails(
                type=PydanticCustomError(
                    "value_error", "`every` and `every_seconds` are the same setting and disagree"
                ),
                loc=("every",),
                input=patch["every"],
            )
        )
    unknown = [key for key in patch if key not in _PATCH_KEYS]
    if unknown:
        for key in unknown:
            close = difflib.get_close_matches(str(key), sorted(_PATCH_KEYS), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            errors.append(
                InitErrorDetails(
                    type=PydanticCustomError(
                        "extra_forbidden",
                        "unknown field {field}{hint}",
                        {"field": key, "hint": hint},
                    ),
                    loc=(str(key),),
                    input=patch[key],
                )
            )
    if errors:
        raise ValidationError.from_exception_data("HeartbeatConfig", errors)
    values = (stored or HeartbeatConfig()).model_dump()
    if "every" in patch and "every_seconds" not in patch:
        del values["every_seconds"]  # the new `every` replaces the stored value
    values.update(patch)
    return HeartbeatConfig.model_validate(values)


def config_to_json(config: HeartbeatConfig) -> str:
    """The JSON stored in ``thread_sessions.heartbeat_config_json``."""
    return json.dumps(config.model_dump(mode="json"), sort_keys=True)


def config_from_json(text: str | None, *, thread_id: str | None = None) -> HeartbeatConfig:
    """Read a stored config, never failing on it: a stored row may predate today's rules.

    Unknown keys are dropped, an invalid field falls back to its default (an invalid half of the
    active hours clears both, so a broken window never silently widens into a different one),
    and unreadable JSON yields the defaults, which leave the heartbeat disabled. Each repair is
    logged as a warning naming the thread.
    """
    where = f"thread {thread_id}" if thread_id else "a stored heartbeat config"
    if text is None or not text.strip():
        return HeartbeatConfig()
    try:
        raw = json.loads(text)
    except ValueError as exc:
        logger.warning("Heartbeat config of %s is not JSON (%s); using defaults", where, exc)
        return HeartbeatConfig()
    if not isinstance(raw, dict):
        logger.warning("Heartbeat config of %s is not a JSON object; using defaults", where)
        return HeartbeatConfig()
    values = {key: value for key, value in raw.items() if key in _PATCH_KEYS}
    dropped = sorted(set(raw) - set(values))
    if dropped:
        logger.warning("Heartbeat config of %s: dropped unknown keys %s", where, dropped)
    if "every" in values and "every_seconds" in values:
        values.pop("every")  # the canonical key wins over the legacy alias
    try:
        return HeartbeatConfig.model_validate(values)
    except ValidationError as exc:
        errors = exc.errors()
    bad = {str(err["loc"][0]) for err in errors if err["loc"]}
    if bad & {"active_hours_start", "active_hours_end"}:
        bad |= {"active_hours_start", "active_hours_end"}
    if "every_seconds" in bad:
        bad.add("every")
    logger.warning(
        "Heartbeat config of %s: invalid %s reset to defaults (%s)",
        where,
        sorted(bad),
        "; ".join(str(err["msg"]) for err in errors),
    )
    for key in bad:
        values.pop(key, None)
    try:
        return HeartbeatConfig.model_validate(values)
    except ValidationError as exc:
        logger.warning("Heartbeat config of %s unusable (%s); using defaults", where, exc)
        return HeartbeatConfig()


def effective_timezone(config: HeartbeatConfig, default_tz: str | None) -> zoneinfo.ZoneInfo:
    """The zone active hours are read in: the config's, else ``default_tz`` (CRT_TIMEZONE),
    else the host's local zone."""
    for name in (config.timezone, default_tz):
        if name:
            try:
                return zoneinfo.ZoneInfo(name)
            except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
                # Settings and HeartbeatConfig validate zones; tzdata changing underneath a
                # running service is the only way here, and the next source is a sane fallback.
                logger.warning("Time zone %r is no longer known; falling back", name)
    return host_timezone()


def host_timezone() -> zoneinfo.ZoneInfo:
    """The host's local zone as a ZoneInfo: ``TZ``, then /etc/timezone, then the target of the
    /etc/localtime link, then that file's rules; UTC when none of them says."""
    candidates = [os.environ.get("TZ", "").lstrip(":").strip(), _read_etc_timezone()]
    localtime = Path("/etc/localtime")
    target = os.path.realpath(localtime)
    if "/zoneinfo/" in target:
        candidates.append(target.split("/zoneinfo/", 1)[1])
    for name in candidates:
        if not name:
            continue
        try:
            return zoneinfo.ZoneInfo(name)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
            continue
    try:
        with localtime.open("rb") as handle:
            return zoneinfo.ZoneInfo.from_file(handle, key="localtime")
    except (OSError, ValueError):
        return zoneinfo.ZoneInfo("UTC")


def _read_etc_timezone() -> str:
    try:
        return Path("/etc/timezone").read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        return ""  # not every distribution writes it; the /etc/localtime link comes next
