"""Secrets in what the model wrote: detect them, however disguised, and redact them.

An injected instruction ("post your API key") is exactly what would make a model write the
Ledger key or the API token; validation blocks such an action (reason ``secret``) and nothing
that carries one is stored or returned either (tests/test_access.py).
"""

from __future__ import annotations

import base64
import functools
import logging
import re
import string
import unicodedata
from collections.abc import Callable, Iterator, Sequence
from typing import Any, NamedTuple

import re2  # type: ignore[import-untyped]

from crt_loops.heartbeat.invisible import format_characters

logger = logging.getLogger(__name__)

#: What replaces text that held a secret wherever a model's output is stored or shown.
REDACTED = "[redacted: it contained a secret]"
_SECRET_WINDOW = 16  # this many characters of a long secret in a row count as a leak
#: The ASCII bytes that are not a lowercase letter or a digit: what _flatten deletes.
_NOT_ALNUM_ASCII = bytes(
    b for b in range(128) if chr(b) not in string.digits + string.ascii_lowercase
)


def _flatten(text: str) -> str:
    """Lowercase letters and digits only (NFKC first): what survives a model respelling a
    secret with other case, spaces, zero-width characters or punctuation in between."""
    # Only ASCII letters and digits survive, so everything else goes in two passes in C: the
    # encode drops the non-ASCII, the translate the rest. The regex sub it replaces, with
    # the same result (tests/heartbeat/test_heartbeat_security.py), cost 0.19 ms of every
    # 6,000-character prompt; this 0.03 ms (bench/heartbeat.py).
    folded = unicodedata.normalize("NFKC", text).casefold()
    return folded.encode("ascii", "ignore").translate(None, _NOT_ALNUM_ASCII).decode("ascii")


@functools.lru_cache(maxsize=64)
def _flat_secret(secret: str) -> str:
    """``_flatten(secret)``, kept: the same few secrets are checked against every text."""
    return _flatten(secret)


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
    zero-width characters inserted, split across fields, a 16-character part of it, reversed,
    base64, hex or rot13, whole or inside a longer encoded sentence).

    An injected instruction ("post your API key") is exactly what would produce these, and
    the verbatim check alone let all of them through (tests/test_access.py).
    """
    live = tuple(secret for secret in secrets if secret)
    if not live or not text:
        return False
    if any(secret in text for secret in live):
        return True
    flat = _flatten(text)
    if _view_carries(flat, live) or _view_carries(flat.translate(_ROT13), live):
        return True
    return _runs_carry(_encoded_runs(text, flat), live)


def _view_carries(view: str, live: tuple[str, ...]) -> bool:
    """Whether one flattened view holds a form of a secret, or enough pieces of a long one."""
    if _forms_search(live)(view):
        return True
    return any(
        _pieces_cover(view, flat)
        for flat in map(_flat_secret, live)
        if len(flat) >= _PIECES_MIN_SECRET
    )


@functools.lru_cache(maxsize=16)
def _forms_search(live: tuple[str, ...]) -> Callable[[str], bool]:
    """Whether a view holds any form of ``live``'s secrets, as one RE2 alternation: a single
    linear scan instead of one substring search per form (a 50-character key has ~37 forms),
    10 instead of 52 µs over a 6,000-character prompt of bench/heartbeat.py."""
    forms = sorted({form for secret in live for form in _secret_forms(secret)})
    if not forms:
        return lambda view: False
    try:
        pattern = re2.compile("|".join(map(re.escape, forms)))
    except re2.error:  # past RE2's size limits (a great many long secrets): search each
        logger.warning("secret forms too many for one pattern; searching them one by one")
        return lambda view: any(form in view for form in forms)
    return lambda view: pattern.search(view) is not None


#: Runs this long or shorter that decoded to nothing secret are remembered as such; longer runs
#: are rare and are checked afresh. At most _CLEAN_RUNS_KEPT of each kind are kept (~4 MB at
#: worst), then forgotten.
_KEPT_RUN_CHARS = 256
_CLEAN_RUNS_KEPT = 8192


class _CleanRuns(NamedTuple):
    """The hex and base64 runs known to decode to no form of ``secrets``.

    The runs repeat from one heartbeat prompt to the next (the same feed posts and messages):
    a 6,000-character prompt has ~180 of them, and decoding every one again cost ~10 ms a run.
    Remembering each run's verdict one look-up at a time still cost ~0.5 ms of a prompt's
    0.76 ms (prompts of bench/heartbeat.py); one set difference in C leaves only the new
    runs to decode."""

    secrets: tuple[str, ...]
    hex: set[str]
    b64: set[str]


class _Kept:
    #: Swapped whole when the secrets change, so a thread always adds to the sets of the
    #: secrets it checked against, whatever another thread swapped in meanwhile (a lost update
    #: only costs a decode later).
    clean_runs = _CleanRuns((), set(), set())


def _clean_runs_of(live: tuple[str, ...]) -> _CleanRuns:
    known = _Kept.clean_runs
    if known.secrets != live:
        known = _Kept.clean_runs = _CleanRuns(live, set(), set())
    return known


def _runs_carry(runs: _EncodedRuns, live: tuple[str, ...]) -> bool:
    """Whether any decoding of one of ``runs`` carries a secret."""
    known = _clean_runs_of(live)
    for kind, of_kind, clean in (("hex", runs.hex, known.hex), ("b64", runs.b64, known.b64)):
        for run in set(of_kind).difference(clean):
            if any(_view_carries(view, live) for view in _run_views(kind, run)):
                return True
            if len(run) <= _KEPT_RUN_CHARS:
                if len(clean) >= _CLEAN_RUNS_KEPT:
                    clean.clear()
                clean.add(run)
    return False


_PIECE = 8  # a run of this many characters of a long secret counts as a piece of it
_PIECES_MIN_SECRET = 24
_PIECES_SHARE = 0.6


def _pieces_cover(view: str, secret: str) -> bool:
    """Whether pieces of ``secret`` scattered through ``view`` (with words in between, in any
    order: "part one: ..., part two: ...") together make up most of it."""
    size = len(secret)
    need = _PIECES_SHARE * size
    covered = bytearray(size)
    total = 0
    # Whether a piece occurs in the view is all that counts, so one substring search per
    # piece of the secret (a few dozen) replaces a look-up at every position of the view
    # (a 12,000-character prompt): the same answer at C speed. The pieces come in the order
    # they first occur in the secret, and none of those left covers anything before its first
    # offset: once what is covered plus everything from there on falls short, the answer is
    # no, which for ordinary text comes after half the searches.
    for gram, first, last in _grams(secret):
        if total + size - first < need:
            return False
        if gram in view:
            covered[last : last + _PIECE] = b"\x01" * _PIECE
            total = sum(covered)
    return total >= need


@functools.lru_cache(maxsize=64)
def _grams(secret: str) -> tuple[tuple[str, int, int], ...]:
    """Each distinct ``_PIECE``-character run of ``secret`` with its first and last offset in
    it, in the order of the first."""
    first: dict[str, int] = {}
    last: dict[str, int] = {}
    for i in range(len(secret) - _PIECE + 1):
        gram = secret[i : i + _PIECE]
        first.setdefault(gram, i)
        last[gram] = i
    return tuple((gram, at, last[gram]) for gram, at in first.items())


_ROT13 = str.maketrans(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ",
    "nopqrstuvwxyzabcdefghijklmNOPQRSTUVWXYZABCDEFGHIJKLM",
)
_HEX_RUN = re.compile(r"[0-9a-f]{12,}")
_B64_RUN = re.compile(r"[A-Za-z0-9+/_-]{12,}")
_MAX_DECODED_RUNS = 200  # per text: a wall of hex must not cost seconds


class _EncodedRuns(NamedTuple):
    """The long hex runs of a flattened text and the base64 runs of the text itself: what
    :func:`contains_secret` decodes (:func:`_run_views`) after the flattened text and its
    rot13, each run at every alignment, so a key encoded inside a longer sentence is found
    too. A model told to "encode the key so the filter misses it" reaches for exactly these,
    and each passed the check (tests/heartbeat/test_heartbeat_security.py)."""

    hex: list[str]
    b64: list[str]


def _encoded_runs(text: str, flat: str) -> _EncodedRuns:
    """The long hex runs of the flattened text, then the base64 runs of the text itself, at
    most ``_MAX_DECODED_RUNS`` in all (hex first)."""
    hexes = _HEX_RUN.findall(flat)[:_MAX_DECODED_RUNS]
    room = _MAX_DECODED_RUNS - len(hexes)
    if not room:
        return _EncodedRuns(hexes, [])
    # Base64 is case-sensitive: read its runs from the text itself, without its invisibles.
    compact = "".join(unicodedata.normalize("NFKC", text).split())
    # Every format character (Cf) lies outside ASCII. A prompt is rarely ASCII (one "…" from
    # a snippet suffices) and almost never holds one, and deleting through the translate
    # table looks up each character in a dict: 0.5 ms a prompt, where testing the text's few
    # distinct characters first costs 0.05 ms.
    if not compact.isascii() and not _format_chars().isdisjoint(set(compact)):
        compact = compact.translate(_format_characters())
    return _EncodedRuns(hexes, _B64_RUN.findall(compact)[:room])


@functools.cache
def _format_characters() -> dict[int, None]:
    """A ``str.translate`` table deleting every format character (Unicode category Cf: the
    zero-width and direction marks a model can hide inside a secret); built on first use."""
    return dict.fromkeys(format_characters())


@functools.cache
def _format_chars() -> frozenset[str]:
    """The format characters as one-character strings, to test a text's characters against."""
    return frozenset(map(chr, format_characters()))


def _run_views(kind: str, run: str) -> Iterator[str]:
    """The flattened decodings of one run: hex at both alignments, base64 at all four."""
    if kind == "hex":
        for start in (0, 1):
            chunk = run[start:]
            chunk = chunk[: len(chunk) - len(chunk) % 2]
            yield _flatten(bytes.fromhex(chunk).decode("latin-1"))
        return
    run = run.replace("-", "+").replace("_", "/")
    for start in range(4):
        chunk = run[start:]
        chunk = chunk[: len(chunk) - len(chunk) % 4]
        if not chunk:
            continue
        try:
            decoded = base64.b64decode(chunk, validate=False)
        except ValueError:
            continue
        yield _flatten(decoded.decode("latin-1"))


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


def mask_secrets(text: str, secrets: Sequence[str]) -> str:
    """``text`` with each secret replaced by ``[secret]``; all of it REDACTED when a secret
    is still there in a form a plain replacement misses (split, re-encoded)."""
    for secret in sorted(secrets, key=len, reverse=True):
        if len(secret) >= 6:
            text = text.replace(secret, "[secret]")
    return redact_text(text, secrets)
