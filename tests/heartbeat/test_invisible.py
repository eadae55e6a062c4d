"""The format-character set is every Cf code point, though only some ranges are scanned."""

from __future__ import annotations

import sys
import unicodedata

from crt_loops.heartbeat.invisible import format_characters


def test_the_scanned_ranges_hold_every_format_character() -> None:
    every = {cp for cp in range(sys.maxunicode + 1) if unicodedata.category(chr(cp)) == "Cf"}
    assert format_characters() == frozenset(every)
    assert {0x200B, 0x200D, 0x2066, 0xFEFF, 0xE0001} <= format_characters()
