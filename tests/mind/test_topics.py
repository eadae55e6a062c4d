"""Topics: the scorecard and the reflection's top topics, pinned against the first scorecard."""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from collections.abc import Sequence
from typing import Any

from support.corpus import corpus

from crt_loops.db.session import MessageRow
from crt_loops.mind.topics import keywords, top_topics, topic_scorecard, words_of


def _reference(messages: Sequence[MessageRow], *, limit: int = 8) -> dict[str, Any]:
    """topic_scorecard as first written (a full sort of every keyword)."""

    def weigh(ms: Sequence[MessageRow]) -> tuple[defaultdict[str, float], Counter[str]]:
        weights: defaultdict[str, float] = defaultdict(float)
        mentions: Counter[str] = Counter()
        for m in ms:
            weight = (m.importance or 3) * (1.0 if m.role == "user" else 0.5)
            for word in keywords(m.content):
                weights[word] += weight
                mentions[word] += 1
        return weights, mentions

    half = len(messages) // 2
    older, newer = messages[:half], messages[half:]
    w_old, n_old = weigh(older)
    w_new, n_new = weigh(newer)
    total = {k: w_old[k] + w_new[k] for k in {*w_old, *w_new}}
    top = sorted(total, key=lambda k: (-total[k], k))[:limit]
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


def test_scorecard_and_top_topics_equal_the_reference() -> None:
    rng = random.Random(5)
    texts = corpus(600)
    for _ in range(300):
        messages = [
            MessageRow(
                i,
                "t",
                rng.choice(["user", "assistant"]),
                rng.choice(texts),
                0.0,
                rng.choice([None, *range(1, 11)]),
                None,
                None,
            )
            for i in range(rng.randint(0, 40))
        ]
        limit = rng.choice([0, 1, 5, 8, 100])
        card = topic_scorecard(messages, limit=limit)
        assert card == _reference(messages, limit=limit)
        assert top_topics(messages, limit=limit) == [t["topic"] for t in card["top"]]
        # With the words the reflection pass already has (of some messages: the heuristic's).
        known = {m.id: words_of(m.content.strip().lower()) for m in messages if m.id % 2}
        assert top_topics(messages, limit=limit, words=known) == [t["topic"] for t in card["top"]]


def test_keywords_equal_the_first_loop_over_a_corpus() -> None:
    from crt_loops.mind import topics

    def reference(text: str) -> list[str]:
        seen: dict[str, None] = {}
        for token in topics.words_of(text):
            word = topics._fold(token)
            if word is not None:
                seen.setdefault(word, None)
        return list(seen)

    texts = [*corpus(), "x" * 60 + " books " + "y" * 41 + " cities books"]
    for text in texts:
        assert keywords(text) == reference(text), text


def test_the_fold_cache_keeps_short_tokens_only() -> None:
    from crt_loops.mind import topics

    long_token = "q" * (topics._KEPT_TOKEN_CHARS + 1)
    assert keywords(f"{long_token} gardens") == [long_token, "garden"]
    assert long_token not in topics._FOLDED and "gardens" in topics._FOLDED
    assert len(topics._FOLDED) <= topics._KEPT_TOKENS
