"""Folded patterns: the same matches as ``re.IGNORECASE``, with the anchors that skip the scan,
and pattern sets: which of several patterns match, in one RE2 scan."""

from __future__ import annotations

import random
import re

import pytest

from crt_loops.mind.patterns import Folded, FoldedPattern, PatternSet, anchors, re2_syntax

PATTERN = r"\b(?:(?:new|my) job|quit(?:ting)? my|passed away|tl;?dr|resign\w*)\b"


def test_anchors_are_literals_every_match_contains() -> None:
    assert anchors(PATTERN) == (" job", "passed away", "quit", "resign", "tl")
    # A branch with no literal of two characters leaves the whole pattern unanchored.
    assert anchors(r"\b(?:i|me|my)\b") is None
    assert anchors(r"^\s*(?:[-*]|\d+[.)])\s+\S") is None


def test_upper_case_letters_are_refused() -> None:
    with pytest.raises(ValueError, match="lower case"):
        FoldedPattern(r"\bBoss\b")
    FoldedPattern(r"\S+\W")  # escapes are not letters


@pytest.mark.parametrize(
    "text",
    [
        "I QUIT MY job",
        "Tl;Dr: he passed away",
        "nothing here",
        "resigned. New Job!",
        "İ quit my job",  # not ASCII: the IGNORECASE pattern decides
        "\u017fo I quit my job",  # long s
        "new\njob",
    ],
)
def test_same_matches_as_ignorecase(text: str) -> None:
    folded = FoldedPattern(PATTERN, re.MULTILINE)
    reference = re.compile(PATTERN, re.IGNORECASE | re.MULTILINE)
    want = reference.search(text)
    got = folded.search(Folded.of(text))
    assert (got is None) == (want is None)
    if got is not None and want is not None:
        assert got.span() == want.span()
    assert folded.findall(Folded.of(text)) == [m.lower() for m in reference.findall(text)]


def test_random_texts_agree() -> None:
    rng = random.Random(3)
    words = ["new", "job", "My", "QUIT", "quitting", "passed", "away", "TL;DR", "resigns", "x"]
    folded = FoldedPattern(PATTERN)
    reference = re.compile(PATTERN, re.IGNORECASE)
    for _ in range(2000):
        text = " ".join(rng.choice(words) for _ in range(rng.randint(0, 8)))
        assert folded.findall(Folded.of(text)) == [m.lower() for m in reference.findall(text)]


def test_non_ascii_alternatives_and_repeats_anchor_the_ascii_path() -> None:
    # An emoji cannot be in ASCII text: its branch adds no anchor, and alone it matches none.
    assert anchors(r"\b(?:lol|haha)\b|😂") == ("haha", "lol")
    assert anchors("😂 lol|🤣 ha") == ()
    assert anchors("😂") == ()
    assert FoldedPattern("😂").search(Folded.of("lol")) is None
    assert FoldedPattern("😂").search(Folded.of("lol 😂")) is not None  # not ASCII: searched
    # A repeated literal is required min times in a row; a rare character is a fine filter.
    assert anchors(r"^(?: {4}|\t)\S") == ("\t", "    ")
    assert anchors(r"^#{1,6}\s|\*\*[^*\n]+\*\*") == ("#", "**")
    assert anchors(r"a{1,3}b") is None  # letters alone are in every text


def _heuristic_patterns() -> list[FoldedPattern]:
    from crt_loops.mind import reflection, signals

    found: list[FoldedPattern] = []
    for module in (reflection, signals):
        for value in vars(module).values():
            if isinstance(value, FoldedPattern):
                found.append(value)
            elif isinstance(value, dict):
                found += [v for v in value.values() if isinstance(v, FoldedPattern)]
            elif isinstance(value, tuple):
                found += [
                    v[1]
                    for v in value
                    if isinstance(v, tuple) and len(v) == 2 and isinstance(v[1], FoldedPattern)
                ]
    return found


def test_every_heuristic_pattern_agrees_with_ignorecase_over_a_corpus() -> None:
    from support.corpus import corpus

    patterns = _heuristic_patterns()
    assert len(patterns) > 30
    texts = corpus()
    for folded_rx in patterns:
        flags = folded_rx.sensitive.flags & ~re.UNICODE
        reference = re.compile(folded_rx.pattern, flags | re.IGNORECASE)
        for text in texts:
            folded = Folded.of(text)
            got, want = folded_rx.search(folded), reference.search(text)
            assert (got and got.span()) == (want and want.span()), (folded_rx.pattern, text)
            assert folded_rx.findall(folded) == [
                m.group(0).lower() for m in reference.finditer(text)
            ], (folded_rx.pattern, text)


def _adversarial_texts() -> list[str]:
    """Short texts of the characters the patterns' classes and assertions turn on: every ASCII
    whitespace character, line starts and ends, word edges, Markdown and list marks."""
    rng = random.Random(5)
    chars = "ab -*#|`()._1\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f "
    return ["".join(rng.choice(chars) for _ in range(rng.randint(0, 40))) for _ in range(5000)]


def test_a_pattern_set_says_exactly_which_heuristic_patterns_match() -> None:
    from support.corpus import corpus

    patterns = _heuristic_patterns()
    scan = PatternSet(patterns)
    assert scan._searched == ()  # every heuristic pattern goes to RE2: the fast path is tested
    for text in [*corpus(), *_adversarial_texts()]:
        folded = Folded.of(text)
        assert scan.matching(folded) == {rx for rx in patterns if rx.search(folded)}, text


def test_a_pattern_set_over_a_long_text() -> None:
    # One long message (a pasted log): the set's DFA must not give up and report no match.
    from support.corpus import corpus

    patterns = _heuristic_patterns()
    scan = PatternSet(patterns)
    for text in ("x " * 200_000 + "i was devastated", "\n".join(corpus()[:2000])):
        folded = Folded.of(text)
        want = {rx for rx in patterns if rx.search(folded)}
        assert want
        assert scan.matching(folded) == want


def test_each_heuristic_asks_its_set_about_every_pattern_it_uses() -> None:
    # A pattern left out of the module's set would never be "in hits": it would silently
    # never match.
    from crt_loops.mind import reflection, signals

    patterns = set(_heuristic_patterns())
    in_sets = set(reflection._SCAN.patterns) | set(signals._SCAN.patterns)
    assert patterns == in_sets
    assert not set(reflection._SCAN.patterns) & set(signals._SCAN.patterns)


@pytest.mark.parametrize(
    ("pattern", "flags"),
    [
        (r"a(?=b)", 0),  # lookahead
        (r"(?<!x)ab", 0),  # lookbehind
        (r"(a)b\1", 0),  # backreference
        (r"ab$", 0),  # "$" before a final newline too, in Python only
        (r"a++b", 0),  # possessive
        (r"(?>a+)b", 0),  # atomic group
        (r"(?s:a.b)", 0),  # flags inside a group
        (r"(?i)ab", 0),
        (r"a{1001}", 0),  # above RE2's repeat limit
        (r"[^\S]", 0),  # a complement inside a negated class
    ],
)
def test_re2_syntax_refuses_what_re2_cannot_say_the_same_way(pattern: str, flags: int) -> None:
    assert re2_syntax(pattern, flags) is None


@pytest.mark.parametrize(
    ("pattern", "flags"),
    [
        (r"a(?=b)", 0),
        (r"(a)b\1", 0),
        (r"ab$", 0),
        (r"ab$", re.MULTILINE),
        (r"^ab", 0),
        (r"^ab", re.MULTILINE),
        (r"\Aab\Z", 0),
        (r"a\sb", 0),
        (r"a\Sb", 0),
        (r"a[\s,]b", 0),
        (r"a[\S,]b", 0),
        (r"a[^\s,]b", 0),
        (r"a\Wb|\bab\B", 0),
        (r"a\d+?b|a\D{2,3}b", 0),
        (r"a.b", 0),
        (r"a.b", re.DOTALL),
        (r"a[^b]b|a[-a-c\]]b", 0),
    ],
)
def test_a_pattern_set_matches_what_sre_matches(pattern: str, flags: int) -> None:
    # Whatever re2_syntax makes of a pattern, or refuses (then sre searches it), the set agrees
    # with the pattern itself on every short text of the characters that tell them apart.
    rx = FoldedPattern(pattern, flags)
    scan = PatternSet([rx, FoldedPattern(r"\bab")])
    texts = ["ab", "a\nb", "ab\n", "a\x0bb", "a\x1cb", "a,b", "aab", "a12b", "a]b", "é ab"]
    rng = random.Random(pattern)
    chars = "ab1,]-\n\x0b\x1c "
    texts += ["".join(rng.choice(chars) for _ in range(rng.randint(0, 8))) for _ in range(3000)]
    for text in texts:
        folded = Folded.of(text)
        assert (rx in scan.matching(folded)) == (rx.search(folded) is not None), repr(text)
