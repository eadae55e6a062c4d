"""The format characters (Unicode category Cf): zero-width spaces, joiners, direction marks,
tag characters. A model or a post can hide them inside a secret, a fence marker or a phone
number; the fence (heartbeat/fence.py), the secret check (heartbeat/redaction.py) and the
private-data check (heartbeat/private_data.py) delete them with ``str.translate`` tables
built from this set on first use: one pass in C, where a Python test per character cost
milliseconds a heartbeat (bench/heartbeat.py).
"""

from __future__ import annotations

import functools
import unicodedata

#: Where format characters are assigned: the first three planes and plane 14 (the tags).
#: Planes 3-13 hold ideographs or nothing and 15-16 private use; scanning only these ranges
#: takes 30 ms instead of 130 ms of a heartbeat run that holds the GIL meanwhile (bench/scale.py)
#: and gives the same set (tests/heartbeat/test_invisible.py checks it against every code point).
CF_RANGES = (range(0x30000), range(0xE0000, 0xF0000))


@functools.cache
def format_characters() -> frozenset[int]:
    """Every code point of category Cf."""
    return frozenset(
        cp for span in CF_RANGES for cp in span if unicodedata.category(chr(cp)) == "Cf"
    )


@functools.cache
def invisible_deleted() -> dict[int, None]:
    """A ``str.translate`` table deleting format (Cf) and control (Cc) characters, except
    newline and tab: multi-line text keeps its lines."""
    controls = [*range(0x20), *range(0x7F, 0xA0)]  # category Cc
    return {cp: None for cp in [*format_characters(), *controls] if chr(cp) not in "\n\t"}
