"""The untrusted-text fence of the heartbeat prompt, and how text is kept from forging it.

Ledger text sits between ``UNTRUSTED_OPEN`` and ``UNTRUSTED_CLOSE``. Replacing only the ASCII
``<<<``/``>>>`` let a post close the fence with look-alikes the model reads the same way:
fullwidth brackets (U+FF1C), brackets split by zero-width spaces (U+200B), or the angle
quotes (U+2039) the old defusing itself produced, followed by a forged "instructions from your
owner" heading. So text is first normalised (NFKC, invisible format characters removed, angle
look-alikes mapped to ``<``/``>``), and only then are fence-like runs and the fence's own words
taken apart.
"""

from __future__ import annotations

import functools
import re
import unicodedata

from crt_loops.heartbeat.invisible import invisible_deleted

SCAFFOLD_PHRASE = "UNTRUSTED LEDGER CONTENT"
UNTRUSTED_OPEN = f"<<<{SCAFFOLD_PHRASE}>>>"
UNTRUSTED_CLOSE = f"<<<END {SCAFFOLD_PHRASE}>>>"

# Characters a reader (or a model) takes for an angle bracket. NFKC already folds the fullwidth
# and small forms (U+FF1C, U+FE64) and U+2329/U+232A into these or into ASCII.
_LT_LIKE = (
    "\u2039\u00ab\u3008\u300a\u27e8\u27ea\u276e\u276c"
    "\u2329\u1438\u02c2\u29fc\u2991\u2993\u22d8\u226a"
)
_GT_LIKE = (
    "\u203a\u00bb\u3009\u300b\u27e9\u27eb\u276f\u276d"
    "\u232a\u1433\u02c3\u29fd\u2992\u2994\u22d9\u226b"
)
_TO_ASCII = str.maketrans({**dict.fromkeys(_LT_LIKE, "<"), **dict.fromkeys(_GT_LIKE, ">")})
# Combining marks that render as nothing next to a bracket (CGJ, variation selectors).
_INVISIBLE_MARKS = {"\u034f", *(chr(c) for c in range(0xFE00, 0xFE10))}
# Two or more brackets in a row, spaces allowed between them: what a fence marker is made of.
_RUN_RE = re.compile(r"[<>](?:\s*[<>])+")
_PHRASE_RE = re.compile(r"untrusted\W*ledger\W*content", re.IGNORECASE)
# What a defused bracket run becomes: plain parentheses, which nothing reads as a fence.
_DEFUSED = str.maketrans({"<": "(", ">": ")"})
PHRASE_REMOVED = "[fence text removed]"


def normalise(text: str) -> str:
    """NFKC, without invisible format characters, with angle look-alikes as ASCII brackets.

    Newlines and tabs are kept: instructions and chat are multi-line.
    """
    return unicodedata.normalize("NFKC", text).translate(_visible_ascii_brackets())


@functools.cache
def _visible_ascii_brackets() -> dict[int, str | None]:
    """One ``str.translate`` table for :func:`normalise`: format and control characters (but
    newline and tab) and the invisible marks deleted, angle look-alikes mapped to ASCII. One
    pass in C instead of a Python test per character, which was a tenth of a heartbeat's time
    over a full prompt (bench/heartbeat.py); built on first use."""
    table: dict[int, str | None] = dict(invisible_deleted())
    table.update(dict.fromkeys(map(ord, _INVISIBLE_MARKS)))
    table.update(_TO_ASCII)
    return table


def defuse(text: str, *, one_line: bool = False) -> str:
    """``text`` as it may appear in the prompt: normalised, with every run of two or more angle
    brackets turned into parentheses and the fence's phrase removed, so it can neither close nor
    open the untrusted block. ``one_line`` also folds newlines away, so Ledger text cannot start
    a line that looks like one of the prompt's own headings."""
    if len(text) > _KEPT_CHARS:
        return _defuse(text, one_line)
    return _defuse_kept(text, one_line)


#: A prompt's texts repeat from one heartbeat to the next (the same feed posts, the thread's
#: messages), so each short one is defused once while it keeps coming back: about 100 texts a
#: prompt cost ~1 ms a run to defuse again (bench/heartbeat.py). Snippets are a few hundred
#: characters; 4,096 entries of at most 1,024 keep the cache under ~10 MB, and longer texts
#: (HEARTBEAT.md itself) are defused afresh.
_KEPT_CHARS = 1024


@functools.lru_cache(maxsize=4096)
def _defuse_kept(text: str, one_line: bool) -> str:
    return _defuse(text, one_line)


def _defuse(text: str, one_line: bool) -> str:
    value = normalise(text)
    if one_line:
        value = " ".join(value.split())
    value = _RUN_RE.sub(lambda m: m.group().translate(_DEFUSED), value)
    return _PHRASE_RE.sub(PHRASE_REMOVED, value)
