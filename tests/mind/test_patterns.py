"""Folded patterns: the same matches as ``re.IGNORECASE``, with the anchors that skip the scan."""

from __future__ import annotations

import random
import re

import pytest

from crt_loops.mind.patterns import Folded, FoldedPattern, anchors

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
