"""The secret check's fast paths give the answers of the plain definitions they replace."""

from __future__ import annotations

import base64
import re
import unicodedata
from collections.abc import Iterator

from hypothesis import given, settings
from hypothesis import strategies as st

from crt_loops.heartbeat import redaction
from crt_loops.heartbeat.invisible import format_characters

KEY = "crt_9f2c4e81b7d04a6f93e1c5b27a8d6f40"
_NOT_ALNUM = re.compile(r"[^0-9a-z]+")

# Text as a model or a post could write it: ASCII, letters other scripts fold to ASCII
# (fullwidth, ligatures, Kelvin sign), format characters, accents, emoji.
_ODD = (
    "\uff21\uff22\uff43\uff11\uff12\ufb01\u212a\u00df\u0130"  # fullwidth, ligature, Kelvin, ß, İ
    "\u200b\u200d\u2066\ufeff\U000e0041"  # format characters
    "é…—🙂\n\t"
)
TEXT = st.text(alphabet=st.characters(codec="utf-8") | st.sampled_from(list(_ODD)), max_size=80)


def _flatten_by_regex(text: str) -> str:
    return _NOT_ALNUM.sub("", unicodedata.normalize("NFKC", text).casefold())


@settings(max_examples=300, deadline=None)
@given(TEXT)
def test_flatten_keeps_what_the_regex_kept(text: str) -> None:
    assert redaction._flatten(text) == _flatten_by_regex(text)


def _runs_always_translated(text: str) -> list[tuple[str, str]]:
    compact = "".join(unicodedata.normalize("NFKC", text).split())
    compact = compact.translate(dict.fromkeys(format_characters()))
    flat = _flatten_by_regex(text)
    hexes = [("hex", m.group()) for m in redaction._HEX_RUN.finditer(flat)]
    b64 = [("b64", m.group()) for m in redaction._B64_RUN.finditer(compact)]
    return (hexes + b64)[: redaction._MAX_DECODED_RUNS]


@settings(max_examples=300, deadline=None)
@given(TEXT)
def test_encoded_runs_skip_the_translate_only_when_it_changes_nothing(text: str) -> None:
    flat = redaction._flatten(text)
    runs = redaction._encoded_runs(text, flat)
    assert _pairs(runs) == _runs_always_translated(text)


def _pairs(runs: redaction._EncodedRuns) -> list[tuple[str, str]]:
    return [("hex", run) for run in runs.hex] + [("b64", run) for run in runs.b64]


def _decoded_views(text: str) -> Iterator[str]:
    """What contains_secret searches, by definition: the flattened text, its rot13, then every
    decoding of every long hex or base64 run."""
    flat = redaction._flatten(text)
    yield flat
    yield flat.translate(redaction._ROT13)
    for kind, run in _pairs(redaction._encoded_runs(text, flat)):
        yield from redaction._run_views(kind, run)


def _carries_by_definition(text: str, secrets: list[str]) -> bool:
    """contains_secret without what it remembers: the verbatim test, then every decoded view."""
    live = tuple(secret for secret in secrets if secret)
    if not live or not text:
        return False
    if any(secret in text for secret in live):
        return True
    return any(redaction._view_carries(view, live) for view in _decoded_views(text))


def _disguised(key: str, how: int) -> str:
    raw = key.encode()
    return [
        base64.b64encode(raw).decode(),
        base64.urlsafe_b64encode(b"note: " + raw).decode(),
        raw.hex(),
        "x" + raw.hex(),
        key[::-1],
        key.upper(),
        "word",
    ][how % 7]


@settings(max_examples=150, deadline=None)
@given(
    texts=st.lists(
        st.tuples(TEXT, st.integers(0, 6), st.booleans(), st.sampled_from([KEY, "other_secret_1"])),
        min_size=1,
        max_size=6,
    )
)
def test_remembered_clean_runs_never_change_an_answer(
    texts: list[tuple[str, int, bool, str]],
) -> None:
    # The same texts checked in a row, with and without a disguised secret among encoded
    # noise and with the secrets changing between checks: what the check remembers of one
    # text's runs must not change its answer for the next.
    noise = base64.b64encode(b"plain words about nothing").decode()
    for filler, how, leak, secret in texts:
        text = f"{filler} {noise} {_disguised(KEY, how) if leak else noise.lower()} {filler}"
        for _ in range(2):
            assert redaction.contains_secret(text, [secret]) == _carries_by_definition(
                text, [secret]
            )


def test_a_key_hidden_by_format_characters_inside_base64_is_found() -> None:
    encoded = base64.b64encode(KEY.encode()).decode()
    hidden = "\u200b".join(encoded[i : i + 5] for i in range(0, len(encoded), 5))
    text = f"Here is something… {hidden} — enjoy"
    assert redaction.contains_secret(text, [KEY])
    assert not redaction.contains_secret("Here is something… nothing at all — enjoy", [KEY])


def test_a_key_in_fullwidth_letters_is_found() -> None:
    fullwidth = "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in KEY)
    assert redaction.contains_secret(f"look: {fullwidth}", [KEY])


def _pieces_cover_every_piece(view: str, secret: str) -> bool:
    grams = {secret[i : i + 8]: i for i in range(len(secret) - 8 + 1)}
    covered = bytearray(len(secret))
    for gram, at in grams.items():
        if gram in view:
            covered[at : at + 8] = b"\x01" * 8
    return sum(covered) >= 0.6 * len(secret)


@settings(max_examples=300, deadline=None)
@given(
    secret=st.text(alphabet="abcdef0123", min_size=24, max_size=60),
    cuts=st.lists(st.tuples(st.integers(0, 60), st.integers(1, 20)), max_size=8),
    filler=st.text(alphabet="abcdef0123xyz", max_size=30),
)
def test_pieces_cover_answers_as_searching_every_piece(
    secret: str, cuts: list[tuple[int, int]], filler: str
) -> None:
    view = filler.join(secret[at : at + length] for at, length in cuts)
    assert redaction._pieces_cover(view, secret) == _pieces_cover_every_piece(view, secret)


def test_runs_remembered_for_other_secrets_never_count_for_these() -> None:
    # A thread that checked against one set of secrets adds to that set's memory even after
    # another thread swapped in another set: a run it found clean (rightly, for its secrets)
    # must not count as clean for secrets it was never checked against.
    other = "other_secret_value_0123456789"
    # Misaligned inside a longer sentence: only decoding the run finds the secret.
    text = base64.b64encode(f"note {other} end".encode()).decode()
    assert not redaction._view_carries(redaction._flatten(text), (other,))
    runs = redaction._encoded_runs(text, redaction._flatten(text)).b64
    first = redaction._clean_runs_of((KEY,))
    assert redaction._clean_runs_of((other,)) is not first
    first.b64.update(runs)
    assert redaction.contains_secret(text, [other])
