"""Text rules shared by every edge (the API, the Ledger, HEARTBEAT.md).

- *Invalid text*: a lone surrogate (U+D800..U+DFFF, what a broken ``"\\ud800"`` JSON escape
  decodes to) cannot be encoded as UTF-8, so it fails later, when SQLite stores it or a
  response is serialised; NUL (U+0000) truncates text in C tools and the sqlite3 shell. Both are
  refused where text enters (:func:`find_invalid_text`).
- *Invisible text*: whitespace, format characters (zero-width spaces and joiners, bidi
  controls, the BOM, tag characters), controls and the characters that render as nothing
  (U+2800 BRAILLE PATTERN BLANK, the Hangul fillers, variation selectors). A title made only of
  them looks empty, so it counts as empty (:func:`is_blank`).
- *Bidi controls*: embeddings, overrides, isolates and marks can make text display in another
  order than it is stored ("right-to-left override" spoofing); they are removed from what is
  posted to the Ledger (:func:`strip_bidi`).
- *Control characters*: HEARTBEAT.md is a text file for people; NUL and the other C0/C1
  controls (tab, newline and carriage return aside) are refused (:func:`find_control`).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

__all__ = [
    "BIDI_CONTROLS",
    "InvalidText",
    "describe",
    "find_control",
    "find_invalid_text",
    "is_blank",
    "strip_bidi",
]

#: Arabic letter mark, LRM, RLM, the embeddings and overrides (LRE..RLO), the isolates (LRI..PDI).
BIDI_CONTROLS = frozenset(
    "\u061c\u200e\u200f"
    + "".join(map(chr, range(0x202A, 0x202F)))
    + "".join(map(chr, range(0x2066, 0x206A)))
)
_BIDI_RE = re.compile("[" + "".join(sorted(BIDI_CONTROLS)) + "]")
_INVALID_RE = re.compile("[\x00\ud800-\udfff]")
# Category Cc is exactly C0, DEL and C1; tab, newline and carriage return are text.
_CONTROL_RE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")

# Letters and symbols that render as blank space although Unicode does not call them spaces.
_CONTROL_NAMES = {"\x00": "NUL", "\x1b": "ESCAPE", "\x7f": "DELETE", "\x0c": "FORM FEED"}

_BLANK_LOOKING = frozenset(
    "\u034f"  # COMBINING GRAPHEME JOINER
    "\u115f\u1160\u3164\uffa0"  # Hangul fillers
    "\u17b4\u17b5"  # Khmer inherent vowels (invisible)
    "\u180b\u180c\u180d\u180f"  # Mongolian free variation selectors
    "\u2800"  # BRAILLE PATTERN BLANK
)


def _invisible(char: str) -> bool:
    if char.isspace() or char in _BLANK_LOOKING:
        return True
    if "\ufe00" <= char <= "\ufe0f" or "\U000e0100" <= char <= "\U000e01ef":
        return True  # variation selectors
    return unicodedata.category(char) in {"Cc", "Cf", "Cs", "Zs", "Zl", "Zp"}


def is_blank(text: str) -> bool:
    """True when ``text`` shows nothing: empty, or only invisible characters."""
    return all(_invisible(char) for char in text)


def strip_bidi(text: str) -> str:
    """``text`` without bidi embeddings, overrides, isolates and directional marks."""
    return _BIDI_RE.sub("", text)


@dataclass(frozen=True)
class InvalidText:
    """Where a JSON value holds text that cannot be stored: the path to the string (keys and
    list indexes; a key itself is named by its path plus ``"(key)"``), the character's offset in
    that string and the character."""

    loc: tuple[str | int, ...]
    offset: int
    char: str

    @property
    def code_point(self) -> str:
        return f"U+{ord(self.char):04X}"

    def message(self) -> str:
        what = "a lone surrogate" if "\ud800" <= self.char <= "\udfff" else "a NUL character"
        return (
            f"contains {what} ({self.code_point}) at character {self.offset}, which is not "
            "valid Unicode text; send the text as valid UTF-8 (surrogates only in pairs)"
        )


def find_invalid_text(value: Any, loc: tuple[str | int, ...] = ()) -> InvalidText | None:
    """The first lone surrogate or NUL in a parsed JSON value (keys included), or None."""
    for path, text in _strings(value, loc):
        match = _INVALID_RE.search(text)
        if match is not None:
            return InvalidText(path, match.start(), match.group())
    return None


def _strings(value: Any, loc: tuple[str | int, ...]) -> Iterator[tuple[tuple[str | int, ...], str]]:
    # Iterative: a body nested 10,000 levels deep must not exhaust the stack here.
    stack: list[tuple[tuple[str | int, ...], Any]] = [(loc, value)]
    while stack:
        path, item = stack.pop()
        if isinstance(item, str):
            yield path, item
        elif isinstance(item, dict):
            entries = list(item.items())
            for key, child in reversed(entries):
                key_text = str(key)
                stack.append(((*path, key_text), child))
                stack.append(((*path, key_text, "(key)"), key_text))
        elif isinstance(item, list):
            children = list(enumerate(item))
            stack.extend(((*path, index), child) for index, child in reversed(children))


def find_control(text: str) -> tuple[int, str] | None:
    """The offset and character of the first control character other than tab, newline and
    carriage return (NUL, escape, DEL, C1 controls), or None."""
    match = _CONTROL_RE.search(text)
    return None if match is None else (match.start(), match.group())


def describe(char: str) -> str:
    """``U+001B (ESCAPE)``: a character named for an error message."""
    name = unicodedata.name(char, "") or _CONTROL_NAMES.get(char, "a control character")
    return f"U+{ord(char):04X} ({name})"
