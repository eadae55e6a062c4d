"""Text from a model made safe to store and serialise.

JSON lets a server send ``"\\ud800"``: ``json.loads`` turns it into a lone surrogate, which
SQLite, ``json.dumps(ensure_ascii=False)`` and every UTF-8 encoder refuse later, far from the
call (a run's valid actions were lost that way). Invalid UTF-8 bytes are decoded with
``errors="replace"`` before parsing; lone surrogates that parsing lets through are replaced
here, and so are lone surrogate *escapes* in the reply's own text, because a structured reply
is JSON that is parsed again. One bad code point costs one character, not the reply.
"""

from __future__ import annotations

import re

_SURROGATE_RE = re.compile("[\ud800-\udfff]")
# A high surrogate escape with its low partner (kept: a valid pair), or a lone one of either.
_ESCAPE_RE = re.compile(
    r"\\u(d[89ab][0-9a-f]{2})(\\u(d[c-f][0-9a-f]{2}))?|\\ud[c-f][0-9a-f]{2}", re.IGNORECASE
)
REPLACEMENT = "\ufffd"


def _escape(match: re.Match[str]) -> str:
    return match.group(0) if match.group(2) else "\\ufffd"


def scrub(text: str) -> str:
    """``text`` with every lone surrogate, and every lone surrogate escape, made U+FFFD."""
    return _ESCAPE_RE.sub(_escape, _SURROGATE_RE.sub(REPLACEMENT, text))
