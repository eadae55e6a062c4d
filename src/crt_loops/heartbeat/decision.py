"""The heartbeat's decision: its schema and lenient parsing (docs/architecture.md §5 step 5).

Parsing is forgiving about *form* (``<think>`` blocks, code fences, JSON inside prose, a bare
``HEARTBEAT_OK``, the older single-action shape) and never raises; a reply that holds no
decision is ``ok=False``, which the executor records as failed/invalid_decision, never as a
silent "none". Validation, strict about *substance*, is heartbeat/validation.py.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal, cast

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from crt_loops.core.lenient_json import json_values, last_value, split_reply
from crt_loops.heartbeat import social_actions as social
from crt_loops.heartbeat.config import HeartbeatConfig
from crt_loops.heartbeat.social_actions import FollowAction, SubscribeAction

DECISION_SCHEMA_TITLE = "HeartbeatDecision"  # the fake Ollama in tests routes on this title
HEARTBEAT_OK = "HEARTBEAT_OK"

TITLE_MAX = 300  # Moltbook's caps (docs/reference.md §4)
POST_CONTENT_MAX = 40_000
COMMENT_CONTENT_MAX = 10_000
_MAX_REPLY_CHARS = 200_000  # far above num_predict 8192; beyond it the reply is garbage
_MAX_ITEMS = 50  # actions read from one reply; validation's max_actions blocks most of them
ID_RE = re.compile(r"[A-Za-z0-9_-]{1,128}")  # ids go into Ledger URL paths: no '/' or '..'


class _ActionBase(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True, str_strip_whitespace=True)


class PostAction(_ActionBase):
    type: Literal["post"] = "post"
    submolt: str | None = None  # None: the config's submolt
    title: str
    content: str


class CommentAction(_ActionBase):
    type: Literal["comment"] = "comment"
    post_id: str
    content: str
    parent_id: str | None = None


class VoteAction(_ActionBase):
    type: Literal["vote"] = "vote"
    post_id: str
    direction: Literal["up", "down"]


AnyAction = PostAction | CommentAction | VoteAction | FollowAction | SubscribeAction
Action = Annotated[AnyAction, Field(discriminator="type")]  # for pydantic: dispatch on "type"
_ACTION = TypeAdapter[AnyAction](Action)


class Decision(BaseModel):
    """What the model decided: an empty ``actions`` list is silence."""

    model_config = ConfigDict(frozen=True)

    actions: list[Action] = Field(default_factory=list)
    summary: str = ""


# What the schema lets a grammar-constrained model write: far under the Ledger's caps, because a
# small model with an unbounded string writes until the token limit cuts it (measured with
# SmolLM2-135M: 2 of 4 decisions usable unbounded, 5 of 5 with these bounds).
SCHEMA_SUMMARY_MAX = 160
SCHEMA_TITLE_MAX = 100
SCHEMA_CONTENT_MAX = 400
SCHEMA_ID_MAX = 40  # Ledger ids are "p_" or "c_" and 16 hex digits
SCHEMA_SUBMOLT_MAX = 30
SCHEMA_AGENT_NAME_MAX = 32  # social_actions.AGENT_NAME_RE


def decision_json_schema(config: HeartbeatConfig | None = None) -> dict[str, Any]:
    """The JSON schema sent to the model, bounded so a grammar-constrained model can finish.

    A flat action object (a ``type`` enum and optional fields) instead of ``anyOf`` keeps it to
    plain object/array/string/enum, which every server's grammar handles; the per-type rules
    are applied by :func:`parse_decision` and :func:`validate_actions`. Strings have
    ``maxLength``, ``actions`` has ``maxItems`` = the thread's ``max_actions``, objects allow
    no other keys, and ``type`` lists only the action types the thread allows. ``summary``
    comes first so the model states its reasoning before it commits to actions.
    """
    max_actions = config.max_actions if config is not None else 3
    allowed = sorted(config.allowed_actions()) if config is not None else []
    types = [
        t
        for t in ("post", "comment", "vote", *social.SOCIAL_TYPES)
        if not allowed or social.target_type(t) in allowed
    ]

    def text(limit: int) -> dict[str, Any]:
        return {"type": "string", "maxLength": limit}

    action: dict[str, Any] = {
        "type": "object",
        "properties": {
            "type": {"type": "string", "enum": types},
            "post_id": text(SCHEMA_ID_MAX),
            "parent_id": text(SCHEMA_ID_MAX),
            "submolt": text(SCHEMA_SUBMOLT_MAX),
            "title": text(SCHEMA_TITLE_MAX),
            "content": text(SCHEMA_CONTENT_MAX),
            "agent_name": text(SCHEMA_AGENT_NAME_MAX),
            "direction": {"type": "string", "enum": ["up", "down"]},
        },
        "required": ["type"],
        "additionalProperties": False,
    }
    return {
        "title": DECISION_SCHEMA_TITLE,
        "type": "object",
        "properties": {
            "summary": text(SCHEMA_SUMMARY_MAX),
            "actions": {"type": "array", "items": action, "maxItems": max_actions},
        },
        "required": ["summary", "actions"],
        "additionalProperties": False,
    }


@dataclass(frozen=True)
class RejectedAction:
    """An action item in the reply that is not a well-formed action; ``reason`` says why."""

    raw: dict[str, Any]
    reason: str


@dataclass(frozen=True)
class ParseResult:
    """``ok`` with a ``decision`` (possibly silent), or not ``ok`` with an ``error``.

    ``format``: json (the schema), single (one bare action object), legacy (the older
    ``{"action": ...}`` shape), heartbeat_ok (a plain HEARTBEAT_OK), invalid.
    """

    ok: bool
    decision: Decision | None
    error: str | None
    format: Literal["json", "single", "legacy", "heartbeat_ok", "invalid"]
    rejected: list[RejectedAction] = field(default_factory=list)


def parse_decision(text: str) -> ParseResult:
    """Find the decision in a model reply. Never raises, whatever the string."""
    if not isinstance(text, str):
        return _invalid(f"the reply is a {type(text).__name__}, not text")
    if len(text) > _MAX_REPLY_CHARS:
        return _invalid(f"the reply is {len(text)} characters, too long to be a decision")
    try:
        return _parse(text)
    except RecursionError:
        # json.loads recurses once per nesting level; "[[[[..." a few thousand deep ends here.
        return _invalid("the reply nests too deeply to be a decision")


OK_TOKEN_RE = re.compile(r"(?<![A-Za-z0-9_])HEARTBEAT_OK(?![A-Za-z0-9_])")
OK_EDGE_CHARS = " \t\r\n*_`'\".,!?:;-~()[]<>"


def _parse(text: str) -> ParseResult:
    # The reply's text is read by core.lenient_json's rules (thinking skipped, visible text
    # first, then the last object of an unclosed <think>); HEARTBEAT_OK in the visible text
    # ranks between the two.
    reply = split_reply(text)
    visible = reply.visible
    if visible.strip().strip(OK_EDGE_CHARS).upper() == HEARTBEAT_OK:
        return _silence("heartbeat_ok", HEARTBEAT_OK)
    for _, _, candidate in json_values(visible):
        result = _interpret(_as_object(candidate))
        if result is not None:
            return result
    if OK_TOKEN_RE.search(visible):
        prose = " ".join(OK_TOKEN_RE.sub(" ", visible).split())
        return _silence("heartbeat_ok", prose[:1000] or HEARTBEAT_OK)
    last = last_value(reply.hidden, lambda candidate: _interpret(_as_object(candidate)))
    if last is not None:
        return cast(ParseResult, last)
    if not (visible.strip() or reply.hidden.strip()):
        return _invalid("the reply is empty")
    return _invalid("no decision found: expected a JSON object with actions and summary")


def _as_object(candidate: Any) -> Any:
    # A bare list of actions is the schema's inner array without its wrapper.
    return {"actions": candidate} if isinstance(candidate, list) else candidate


def _interpret(obj: Any) -> ParseResult | None:
    """A ParseResult when ``obj`` is decision-shaped, else None (try the next candidate)."""
    if not isinstance(obj, dict):
        return None
    keys = {str(key).strip().lower(): value for key, value in obj.items()}
    summary = _summary(keys.get("summary", keys.get("reason")))
    if "actions" in keys or ("summary" in keys and not {"action", "type"} & keys.keys()):
        return _from_items(keys.get("actions"), summary, "json")
    if "action" in keys:
        return _from_legacy(keys, summary)
    if "type" in keys:
        return _from_items([obj], summary, "single")
    return None


_SILENT_WORDS = frozenset({"", "none", "null", "silent", "silence", "nothing", "noop", "skip"})


def _from_legacy(keys: dict[str, Any], summary: str) -> ParseResult:
    action = keys["action"]
    # `"action": null` crashed the earlier implementation (docs/reference.md §6); it means "no
    # action".
    if action is None or (
        isinstance(action, str) and action.strip().lower() in _SILENT_WORDS | {"heartbeat_ok"}
    ):
        return _silence("legacy", summary)
    item = {k: v for k, v in keys.items() if k not in {"action", "summary", "reason"}}
    item["type"] = action
    return _from_items([item], summary, "legacy")


def _from_items(items: Any, summary: str, fmt: Literal["json", "single", "legacy"]) -> ParseResult:
    if items is None or (isinstance(items, str) and items.strip().lower() in _SILENT_WORDS):
        items = []
    elif not isinstance(items, list):
        items = [items]  # one action object where a list belongs, or junk to report
    actions: list[AnyAction] = []
    rejected: list[RejectedAction] = []
    for item in items[:_MAX_ITEMS]:
        if not isinstance(item, dict):
            rejected.append(RejectedAction({"value": item}, "an action must be a JSON object"))
            continue
        try:
            actions.append(_ACTION.validate_python(_normalise(item)))
        except ValidationError as exc:
            rejected.append(RejectedAction(item, _describe(exc)))
    if len(items) > _MAX_ITEMS:
        rejected.append(
            RejectedAction({"count": len(items)}, f"only the first {_MAX_ITEMS} actions are read")
        )
    return ParseResult(True, Decision(actions=actions, summary=summary), None, fmt, rejected)


_TYPE_ALIASES = {"reply": "comment", "upvote": "vote", "downvote": "vote"}
_KEY_ALIASES = {
    "postid": "post_id",
    "parentid": "parent_id",
    "agent": "agent_name",
    "parent_comment_id": "parent_id",
    "body": "content",
    "text": "content",
    "vote": "direction",
}
_DIRECTIONS = dict.fromkeys(("up", "upvote", "+1", "+", "1"), "up") | dict.fromkeys(
    ("down", "downvote", "-1", "-"), "down"
)


def _normalise(item: dict[Any, Any]) -> dict[str, Any]:
    """Forgive the spellings models actually produce: "Upvote", post ids as numbers, "m/general",
    ``text`` for ``content``. What stays wrong is left for the model validator to name."""
    out: dict[str, Any] = {}
    for key, value in item.items():
        name = str(key).strip().lower()
        out.setdefault(_KEY_ALIASES.get(name, name), value)
    kind = out.get("type")
    if isinstance(kind, str):
        kind = kind.strip().lower()
        if kind in {"upvote", "downvote"} and "direction" not in out:
            out["direction"] = kind
        out["type"] = _TYPE_ALIASES.get(kind, kind)
    for key in ("post_id", "parent_id"):
        value = out.get(key)
        if isinstance(value, int) and not isinstance(value, bool):
            out[key] = str(value)
        elif isinstance(value, str) and not value.strip() and key == "parent_id":
            out[key] = None
    direction = out.get("direction")
    if isinstance(direction, int) and not isinstance(direction, bool):
        direction = str(direction)
    if isinstance(direction, str):
        out["direction"] = _DIRECTIONS.get(direction.strip().lower(), direction)
    submolt = out.get("submolt")
    if isinstance(submolt, str):
        name = submolt.strip().lower().removeprefix("m/")
        out["submolt"] = name or None
    return out


def _describe(exc: ValidationError) -> str:
    first = exc.errors()[0]
    where = ".".join(str(part) for part in first["loc"])
    return f"{where}: {first['msg']}" if where else str(first["msg"])


def _summary(value: Any) -> str:
    if value is None:
        return ""
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return text.strip()[:2000]


def _silence(fmt: Literal["json", "legacy", "heartbeat_ok"], summary: str) -> ParseResult:
    return ParseResult(True, Decision(actions=[], summary=summary), None, fmt)


def _invalid(error: str) -> ParseResult:
    return ParseResult(False, None, error, "invalid")
