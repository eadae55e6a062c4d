"""Topics of a conversation: noun-ish keywords and a scorecard of top, rising and fading ones.

Keywords are words of 3+ letters minus a stop list of function words and conversational filler,
with adverbs in -ly dropped and plurals folded (``cities`` -> ``city``, ``books`` -> ``book``).
It is deliberately simple and deterministic: no NLP dependency, the same text always gives the
same topics.

The scorecard weighs each keyword by the importance of the messages it appears in (unscored
messages count 3; the agent's own messages count half, since its replies echo the person's words
at length), once per message. ``top`` is the highest total weight; ``rising`` and ``fading`` are
the largest gains and losses of share between the older and the newer half of the messages,
needing at least two mentions on the side that counts.
"""

from __future__ import annotations

import heapq
import re
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from typing import Any, cast

from crt_loops.db.session import MessageRow

_TOKEN = re.compile(r"[a-z][a-z'-]*")


def word_set(text: str) -> frozenset[str]:
    """A frozenset of the whitespace-separated words of ``text`` (for long word lists)."""
    return frozenset(text.split())


def words_of(text: str) -> list[str]:
    """Lower-case word tokens (letters, apostrophes, hyphens)."""
    return _TOKEN.findall(text.lower())


def lowered_words(lowered: str) -> list[str]:
    """:func:`words_of` of a text the caller has already lower-cased."""
    return _TOKEN.findall(lowered)


_STOP = word_set(
    """a about above after again against all almost also although always am an and another any
    anybody anyone anything anyway are aren't around as ask asked at away back be because been
    before being below best better between big both but by can can't cannot could couldn't did
    didn't do does doesn't doing don't done down during each either else enough even ever every
    everyone everything few find first for from get gets getting give go goes going gone good got
    great had hadn't has hasn't have haven't having he her here hers herself him himself his how
    however i i'd i'll i'm i've if in into is isn't it it's its itself just keep kind know last
    least less let like likely little long look lot lots made make many may maybe me mean might
    mine more most much must my myself need never new next nice no nor not nothing now of off oh
    ok okay old on once one only or other others our ours out over own part people perhaps please
    pretty put quite rather really right said same say says see seem seems she should shouldn't
    since so some someone something sometimes soon still such sure take tell than thank thanks
    that that's the their theirs them then there these they thing things think this those though
    thought through time to today too try two under until up upon us use used very want wanted
    was wasn't way we well were what what's when where whether which while who whom whose why
    will with within without won't work would wouldn't yeah yes yet you you'd you'll you're
    you've your yours yourself hi hello hey lol haha ah um also got gonna wanna feel felt going
    doing tried trying help sorry sure fine via etc day days week weeks year years brief explain
    detail details pls"""
)


def keywords(text: str) -> list[str]:
    """Distinct noun-ish keywords in order of appearance (stop words out, plurals folded)."""
    return keywords_of_words(words_of(text))


def keywords_of_words(tokens: list[str]) -> list[str]:
    """:func:`keywords` of a text whose :func:`words_of` the caller already has."""
    try:
        # dict.fromkeys keeps each word's first appearance; map() over the cache's own
        # __getitem__ runs in C. keywords() runs on most messages of both passes, and the
        # Python loop (then an lru_cache call per token) was a tenth of a backlog pass.
        seen = dict.fromkeys(map(_FOLDED.__getitem__, tokens))
    except KeyError:
        seen = dict.fromkeys(map(_fold_kept, tokens))
    seen.pop(None, None)
    return cast(list[str], list(seen))


_KEPT_TOKEN_CHARS = 40  # a longer "word" is noise, folded afresh: the cache stays ~3 MB
_KEPT_TOKENS = 32_768
#: :func:`_fold` per token: a person's vocabulary is small next to what they write. A plain
#: dict, filled until it holds _KEPT_TOKENS (then misses are folded without being kept).
_FOLDED: dict[str, str | None] = {}


def _fold_kept(token: str) -> str | None:
    if token in _FOLDED:
        return _FOLDED[token]
    word = _fold(token)
    if len(token) <= _KEPT_TOKEN_CHARS and len(_FOLDED) < _KEPT_TOKENS:
        _FOLDED[token] = word
    return word


def _fold(token: str) -> str | None:
    """One token's keyword, or None for a stop word, an adverb or a short word."""
    word = token.strip("'-")
    if word.endswith("'s"):
        word = word[:-2]
    if len(word) < 3 or word in _STOP or word.endswith("ly"):
        return None
    if word.endswith("ies") and len(word) > 4:
        word = word[:-3] + "y"
    elif word.endswith(("ches", "shes", "xes", "sses")) or (word.endswith("oes") and len(word) > 6):
        word = word[:-2]
    elif word.endswith("s") and not word.endswith(("ss", "us", "is")) and len(word) > 3:
        word = word[:-1]
    return None if word in _STOP else word


def _weigh(messages: Sequence[MessageRow]) -> tuple[defaultdict[str, float], Counter[str]]:
    weights: defaultdict[str, float] = defaultdict(float)
    mentions: Counter[str] = Counter()
    for m in messages:
        weight = (m.importance or 3) * (1.0 if m.role == "user" else 0.5)
        for word in keywords(m.content):
            weights[word] += weight
            mentions[word] += 1
    return weights, mentions


def _halves(
    messages: Sequence[MessageRow],
) -> tuple[defaultdict[str, float], Counter[str], defaultdict[str, float], Counter[str]]:
    half = len(messages) // 2
    return (*_weigh(messages[:half]), *_weigh(messages[half:]))


def _total(w_old: Mapping[str, float], w_new: Mapping[str, float]) -> dict[str, float]:
    # Each half's weight summed first, then the two: the floats the scorecard always showed
    # (a word of one half only keeps its weight: w + 0.0 is w).
    total = dict(w_old)
    for k, v in w_new.items():
        total[k] = total.get(k, 0.0) + v
    return total


def top_keys(total: Mapping[str, float], limit: int) -> list[str]:
    """``sorted(total, key=lambda k: (-total[k], k))[:limit]``: the words whose weight reaches
    the limit-th largest are the only candidates, so only they are sorted."""
    if limit <= 0:
        return []
    if len(total) <= limit:
        return sorted(total, key=lambda k: (-total[k], k))
    cut = heapq.nlargest(limit, total.values())[-1]
    candidates = [k for k, v in total.items() if v >= cut]
    return sorted(candidates, key=lambda k: (-total[k], k))[:limit]


def _weights(messages: Sequence[MessageRow], words: Mapping[int, list[str]]) -> dict[str, float]:
    """:func:`_weigh`'s weights alone, summed in the same order (the same floats)."""
    weights: dict[str, float] = {}
    get = weights.get
    for m in messages:
        weight = (m.importance or 3) * (1.0 if m.role == "user" else 0.5)
        known = words.get(m.id)
        found = keywords(m.content) if known is None else keywords_of_words(known)
        for word in found:
            weights[word] = get(word, 0.0) + weight
    return weights


def top_topics(
    messages: Sequence[MessageRow], *, limit: int, words: Mapping[int, list[str]] | None = None
) -> list[str]:
    """``topic_scorecard(messages, limit=limit)["top"]``'s topics, without the rest of the card
    (a reflection names only these; the whole card was a sixth of a backlog pass's CPU).
    ``words``: :func:`words_of` of messages by id, where the caller has them already."""
    half, known = len(messages) // 2, words or {}
    total = _total(_weights(messages[:half], known), _weights(messages[half:], known))
    return top_keys(total, limit)


def topic_scorecard(messages: Sequence[MessageRow], *, limit: int = 8) -> dict[str, Any]:
    """Top, rising and fading topics of ``messages`` (oldest first)."""
    older = messages[: len(messages) // 2]
    w_old, n_old, w_new, n_new = _halves(messages)
    total = _total(w_old, w_new)
    top = top_keys(total, limit)
    card: dict[str, Any] = {
        "messages_considered": len(messages),
        "top": [
            {"topic": k, "weight": round(total[k], 1), "mentions": n_old[k] + n_new[k]} for k in top
        ],
        "rising": [],
        "fading": [],
    }
    if not older:
        return card
    s_old, s_new = sum(w_old.values()) or 1.0, sum(w_new.values()) or 1.0
    delta = {k: w_new[k] / s_new - w_old[k] / s_old for k in total}
    rising = [k for k in total if delta[k] > 0 and n_new[k] >= 2]
    fading = [
        k
        for k in total
        if delta[k] < 0 and n_old[k] >= 2 and w_new[k] / s_new < 0.5 * w_old[k] / s_old
    ]
    card["rising"] = [
        {"topic": k, "share_change_pct": round(delta[k] * 100, 1)}
        for k in sorted(rising, key=lambda k: (-delta[k], k))[:5]
    ]
    card["fading"] = [
        {"topic": k, "share_change_pct": round(delta[k] * 100, 1)}
        for k in sorted(fading, key=lambda k: (delta[k], k))[:5]
    ]
    return card
