"""Finding JSON objects in a model's reply: lenient about form, never about content.

One rule set for every caller (the heartbeat's decisions and the thinking passes' scores,
reflections and profiles):

- ``<think>...</think>`` blocks are thinking, not the answer, and are skipped; so is everything
  before a lone ``</think>`` (chat templates that open the block in the prompt).
- Code fences and prose around an object do not matter: every ``{`` starts a balanced-brace
  scan (braces inside strings skipped), and a trailing comma before ``}`` or ``]`` is forgiven.
- What the visible text holds comes first. Only when it holds nothing acceptable is an
  unclosed trailing ``<think>`` searched, and there the *last* acceptable top-level object
  wins: a model cut short while thinking, or one that never closes the tag, tends to put its
  answer at the end.

Nothing is *repaired*: an object cut off mid-string is not closed and used (a library such as
json-repair would, and turn a reply truncated at ``max_tokens`` into a post with half a
sentence). Callers validate what they get strictly.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

MAX_CANDIDATES = 100  # objects tried in one text; a reply of 10,000 braces stays cheap

_THINK_BLOCK_RE = re.compile(r"<(think|thinking)>.*?</\1>", re.DOTALL | re.IGNORECASE)
_THINK_CLOSE_RE = re.compile(r"</think(?:ing)?>", re.IGNORECASE)
_THINK_OPEN_RE = re.compile(r"<think(?:ing)?>", re.IGNORECASE)
_FENCE_RE = re.compile(r"```[A-Za-z0-9_-]*")
_TOKEN_RE = re.compile(r'"(?:[^"\\]|\\.)*"|[{}]', re.DOTALL)  # strings first: braces in them
_TRAILING_COMMA_RE = re.compile(r",\s*([}\]])")


@dataclass(frozen=True)
class ReplyText:
    """A reply split into what the model said (``visible``, fences removed) and the text of an
    unclosed trailing ``<think>`` block (``hidden``)."""

    visible: str
    hidden: str


def split_reply(text: str) -> ReplyText:
    text = _THINK_BLOCK_RE.sub(" ", text)
    closes = list(_THINK_CLOSE_RE.finditer(text))
    if closes:
        text = text[closes[-1].end() :]
    opened = _THINK_OPEN_RE.search(text)
    if opened is None:
        visible, hidden = text, ""
    else:
        visible, hidden = text[: opened.start()], text[opened.end() :]
    return ReplyText(_FENCE_RE.sub("", visible), _FENCE_RE.sub("", hidden))


def json_values(text: str) -> Iterator[tuple[int, int, Any]]:
    """(start, end, object) for each JSON object in ``text``, in order. Objects nested in one
    that fails to parse are tried too. A text that is a bare JSON list yields it first as
    (0, len, list)."""
    stripped = text.strip()
    if stripped.startswith("["):
        loaded = loads(stripped)
        if isinstance(loaded, list):
            yield 0, len(text), loaded
    start = text.find("{")
    for _ in range(MAX_CANDIDATES):
        if start == -1:
            return
        end = _matching_brace(text, start)
        if end is not None:
            loaded = loads(text[start:end])
            if isinstance(loaded, dict):
                yield start, end, loaded
        start = text.find("{", start + 1)


def find_value(text: str, accept: Callable[[Any], Any]) -> Any:
    """The first value ``accept`` maps to something other than None: first in the visible text,
    in order; then the last top-level one in an unclosed ``<think>``. None when there is none."""
    reply = split_reply(text)
    for _, _, candidate in json_values(reply.visible):
        result = accept(candidate)
        if result is not None:
            return result
    return last_value(reply.hidden, accept)


def last_value(text: str, accept: Callable[[Any], Any]) -> Any:
    """The last top-level value in ``text`` (not one nested in an earlier accepted one) that
    ``accept`` maps to something other than None; None when there is none."""
    last: Any = None
    last_end = -1
    for start, end, candidate in json_values(text):
        result = accept(candidate) if start >= last_end else None
        if result is not None:
            last, last_end = result, end
    return last


def first_object(text: str) -> dict[str, Any] | None:
    """The first JSON object in a reply, by :func:`find_value`'s rule; None when there is none."""
    found: dict[str, Any] | None = find_value(
        text, lambda value: value if isinstance(value, dict) else None
    )
    return found


def loads(candidate: str) -> Any:
    """``json.loads``, forgiving a trailing comma; None when it is not JSON."""
    for attempt in (candidate, _TRAILING_COMMA_RE.sub(r"\1", candidate)):
        try:
            return json.loads(attempt)
        except ValueError:
            continue
    return None


def _matching_brace(text: str, start: int) -> int | None:
    depth = 0
    for match in _TOKEN_RE.finditer(text, start):
        piece = match.group()
        if piece == "{":
            depth += 1
        elif piece == "}":
            depth -= 1
            if depth == 0:
                return match.end()
    return None
