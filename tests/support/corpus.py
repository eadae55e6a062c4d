"""Messages to pin the heuristics' rewrites against their references: everyday sentences, the
patterns' own phrases, and what stresses the fast paths (shouting, non-ASCII letters that case
folding treats specially, emoji, tabs, Markdown, code, lists)."""

from __future__ import annotations

import random

SENTENCES = [
    "hi there",
    "thanks!",
    "ok cool",
    "I started a new job today and I'm nervous about meeting the team.",
    "My boss asked me to lead the migration project, which is exciting but stressful.",
    "Can you help me plan a budget? My savings are not growing and the mortgage is due.",
    "I've decided to learn Rust this year, starting with the book and small exercises.",
    "My sister is getting married in June and I have to give a speech. Any advice?",
    "The doctor said the test results look fine, which is such a relief.",
    "Honestly I feel overwhelmed: the deadline is Friday and nothing works yet!",
    "Could you explain how SQLite handles write-ahead logging and checkpoints?",
    "I'm thinking about quitting my job to start a small bakery with a friend.",
    "Please keep answers short, bullet points are fine.",
    "My father was taken to the hospital last night, we are waiting for news.",
    "I am really proud of my daughter, she was accepted to the university she wanted.",
    "lol that's funny 😂",
    "haha hehe LMAO rofl",
    "Thank you so much ❤ you're the best 🙏",
    "I'M SO ANGRY RIGHT NOW!!!",
    "I was DEVASTATED and heartbroken when she died",
    "be brief. tl;dr? TLDR please, no emoji, no emojis :)",
    "Explain in more detail, step-by-step, be more thorough",
    "be more formal; professional tone; don't be so formal; be casual",
    "no markdown, plain text, as a list, in a table, use markdown, show me the code",
    "```python\ndef main():\n    return 1\n```",
    "    indented code line\n\tand a tab",
    "# Heading\n**bold** text\n| a | b |\n",
    "- one\n- two\n* three\n1. four\n2) five",
    "function foo (x) { fn bar() } func baz ()",
    "give me a list. Fix this. translate it. summarize that",
    "why is the sky blue? how do planes fly?",
    "İstanbul is where I got engaged",
    "\u017fo I quit my job",  # long s
    "The Kelvin sign \u212a is not a k",
    "straße, café, naïve, coöperate",
    "Ich bin sehr müde; ich habe Angst",
    "should i move? what do you think? I'll decide tonight, urgent, ASAP",
    "I will commit to the goal from now on; I chose this, I've chosen",
    "we moved to a new apartment in a new city; relocating again",
    "got laid off, then hired, promoted, promotion, resigned, retiring, retirement",
    "graduated with a degree, bought a house, first time, birthday, anniversary, award",
    "debt, bankrupt, bankruptcy, loan, salary, raise, savings",
    "pregnant, baby, divorce, divorced, broke up, breakup, girlfriend, boyfriend, proposed",
    "diagnosed, cancer, surgery, illness, therapy, therapist, injured, accident, depression",
    "",
    "   ",
    "?",
    "!!!",
    "k",
    "yes no yep nope sure good morning evening night bye",
    # Whitespace Python's \s has and RE2's lacks: vertical tab, the separators 0x1c-0x1f.
    "def\x0bmain\x1c(x):\n\x0b   x\n-\x1fitem\n2)\x0bitem",
    "|\x0bcell\x0b|\x1d\n#\x1eheading\nbe\x0bbrief",
    # Slang inside the marks the count strips, and look-alikes that are not slang.
    "...lol!! ,u? (btw) tbh: idk;\x0bya. u.s. ur's yo-yo LOL\x1fgonna",
]


def corpus(n: int = 3000, seed: int = 11) -> list[str]:
    """``SENTENCES`` and ``n`` random joins of them and of their words, cased at random."""
    rng = random.Random(seed)
    words = [w for s in SENTENCES for w in s.split()]
    out = list(SENTENCES)
    for _ in range(n):
        if rng.random() < 0.5:
            text = " ".join(rng.choice(SENTENCES) for _ in range(rng.randint(1, 5)))
        else:
            sep = rng.choice([" ", " ", "\n", "\t", ", "])
            text = sep.join(rng.choice(words) for _ in range(rng.randint(1, 30)))
        roll = rng.random()
        if roll < 0.1:
            text = text.upper()
        elif roll < 0.2:
            text = "".join(c.upper() if rng.random() < 0.3 else c for c in text)
        out.append(text)
    return out
