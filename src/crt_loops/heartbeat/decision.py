"""The heartbeat's decision: its schema, lenient parsing, strict validation (docs/architecture.md
§5 steps 5-6).

Parsing is forgiving about *form* (``<think>`` blocks, code fences, JSON inside prose, a bare
``HEARTBEAT_OK``, the older single-action shape) and never raises; a reply that holds no
decision is ``ok=False``, which the executor records as failed/invalid_decision, never as a
silent "none". Validation is strict about *substance*: every action that may not be sent is
kept, marked not allowed, with a reason code the executor records as state ``blocked``.
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from collections.abc import Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal, cast

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from crt_loops.core.enums import BlockReason
from crt_loops.core.lenient_json import json_values, last_value, split_reply
from crt_loops.heartbeat import social_actions as social
from crt_loops.heartbeat.config import SUBMOLT_RE, HeartbeatConfig
from crt_loops.heartbeat.redaction import contains_secret
from crt_loops.heartbeat.social_actions import FollowAction, SocialContext, SubscribeAction

DECISION_SCHEMA_TITLE = "HeartbeatDecision"  # the fake Ollama in tests routes on this title
HEARTBEAT_OK = "HEARTBEAT_OK"
# The prompt fences other agents' words between these lines. An action carrying the phrase is
# the model copying scaffolding back out (docs/reference.md §5, complaint 3), never something to
# post.
SCAFFOLD_PHRASE = "UNTRUSTED LEDGER CONTENT"
UNTRUSTED_OPEN = f"<<<{SCAFFOLD_PHRASE}>>>"
UNTRUSTED_CLOSE = f"<<<END {SCAFFOLD_PHRASE}>>>"

TITLE_MAX = 300  # Moltbook's caps (docs/reference.md §4)
POST_CONTENT_MAX = 40_000
COMMENT_CONTENT_MAX = 10_000
_MAX_REPLY_CHARS = 200_000  # far above num_predict 8192; beyond it the reply is garbage
_MAX_ITEMS = 50  # actions read from one reply; validation's max_actions blocks most of them
_ID_RE = re.compile(r"[A-Za-z0-9_-]{1,128}")  # ids go into Ledger URL paths: no '/' or '..'


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


def decision_json_schema() -> dict[str, Any]:
    """The JSON schema sent to Ollama as ``format``.

    A flat action object (a ``type`` enum and optional fields) instead of ``anyOf`` keeps it to
    plain object/array/string/enum, which Ollama's grammar handles everywhere; the per-type
    rules are applied by :func:`parse_decision` and :func:`validate_actions`. ``summary`` comes
    first so the model states its reasoning before it commits to actions.
    """
    text_fields = ("post_id", "parent_id", "submolt", "title", "content", "agent_name")
    action: dict[str, Any] = {
        "type": "object",
        "properties": {
            "type": {"type": "string", "enum": ["post", "comment", "vote", *social.SOCIAL_TYPES]},
            **{name: {"type": "string"} for name in text_fields},
            "direction": {"type": "string", "enum": ["up", "down"]},
        },
        "required": ["type"],
    }
    return {
        "title": DECISION_SCHEMA_TITLE,
        "type": "object",
        "properties": {
            "summary": {"type": "string"},
            "actions": {"type": "array", "items": action},
        },
        "required": ["summary", "actions"],
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


_OK_TOKEN_RE = re.compile(r"(?<![A-Za-z0-9_])HEARTBEAT_OK(?![A-Za-z0-9_])")
_OK_EDGE_CHARS = " \t\r\n*_`'\".,!?:;-~()[]<>"


def _parse(text: str) -> ParseResult:
    # The reply's text is read by core.lenient_json's rules (thinking skipped, visible text
    # first, then the last object of an unclosed <think>); HEARTBEAT_OK in the visible text
    # ranks between the two.
    reply = split_reply(text)
    visible = reply.visible
    if visible.strip().strip(_OK_EDGE_CHARS).upper() == HEARTBEAT_OK:
        return _silence("heartbeat_ok", HEARTBEAT_OK)
    for _, _, candidate in json_values(visible):
        result = _interpret(_as_object(candidate))
        if result is not None:
            return result
    if _OK_TOKEN_RE.search(visible):
        prose = " ".join(_OK_TOKEN_RE.sub(" ", visible).split())
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


# -- validation ---------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class ValidationContext:
    """What validation knows about the world at decision time.

    ``shown_post_ids``: every post id the prompt showed (feed and activity on own posts).
    ``recent_hashes``: :func:`action_hash` of what the agent posted or commented in the last
    24 h. ``shown_comment_ids``, when given, is checked against a comment's ``parent_id``.
    ``post_cooldown_seconds`` > 0 allows at most one post per run (a second would be a 429).
    """

    config: HeartbeatConfig
    now: float
    shown_post_ids: AbstractSet[str] = frozenset()
    own_post_ids: AbstractSet[str] = frozenset()
    voted_post_ids: AbstractSet[str] = frozenset()
    recent_hashes: AbstractSet[str] = frozenset()
    next_post_allowed_at: float | None = None
    next_comment_allowed_at: float | None = None
    comments_left_today: int | None = None
    secrets: Sequence[str] = ()
    default_submolt: str | None = None  # None: config.submolt
    shown_comment_ids: AbstractSet[str] | None = None
    post_cooldown_seconds: float = 0.0
    social: SocialContext = field(default_factory=SocialContext)  # follows, threads


@dataclass(frozen=True)
class ValidatedAction:
    """One proposed action: ``allowed`` to send, or blocked with ``reason`` (and ``detail``).

    ``content_hash`` (posts and comments) is what to store for the 24 h duplicate check.
    """

    action: AnyAction
    allowed: bool
    reason: BlockReason | None = None
    detail: str | None = None
    content_hash: str | None = None


def content_hash(text: str) -> str:
    """SHA-256 of the text normalised for duplicate detection: Unicode NFKC, casefolded,
    whitespace collapsed and trimmed."""
    normal = " ".join(unicodedata.normalize("NFKC", text).casefold().split())
    return hashlib.sha256(normal.encode("utf-8", "surrogatepass")).hexdigest()


def action_hash(action: AnyAction) -> str | None:
    """The duplicate-check hash of an action's text (title and content for a post), or None
    for a vote."""
    if isinstance(action, PostAction):
        return content_hash(f"{action.title}\n{action.content}")
    if isinstance(action, CommentAction):
        return content_hash(action.content)
    return None


def validate_actions(decision: Decision, ctx: ValidationContext) -> list[ValidatedAction]:
    """Check every action of ``decision`` in order; each comes back allowed or blocked.

    Limits that depend on earlier actions (max_actions, one vote per post, duplicates, daily
    comments, one post per cooldown) count only the actions allowed before it.
    """
    allowed_types = ctx.config.allowed_actions()
    run = _RunTally()
    results: list[ValidatedAction] = []
    for proposed in decision.actions:
        action = proposed
        if isinstance(action, PostAction) and action.submolt is None:
            submolt = ctx.default_submolt or ctx.config.submolt
            action = action.model_copy(update={"submolt": submolt})
        digest = action_hash(action)
        block = _first_block(action, digest, allowed_types, ctx, run)
        if block is not None:
            results.append(ValidatedAction(action, False, block[0], block[1], digest))
            continue
        run.record(action, digest)
        results.append(ValidatedAction(action, True, None, None, digest))
    return results


@dataclass
class _RunTally:
    allowed: int = 0
    posts: int = 0
    comments: int = 0
    voted: set[str] = field(default_factory=set)
    hashes: set[str] = field(default_factory=set)
    targets: set[str] = field(default_factory=set)  # social_actions.targets of allowed ones

    def record(self, action: AnyAction, digest: str | None) -> None:
        self.allowed += 1
        self.targets |= social.targets(action)
        if isinstance(action, PostAction):
            self.posts += 1
        elif isinstance(action, CommentAction):
            self.comments += 1
        elif isinstance(action, VoteAction):
            self.voted.add(action.post_id)
        if digest is not None:
            self.hashes.add(digest)


_Block = tuple[BlockReason, str]


def _first_block(
    action: AnyAction,
    digest: str | None,
    allowed_types: frozenset[str],
    ctx: ValidationContext,
    run: _RunTally,
) -> _Block | None:
    if social.target_type(action.type) not in allowed_types:
        return BlockReason.TARGET, f"target is {ctx.config.target!r}: {action.type} not allowed"
    found = social.block(action, ctx.social, run.targets)
    if found is not None:
        return BlockReason(found[0]), found[1]
    if isinstance(action, FollowAction | SubscribeAction):
        return _check_secret(action, ctx) or _check_max(ctx, run)
    for check in (_check_fields(action), _check_secret(action, ctx), _check_leak(action)):
        if check is not None:
            return check
    if isinstance(action, VoteAction | CommentAction):
        check = _check_target_post(action, ctx, run)
        if check is not None:
            return check
    if digest is not None and (digest in ctx.recent_hashes or digest in run.hashes):
        return BlockReason.DUPLICATE, "the same text was already posted within 24 h"
    return _check_rate(action, ctx, run) or _check_max(ctx, run)


def _check_max(ctx: ValidationContext, run: _RunTally) -> _Block | None:
    if run.allowed >= ctx.config.max_actions:
        return BlockReason.MAX_ACTIONS, f"max_actions is {ctx.config.max_actions}"
    return None


def _check_fields(action: PostAction | CommentAction | VoteAction) -> _Block | None:
    if isinstance(action, PostAction):
        if action.submolt is None or not SUBMOLT_RE.fullmatch(action.submolt):
            return BlockReason.INVALID, f"submolt {action.submolt!r} is not a valid name"
        return _check_text("title", action.title, TITLE_MAX) or _check_text(
            "content", action.content, POST_CONTENT_MAX
        )
    if not _ID_RE.fullmatch(action.post_id):
        return BlockReason.INVALID, f"post_id {action.post_id[:80]!r} is not an id"
    if isinstance(action, CommentAction):
        if action.parent_id is not None and not _ID_RE.fullmatch(action.parent_id):
            return BlockReason.INVALID, f"parent_id {action.parent_id[:80]!r} is not an id"
        return _check_text("content", action.content, COMMENT_CONTENT_MAX)
    return None


def _check_text(name: str, text: str, cap: int) -> _Block | None:
    if not text.strip():
        return BlockReason.EMPTY, f"{name} is empty"
    if len(text) > cap:
        return BlockReason.TOO_LONG, f"{name} is {len(text)} characters; the limit is {cap}"
    return None


def _texts(action: AnyAction) -> list[str]:
    return [value for value in action.model_dump().values() if isinstance(value, str)]


def _check_secret(action: AnyAction, ctx: ValidationContext) -> _Block | None:
    if contains_secret("\n".join(_texts(action)), ctx.secrets):
        return BlockReason.SECRET, "the action contains a secret (an API key or token)"
    return None


def _check_leak(action: PostAction | CommentAction | VoteAction) -> _Block | None:
    if isinstance(action, VoteAction):
        return None
    for text in (action.content, action.title if isinstance(action, PostAction) else ""):
        if _OK_TOKEN_RE.search(text) or text.strip().strip(_OK_EDGE_CHARS).upper() == HEARTBEAT_OK:
            return BlockReason.INTERNAL_LEAK, "the text is the internal HEARTBEAT_OK reply"
        if SCAFFOLD_PHRASE.casefold() in text.casefold():
            return BlockReason.INTERNAL_LEAK, "the text repeats the prompt's scaffolding markers"
    return None


def _check_target_post(
    action: VoteAction | CommentAction, ctx: ValidationContext, run: _RunTally
) -> _Block | None:
    post_id = action.post_id
    if isinstance(action, VoteAction) and post_id in ctx.own_post_ids:
        return BlockReason.SELF_VOTE, f"post {post_id} is the agent's own"
    if post_id not in ctx.shown_post_ids:
        return BlockReason.UNKNOWN_POST, f"post {post_id} was not shown in the prompt"
    if isinstance(action, VoteAction) and (post_id in ctx.voted_post_ids or post_id in run.voted):
        return BlockReason.ALREADY_VOTED, f"already voted on post {post_id}"
    if (
        isinstance(action, CommentAction)
        and action.parent_id is not None
        and ctx.shown_comment_ids is not None
        and action.parent_id not in ctx.shown_comment_ids
    ):
        return BlockReason.UNKNOWN_POST, f"comment {action.parent_id} was not shown in the prompt"
    return None


def _check_rate(action: AnyAction, ctx: ValidationContext, run: _RunTally) -> _Block | None:
    if isinstance(action, PostAction):
        if ctx.next_post_allowed_at is not None and ctx.next_post_allowed_at > ctx.now:
            wait = ctx.next_post_allowed_at - ctx.now
            return BlockReason.RATE_LIMITED, f"the next post is allowed in {wait:.0f} s"
        if ctx.post_cooldown_seconds > 0 and run.posts >= 1:
            return BlockReason.RATE_LIMITED, "one post per cooldown: a post is already planned"
    if isinstance(action, CommentAction):
        if ctx.next_comment_allowed_at is not None and ctx.next_comment_allowed_at > ctx.now:
            wait = ctx.next_comment_allowed_at - ctx.now
            return BlockReason.RATE_LIMITED, f"the next comment is allowed in {wait:.0f} s"
        if ctx.comments_left_today is not None and run.comments >= ctx.comments_left_today:
            return BlockReason.RATE_LIMITED, "no comments left today"
    return None
