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
