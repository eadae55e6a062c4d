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

A heuristic asks a dozen or more patterns about the same message, and even with the anchors
each asks sre again, through a few Python calls. A :class:`PatternSet` answers "which of these
patterns match?" for lower-cased ASCII text in one pass of an RE2 set (a DFA over all of them at
once, ``google-re2``), about a twentieth of the time the patterns took one by one. Each pattern
goes to RE2 rewritten from its parsed form (:func:`re2_syntax`) into what means the same on
ASCII text (``\\s`` spelled out as Python's ten ASCII whitespace characters, not RE2's five;
``^`` and ``$`` as the flags say); a pattern with anything RE2 cannot say the same way (a
lookaround, a backreference) is searched by sre instead. Text that is not ASCII goes to the
patterns one by one, as ``FoldedPattern.search`` reads it. Only which patterns match comes from
RE2: a match that a caller needs (its words, its span) is always sre's.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from re import _parser  # type: ignore[attr-defined]
from typing import Any, NamedTuple

import re2  # type: ignore[import-untyped]

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


# -- several patterns at once --------------------------------------------------------------


class PatternSet:
    """Which of ``patterns`` match a :class:`Folded` text: exactly the ones whose
    :meth:`FoldedPattern.search` finds a match, found together (module docstring)."""

    def __init__(self, patterns: Iterable[FoldedPattern]) -> None:
        self.patterns = tuple(dict.fromkeys(patterns))
        scanner = re2.Set.SearchSet()
        scanned: list[FoldedPattern] = []
        searched: list[FoldedPattern] = []
        for rx in self.patterns:
            spelled = re2_syntax(rx.pattern, rx.sensitive.flags)
            if spelled is not None:
                try:
                    scanner.Add(spelled)
                except (re2.error, UnicodeEncodeError):  # e.g. a repeat above RE2's 1000
                    spelled = None
            if spelled is None:
                searched.append(rx)
            else:
                scanned.append(rx)
        if scanned:
            scanner.Compile()
        # Set.Match gives the indexes of the patterns that match, or None for none of them.
        self._match: Callable[[str], list[int] | None] | None = scanner.Match if scanned else None
        self._scanned = tuple(scanned)
        self._searched = tuple(searched)

    def matching(self, folded: Folded) -> set[FoldedPattern]:
        """The patterns that match ``folded``."""
        lowered = folded.lowered
        if lowered is None:
            return {rx for rx in self.patterns if rx.search(folded) is not None}
        indexes = None if self._match is None else self._match(lowered)
        found = set(map(self._scanned.__getitem__, indexes)) if indexes else set()
        for rx in self._searched:
            if rx.sensitive.search(lowered) is not None:
                found.add(rx)
        return found


#: Python's ASCII whitespace (what ``str.isspace`` says): tab to carriage return, the four
#: separators 0x1c-0x1f, and space. RE2's ``\s`` leaves out the vertical tab and the separators.
_SPACE = r"\x{9}-\x{d}\x{1c}-\x{20}"
_CLASSES = {
    _parser.CATEGORY_DIGIT: "0-9",
    _parser.CATEGORY_WORD: "0-9A-Z_a-z",
    _parser.CATEGORY_SPACE: _SPACE,
}
_NEGATED_CLASSES = {
    _parser.CATEGORY_NOT_DIGIT: _parser.CATEGORY_DIGIT,
    _parser.CATEGORY_NOT_WORD: _parser.CATEGORY_WORD,
    _parser.CATEGORY_NOT_SPACE: _parser.CATEGORY_SPACE,
}
#: The flags whose meaning :func:`re2_syntax` carries over (UNICODE and ASCII mean the same on
#: ASCII text; VERBOSE is gone once parsed).
_KNOWN_FLAGS = re.UNICODE | re.ASCII | re.MULTILINE | re.DOTALL | re.VERBOSE


class _Unsupported(Exception):
    """A construct :func:`re2_syntax` cannot carry over to RE2 with the same meaning."""


def re2_syntax(pattern: str, flags: int = 0) -> str | None:
    """``pattern`` (case-sensitive, with ``flags``) in RE2's syntax, matching exactly the same
    ASCII texts; None when it has something RE2 cannot say the same way."""
    try:
        parsed = _parser.parse(pattern, flags & ~re.UNICODE)
        if parsed.state.flags & ~_KNOWN_FLAGS:
            return None
        return _emit(list(parsed.data), parsed.state.flags)
    except (_Unsupported, re.error):
        return None


def _char(code: int) -> str:
    char = chr(code)
    return char if char.isascii() and char.isalnum() else f"\\x{{{code:x}}}"


def _emit(items: list[tuple[Any, Any]], flags: int) -> str:
    out: list[str] = []
    for op, av in items:
        if op is _parser.LITERAL:
            out.append(_char(av))
        elif op is _parser.NOT_LITERAL:
            out.append(f"[^{_char(av)}]")
        elif op is _parser.ANY:
            out.append("(?s:.)" if flags & re.DOTALL else "[^\\n]")
        elif op is _parser.IN:
            out.append(_emit_class(av))
        elif op is _parser.BRANCH:
            out.append("(?:" + "|".join(_emit(list(b.data), flags) for b in av[1]) + ")")
        elif op is _parser.SUBPATTERN:
            if av[1] or av[2]:  # flags set or cleared inside the group
                raise _Unsupported("group flags")
            out.append("(?:" + _emit(list(av[3].data), flags) + ")")
        elif op in (_parser.MAX_REPEAT, _parser.MIN_REPEAT):
            low, high = av[0], av[1]
            if low > 1000 or (high is not _parser.MAXREPEAT and high > 1000):
                raise _Unsupported("a repeat above RE2's limit")
            count = f"{{{low},}}" if high is _parser.MAXREPEAT else f"{{{low},{high}}}"
            lazy = "?" if op is _parser.MIN_REPEAT else ""
            out.append("(?:" + _emit(list(av[2].data), flags) + ")" + count + lazy)
        elif op is _parser.AT:
            out.append(_emit_at(av, flags))
        else:  # lookarounds, backreferences, possessive repeats, atomic groups, ...
            raise _Unsupported(str(op))
    return "".join(out)


def _emit_at(at: Any, flags: int) -> str:
    if at is _parser.AT_BEGINNING:
        return "(?m:^)" if flags & re.MULTILINE else "\\A"
    if at is _parser.AT_END and flags & re.MULTILINE:
        return "(?m:$)"
    if at is _parser.AT_BEGINNING_STRING:
        return "\\A"
    if at is _parser.AT_END_STRING:
        return "\\z"
    if at is _parser.AT_BOUNDARY:
        return "\\b"
    if at is _parser.AT_NON_BOUNDARY:
        return "\\B"
    # Python's "$" without MULTILINE also matches before a final newline; RE2's does not.
    raise _Unsupported(str(at))


def _emit_class(items: list[tuple[Any, Any]]) -> str:
    negate = bool(items) and items[0][0] is _parser.NEGATE
    parts: list[str] = []
    complements: list[str] = []  # \S, \W, \D in a class: each a class of its own
    for op, av in items[1:] if negate else items:
        if op is _parser.LITERAL:
            parts.append(_char(av))
        elif op is _parser.RANGE:
            parts.append(f"{_char(av[0])}-{_char(av[1])}")
        elif op is _parser.CATEGORY and av in _CLASSES:
            parts.append(_CLASSES[av])
        elif op is _parser.CATEGORY and av in _NEGATED_CLASSES and not negate:
            complements.append("[^" + _CLASSES[_NEGATED_CLASSES[av]] + "]")
        else:
            raise _Unsupported(f"{op} in a class")
    alternatives = list(complements)
    if parts:
        alternatives.append(("[^" if negate else "[") + "".join(parts) + "]")
    if not alternatives:
        raise _Unsupported("an empty class")
    return alternatives[0] if len(alternatives) == 1 else "(?:" + "|".join(alternatives) + ")"
