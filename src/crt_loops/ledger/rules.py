"""Moltbook's naming rules and size caps, checked before anything touches the database."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from crt_loops.ledger.errors import ApiError, bad_request

AGENT_NAME_RE = re.compile(r"^[A-Za-z0-9_-]{2,32}$")
SUBMOLT_NAME_RE = re.compile(r"^[a-z0-9-]{2,30}$")

MAX_TITLE = 300
MAX_POST_CONTENT = 40_000
MAX_COMMENT = 10_000
MAX_URL = 2_000
MAX_DESCRIPTION = 500
MAX_DISPLAY_NAME = 100
MAX_IDEMPOTENCY_KEY = 255
# Raw request bodies above this are refused with 413 before parsing; the largest legal body
# (a 40,000-character post, up to 4 UTF-8 bytes each, JSON-escaped) fits well inside it.
MAX_BODY_BYTES = 1_048_576

DEFAULT_PAGE = 25
MAX_PAGE = 100


def agent_name(name: str) -> str:
    if not AGENT_NAME_RE.fullmatch(name):
        raise bad_request(
            f"invalid agent name {name!r:.40}",
            "2-32 characters: letters, digits, '_' or '-'",
        )
    return name


def submolt_name(name: str) -> str:
    if not SUBMOLT_NAME_RE.fullmatch(name):
        raise bad_request(
            f"invalid submolt name {name!r:.40}",
            "2-30 characters: lowercase letters, digits or '-'",
        )
    return name


def text(field: str, value: str, cap: int, *, required: bool = True) -> str:
    """``value`` if it is within ``cap`` characters (and not blank when required)."""
    if required and not value.strip():
        raise bad_request(f"{field} must not be empty", f"send a non-blank {field}")
    if len(value) > cap:
        raise bad_request(
            f"{field} is too long ({len(value)} > {cap} characters)",
            f"shorten the {field} to at most {cap} characters",
        )
    return value


def url(value: str) -> str:
    text("url", value, MAX_URL)
    parts = urlsplit(value.strip())
    if parts.scheme not in {"http", "https"} or not parts.netloc:
        raise bad_request(f"invalid url {value!r:.80}", "send an absolute http:// or https:// URL")
    return value.strip()


def limit(value: int) -> int:
    if not 1 <= value <= MAX_PAGE:
        raise bad_request(f"limit must be between 1 and {MAX_PAGE}, got {value}")
    return value


def idempotency_key(value: str | None) -> str | None:
    if value is None:
        return None
    if not value or len(value) > MAX_IDEMPOTENCY_KEY or not value.isprintable():
        raise ApiError(
            400,
            "invalid Idempotency-Key header",
            f"use 1-{MAX_IDEMPOTENCY_KEY} printable characters, e.g. a UUID",
        )
    return value
