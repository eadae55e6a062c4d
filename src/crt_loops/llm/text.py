"""Text from a model made safe to store and serialise.

JSON lets a server send ``"\\ud800"``: ``json.loads`` turns it into a lone surrogate, which
SQLite, ``json.dumps(ensure_ascii=False)`` and every UTF-8 encoder refuse later, far from the
call. Invalid UTF-8 bytes are decoded with ``errors="replace"`` before parsing; what parsing
still lets through is replaced here, so one bad code point costs one character, not the reply.
"""

from __future__ import annotations

import re

_SURROGATE_RE = re.compile("[\ud800-\udfff]")
REPLACEMENT = "\ufffd"


def scrub(text: str) -> str:
    """``text`` with every lone surrogate replaced by U+FFFD."""
    return _SURROGATE_RE.sub(REPLACEMENT, text)
