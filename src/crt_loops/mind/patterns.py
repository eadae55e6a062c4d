"""Case-insensitive patterns that run case-sensitively on lower-cased ASCII text.

The heuristics (importance in mind/reflection.py, style signals in mind/signals.py) run a dozen
or more ``re.IGNORECASE`` alternations over every message; sre compares case-folded characters
one at a time, which made them most of a backlog pass's CPU (bench/backlog.py). For ASCII text,
searching ``text.lower()`` with the same pattern compiled without ``IGNORECASE`` finds the same
matches at the same offsets (lower-casing ASCII keeps its length and its word characters), in
about half the time. Any other text goes through the ``IGNORECASE`` pattern, whose Unicode case
folding (dotted capital I, long s, the Kelvin sign) a plain ``lower()`` does not reproduce.

Most messages match none of a pattern's alternatives, and sre finds that out by trying each one
at every position. So each pattern also has *anchors*, read from its parsed form: literal
strings at least one of which every match contains (``died|passed away`` has ``died`` and
``passed away``). Lower-cased text holding none of them cannot match, and a few substring tests
say so at C speed. A pattern whose matches need no literal of two or more characters (or one
rare character, such as ``#`` or a tab) has no anchors and is always searched; alternatives that
need a character outside ASCII (an emoji) cannot match ASCII text and add none.
"""

from __future__ import annotations

import re
from re import _parser  # type: ignore[attr-defined]
from typing import Any, NamedTuple

_MIN_ANCHOR = 2  # shorter literals are in nearly every text: no use as a filter


class Folded(NamedTuple):
    """A text and, when it is ASCII, its lower-cased form: what :class:`FoldedPattern` reads.

    (A named tuple: each pass makes one per message, and a frozen dataclass took twice
    as long to build.)
    """

    text: str
    lowered: str | None

    @classmethod
    def of(cls, text: str) -> Folded:
        return cls(text, text.lower() if text.isascii() else None)


class FoldedPattern:
    """A case-insensitive pattern with :meth:`search` and :meth:`findall` over a :class:`Folded`.

    The pattern must spell its letters in lower case (escapes such as ``\\S`` aside): the fast
    path compares it with lower-cased text.
    """

    def __init__(self, pattern: str, flags: int = 0) -> None:
        if re.search("[A-Z]", re.sub(r"\\.", "", pattern)):
            raise ValueError(f"a folded pattern spells its letters in lower case: {pattern!r}")
        self.pattern = pattern
        self.insensitive = re.compile(pattern, flags | re.IGNORECASE)
        self.sensitive = re.compile(pattern, flags)
        self.anchors = anchors(pattern, flags)
        self._whole_matches = self.sensitive.groups == 0

    def search(self, folded: Folded) -> re.Match[str] | None:
        lowered = folded.lowered
        if lowered is None:
            return self.insensitive.search(folded.text)
        if self.anchors is not None:
            # The anchor test inline, as a plain loop: a method call per search, or all() over
            # a generator, cost more than the test itself in the backlog's profile.
            for anchor in self.anchors:
                if anchor in lowered:
                    return self.sensitive.search(lowered)
            return None
        return self.sensitive.search(lowered)

    def findall(self, folded: Folded) -> list[str]:
        """Every match, lower-cased (what both callers keep of them)."""
        lowered = folded.lowered
        if lowered is None:
            return [m.group(0).lower() for m in self.insensitive.finditer(folded.text)]
        if self.anchors is not None:
            for anchor in self.anchors:
                if anchor in lowered:
                    break
            else:
                return []
        if self._whole_matches:
            return self.sensitive.findall(lowered)  # no groups: findall gives group(0)
        return [m.group(0) for m in self.sensitive.finditer(lowered)]


def anchors(pattern: str, flags: int = 0) -> tuple[str, ...] | None:
    """Literals at least one of which every match of ``pattern`` (case-sensitive) in ASCII text
    contains, or None when no such set of useful literals was found; ``()`` when the pattern
    cannot match ASCII text at all."""
    found = _required(list(_parser.parse(pattern, flags).data))
    if found is _NEVER:
        return ()
    return tuple(sorted(found)) if isinstance(found, set) else None


class _Never:
    """What :func:`_required` returns for a sequence that cannot match ASCII text (it needs a
    literal outside ASCII: an emoji). The anchors only ever filter lower-cased ASCII text."""


_NEVER = _Never()
_REPEATS = (_parser.MAX_REPEAT, _parser.MIN_REPEAT, getattr(_parser, "POSSESSIVE_REPEAT", None))


def _useful(literals: set[str]) -> bool:
    # A letter, a digit or a space is in nearly every text; a "#" or a tab is a fine filter.
    return all(len(a) >= _MIN_ANCHOR or not (a.isalnum() or a == " ") for a in literals)


def _required(items: list[tuple[Any, Any]]) -> set[str] | _Never | None:
    """For a sequence of parsed items: the best set of literals one of which any match of the
    whole sequence contains (the longest run of literals in a row, or a group, alternation or
    repeat every live branch of which has such a set), None, or _NEVER."""
    best: set[str] | None = None
    run: list[str] = []

    def consider(candidate: set[str] | None) -> None:
        nonlocal best
        if not candidate or not _useful(candidate):
            return
        if best is None or min(map(len, candidate)) > min(map(len, best)):
            best = candidate

    for op, av in items:
        if op is _parser.LITERAL:
            if av > 127:
                return _NEVER
            run.append(chr(av))
            continue
        consider({"".join(run)} if run else None)
        run = []
        inner: set[str] | _Never | None = None
        if op is _parser.SUBPATTERN:
            inner = _required(list(av[-1].data))
        elif op is _parser.BRANCH:
            branches = [_required(list(branch.data)) for branch in av[1]]
            live = [b for b in branches if b is not _NEVER]
            if not live:
                return _NEVER
            if all(isinstance(b, set) and b for b in live):
                inner = set().union(*[b for b in live if isinstance(b, set)])
        elif op in _REPEATS and av[0] >= 1:
            sub = list(av[2].data)
            if len(sub) == 1 and sub[0][0] is _parser.LITERAL and sub[0][1] <= 127:
                inner = {chr(sub[0][1]) * av[0]}  # " {4}": four spaces in a row
            else:
                inner = _required(sub)
        # Anything else (a class, an optional repeat, an assertion) is skipped: it adds no
        # literal, and a literal around it stays required.
        if inner is _NEVER:
            return _NEVER
        consider(inner if isinstance(inner, set) else None)
    consider({"".join(run)} if run else None)
    return best
