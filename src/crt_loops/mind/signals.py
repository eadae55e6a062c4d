"""What one of the person's messages says about how they like replies.

:func:`observe` turns a message into :class:`Signal` s, each a target for one style dimension
with a weight and the evidence in words (used verbatim in the personality history's ``reason``):

- explicit requests ("be brief", "tl;dr", "explain in detail", "no emoji", "use bullet points",
  "be more formal", "no fluff", ...) weigh ``EXPLICIT`` (0.35) on a score, or vote
  ``VOTE_EXPLICIT`` (0.5) for a category;
- how they write (slang or formal phrasing, emoji, code blocks, lists, jokes, thanks, terse
  imperatives) weighs ``IMPLICIT`` (0.12), or votes ``VOTE_IMPLICIT`` (0.3);
- long messages and why/how questions only hint at a wish for detail (``HINT``, 0.05). Short
  messages are never read as "be brief": people often write short prompts that need long answers.
"""

from __future__ import annotations

import re
from typing import NamedTuple

from crt_loops.db.session import MessageRow
from crt_loops.mind.patterns import Folded, FoldedPattern, PatternSet
from crt_loops.mind.topics import word_set

EXPLICIT, IMPLICIT, HINT = 0.35, 0.12, 0.05
VOTE_EXPLICIT, VOTE_IMPLICIT = 0.5, 0.3


def _rx(pattern: str) -> FoldedPattern:
    return FoldedPattern(pattern, re.MULTILINE)


_BRIEF = _rx(
    r"\b(?:be (?:more )?(?:brief|concise|short)|keep it (?:short|brief)|shorter (?:answers?|"
    r"replies|please)|tl;?dr|too long|less detail|fewer words|in short|one[- ]liner|just the "
    r"(?:answer|gist)|briefly)\b"
)
_DETAIL = _rx(
    r"\b(?:explain (?:\w+ )?in (?:more )?detail|more details?|in[- ]depth|elaborate|go deeper|"
    r"step[- ]by[- ]step|be (?:more )?thorough|longer (?:answers?|replies)|detailed "
    r"(?:answers?|explanations?))\b"
)
_FORMAL = _rx(r"\b(?:be (?:more )?(?:formal|professional)|(?:formal|professional) tone)\b")
_CASUAL = _rx(
    r"\b(?:be (?:more )?(?:casual|relaxed|chill)|casual tone|less formal|don'?t be so formal)\b"
)
_NO_EMOJI = _rx(r"\b(?:no|stop using|without|fewer|don'?t use|less) emojis?\b")
_MORE_EMOJI = _rx(r"\b(?:use|more|add|with) emojis?\b")
_FMT_EXPLICIT = (
    (
        "plain",
        _rx(
            r"\b(?:no|without|stop using) (?:markdown|bullets?|bullet points|formatting|"
            r"lists)\b|\bplain text\b"
        ),
    ),
    ("bullets", _rx(r"\b(?:bullet(?:ed)? (?:points?|list)|bullets|as a list|in a list)\b")),
    ("code", _rx(r"\b(?:show (?:me )?the code|code (?:only|snippets?|examples?)|just the code)\b")),
    ("markdown", _rx(r"\b(?:use markdown|as a table|in a table|with headings)\b")),
)
_FMT_IMPLICIT = (
    ("code", _rx(r"```|^(?: {4}|\t)\S|\b(?:def|fn|func|function)\s+\w+\s*\(")),
    ("markdown", _rx(r"^#{1,6}\s|\*\*[^*\n]+\*\*|^\|.*\|\s*$")),
)
_LIST_LINE = _rx(r"^\s*(?:[-*•]|\d+[.)])\s+\S")
_TONE_EXPLICIT = (
    (
        "direct",
        _rx(
            r"\b(?:be (?:more )?(?:direct|blunt|straightforward)|no fluff|(?:get|straight)"
            r" to the point|skip the (?:pleasantries|small talk))\b"
        ),
    ),
    ("warm", _rx(r"\b(?:be (?:more )?(?:friendly|warm|kind|gentle|supportive))\b")),
    ("playful", _rx(r"\b(?:be (?:more )?(?:funny|playful)|make me laugh|tell me a joke)\b")),
    ("neutral", _rx(r"\b(?:be (?:more )?serious|no jokes)\b")),
)
_TONE_IMPLICIT = (
    ("playful", _rx(r"\b(?:ha(?:ha)+|lol|lmao|rofl|hehe)\b|😂|🤣|😜|😄")),
    ("warm", _rx(r"\b(?:thank you|thanks so much|appreciate|grateful|you'?re the best)\b|❤|🙏|🥰")),
    (
        "direct",
        _rx(
            r"^(?:give|list|show|tell|write|fix|summari[sz]e|convert|translate|find|"
            r"generate|rewrite)\b"
        ),
    ),
)
_WHY_HOW = _rx(r"^(?:why|how)\b|\bexplain\b")
_FORMAL_MARK = _rx(
    r"\b(?:please|could you|would you|kindly|thank you|regards|sincerely|dear|i would appreciate)\b"
)
_SLANG = word_set(
    "lol lmao u ur gonna wanna gotta btw thx pls plz yeah yep nah hey yo dude omg idk imo tbh "
    "kinda sorta ya cuz"
)
_STRIPPED = ".,!?;:"  # what a word loses before the slang list is asked about it
#: A word of the slang list, whole (between whitespace or line ends), perhaps inside _STRIPPED
#: marks: the text has a word that counts as slang exactly when this matches (ASCII text).
_SLANG_WORD = _rx(r"(?:^|\s)[.,!?;:]*(?:" + "|".join(sorted(_SLANG)) + r")[.,!?;:]*(?:\s|$)")
_EMOJI = re.compile(
    "[\U0001f300-\U0001faff\u2600-\u27bf\U0001f1e6-\U0001f1ff]|(?:^|\\s)(?::-?[)D(P]|;-?\\)|<3)"
    "(?=\\s|$)"
)


_VOTES = (
    ("formatting", _FMT_EXPLICIT, _FMT_IMPLICIT),
    ("tone", _TONE_EXPLICIT, _TONE_IMPLICIT),
)
#: Every folded pattern observe() asks about, asked together: one scan says which match.
_SCAN = PatternSet(
    [
        _BRIEF,
        _DETAIL,
        _FORMAL,
        _CASUAL,
        _NO_EMOJI,
        _MORE_EMOJI,
        _LIST_LINE,
        _WHY_HOW,
        _FORMAL_MARK,
        _SLANG_WORD,
        *(rx for _, options, implicit in _VOTES for _, rx in (*options, *implicit)),
    ]
)


def _no_emoji_possible(text: str) -> bool:
    """True when ``_EMOJI`` cannot match: ASCII text holds none of its pictographs, and each
    of its text emoticons needs a ``:``, a ``;`` or ``<3`` (a substring test, not a scan)."""
    return text.isascii() and ":" not in text and ";" not in text and "<3" not in text


class Signal(NamedTuple):
    """One observation (a named tuple: observe() makes ~5 a message, and a frozen dataclass
    took three times as long to build)."""

    field: str
    value: float | str  # a target score for numeric fields, a category for categorical ones
    weight: float
    why: str


def observe(message: MessageRow) -> list[Signal]:
    """What one of the person's messages says about how they like replies."""
    text, tag = message.content, f"#{message.id}"
    folded = Folded.of(text)
    low = text.lower() if folded.lowered is None else folded.lowered
    # The words of the lower-cased text: as many as the text's own (no character lowers to or
    # from whitespace), and the ones the slang count reads.
    words = low.split()
    hits = _SCAN.matching(folded)  # which patterns match; sre finds only the matches wanted
    out: list[Signal] = []

    def asked(match: re.Match[str]) -> str:
        return f'asked "{match.group(0).lower()}" ({tag})'

    if _BRIEF in hits and (m := _BRIEF.search(folded)):
        out.append(Signal("verbosity", 0.0, EXPLICIT, asked(m)))
    elif _DETAIL in hits and (m := _DETAIL.search(folded)):
        out.append(Signal("verbosity", 1.0, EXPLICIT, asked(m)))
    elif len(words) > 80:
        out.append(Signal("verbosity", 0.8, HINT, f"writes at length ({tag})"))
    elif _WHY_HOW in hits:
        out.append(Signal("verbosity", 0.7, HINT, f"asks why/how ({tag})"))
    if _FORMAL in hits and (m := _FORMAL.search(folded)):
        out.append(Signal("formality", 1.0, EXPLICIT, asked(m)))
    elif _CASUAL in hits and (m := _CASUAL.search(folded)):
        out.append(Signal("formality", 0.0, EXPLICIT, asked(m)))
    elif len(words) >= 3:
        # Lowering the text, then splitting, gives the same words as lowering each word (no
        # character lowers to or from whitespace or the stripped punctuation), at a third of
        # the cost; the slang count is then one C-level pass. Most texts have no slang word,
        # which the pattern set has already said (for ASCII text).
        slang = 0
        if folded.lowered is None or _SLANG_WORD in hits:
            slang = sum(map(_SLANG.__contains__, [w.strip(_STRIPPED) for w in words]))
        formal: float = len(_FORMAL_MARK.findall(folded)) if _FORMAL_MARK in hits else 0
        formal += 0.5 * text[:1].isupper()
        formal += 0.5 * (text.rstrip()[-1:] in ".?!")
        casual = slang + (1.0 if text == low else 0.0)
        casual += 0.5 * ("!!" in text or "??" in text)
        target = max(0.0, min(1.0, 0.5 + 0.12 * (formal - casual)))
        label = "formal" if target > 0.6 else "casual" if target < 0.4 else "neutral"
        out.append(Signal("formality", target, IMPLICIT, f"{label} phrasing ({tag})"))
    if _NO_EMOJI in hits and (m := _NO_EMOJI.search(folded)):
        out.append(Signal("emoji", 0.0, EXPLICIT, asked(m)))
    elif _MORE_EMOJI in hits and (m := _MORE_EMOJI.search(folded)):
        out.append(Signal("emoji", 1.0, EXPLICIT, asked(m)))
    else:
        n = 0 if _no_emoji_possible(text) else len(_EMOJI.findall(text))
        target = 1.0 if n >= 2 else 0.7 if n == 1 else 0.0
        out.append(Signal("emoji", target, IMPLICIT, f"{n} emoji ({tag})"))
    # Plain loops, not next() over generators: their frames were a fifth of observe().
    for field, options, implicit in _VOTES:
        vote: tuple[str, str] | None = None
        weight = VOTE_EXPLICIT
        for category, rx in options:
            if rx in hits and (m := rx.search(folded)):
                vote = (category, asked(m))
                break
        else:
            weight = VOTE_IMPLICIT
            for category, rx in implicit:
                if rx in hits:
                    vote = (category, f"{category} style ({tag})")
                    break
            else:
                if (
                    field == "formatting"
                    and _LIST_LINE in hits
                    and len(_LIST_LINE.findall(folded)) >= 2
                ):
                    vote = ("bullets", f"writes lists ({tag})")
        if vote is not None:
            out.append(Signal(field, vote[0], weight, vote[1]))
    return out
