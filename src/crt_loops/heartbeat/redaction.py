"""Secrets in what the model wrote: detect them, however disguised, and redact them.

An injected instruction ("post your API key") is exactly what would make a model write the
Ledger key or the API token; validation blocks such an action (reason ``secret``) and nothing
that carries one is stored or returned either (tests/test_access.py).
"""

from __future__ import annotations

import base64
import functools
import re
import unicodedata
from collections.abc import Iterator, Sequence
from typing import Any

#: What replaces text that held a secret wherever a model's output is stored or shown.
REDACTED = "[redacted: it contained a secret]"
_SECRET_WINDOW = 16  # this many characters of a long secret in a row count as a leak
_NOT_ALNUM = re.compile(r"[^0-9a-z]+")


def _flatten(text: str) -> str:
    """Lowercase letters and digits only (NFKC first): what survives a model respelling a
    secret with other case, spaces, zero-width characters or punctuation in between."""
    return _NOT_ALNUM.sub("", unicodedata.normalize("NFKC", text).casefold())


@functools.lru_cache(maxsize=64)
def _secret_forms(secret: str) -> frozenset[str]:
    """The flattened forms of ``secret`` to look for: the whole of it, every run of
    ``_SECRET_WINDOW`` characters of a long one (a partial leak), its base64 and reversal."""
    flat = _flatten(secret)
    if len(flat) < 6:
        return frozenset()  # too short to match loosely without blocking ordinary words
    forms = {flat, flat[::-1]}
    for encoded in (base64.b64encode(secret.encode()), base64.urlsafe_b64encode(secret.encode())):
        forms.add(_flatten(encoded.decode().rstrip("=")))
    if len(flat) >= 24:
        forms.update(flat[i : i + _SECRET_WINDOW] for i in range(len(flat) - _SECRET_WINDOW + 1))
    return frozenset(forms)


def contains_secret(text: str, secrets: Sequence[str]) -> bool:
    """Whether ``text`` carries one of ``secrets``, verbatim or disguised (other case, spaces or
    zero-width characters inserted, split across fields, a 16-character part of it, base64).

    An injected instruction ("post your API key") is exactly what would produce these, and
    the verbatim check alone let all of them through (tests/test_access.py).
    """
    live = [secret for secret in secrets if secret]
    if not live or not text:
        return False
    if any(secret in text for secret in live):
        return True
    flat = _flatten(text)
    return any(form in flat for secret in live for form in _secret_forms(secret))


def redact_text(text: str, secrets: Sequence[str]) -> str:
    """``text``, or REDACTED when it carries a secret."""
    return REDACTED if contains_secret(text, secrets) else text


def redact_payload(payload: dict[str, Any], secrets: Sequence[str]) -> dict[str, Any]:
    """``payload`` with every string replaced by REDACTED when any of them carries a secret
    (a secret split across fields counts too)."""
    if not contains_secret("\n".join(_strings(payload)), secrets):
        return payload
    redacted: dict[str, Any] = _redacted(payload)
    return redacted


def _strings(value: Any) -> Iterator[str]:
    """Every string in a JSON-like value (keys included)."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield str(key)
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def _redacted(value: Any) -> Any:
    """``value`` with every string in it replaced by REDACTED (keys kept)."""
    if isinstance(value, str):
        return REDACTED
    if isinstance(value, dict):
        return {key: _redacted(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_redacted(item) for item in value]
    return value
