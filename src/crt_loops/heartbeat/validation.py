"""Strict validation of a heartbeat's decision (docs/architecture.md §5 step 6).

Every action that may not be sent is kept, marked not allowed, with a :class:`BlockReason` the
outbox records as state ``blocked``: lengths, shown post ids only, the target, max actions, no
double votes, no repeated text within 24 h, the Ledger's rate limits ahead of a 429, no secrets,
no prompt scaffolding.
"""

from __future__ import annotations

import hashlib
import unicodedata
from collections.abc import Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field

from crt_loops.core.enums import BlockReason
from crt_loops.core.wording import allowed_again
from crt_loops.edge.text import is_blank
from crt_loops.heartbeat import social_actions as social
from crt_loops.heartbeat.config import SUBMOLT_RE, HeartbeatConfig
from crt_loops.heartbeat.decision import (
    COMMENT_CONTENT_MAX,
    HEARTBEAT_OK,
    ID_RE,
    OK_EDGE_CHARS,
    OK_TOKEN_RE,
    POST_CONTENT_MAX,
    TITLE_MAX,
    AnyAction,
    CommentAction,
    Decision,
    PostAction,
    VoteAction,
)
from crt_loops.heartbeat.fence import SCAFFOLD_PHRASE
from crt_loops.heartbeat.private_data import PrivateItem, PrivateKind, find_leak
from crt_loops.heartbeat.redaction import contains_secret
from crt_loops.heartbeat.social_actions import FollowAction, SocialContext, SubscribeAction


@dataclass(frozen=True, kw_only=True)
class ValidationContext:
    """What validation knows about the world at decision time.

    ``shown_post_ids``: every post id the prompt showed (feed and activity on own posts).
    ``recent_hashes``: :func:`action_hash` of what the agent posted or commented in the last
    24 h. ``shown_comment_ids``, when given, is checked against a comment's ``parent_id``.
    ``post_cooldown_seconds`` > 0 allows at most one post per run (a second would be a 429).
    ``private``: personal values from the owner's chat that must not leave (reason
    ``private_data``), except the kinds in ``private_allowed`` (HEARTBEAT.md's opt-in).
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
    private: AbstractSet[PrivateItem] = frozenset()
    private_allowed: AbstractSet[PrivateKind] = frozenset()


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
    return _check_together(results, ctx)


def _check_together(
    results: list[ValidatedAction], ctx: ValidationContext
) -> list[ValidatedAction]:
    """The run's actions read as one text: a secret or a personal value split across several
    comments passes every single-action check. If the whole carries one (blocked actions
    included: the rest of a run that tried to leak is not sent either), every allowed action
    with text is blocked with that reason."""
    texty = [i for i, r in enumerate(results) if _texts_of_note(r.action)]
    allowed = [i for i in texty if results[i].allowed]
    if len(texty) < 2 or not allowed:
        return results
    # Ids are left out: their characters are the Ledger's, not a secret's or the owner's.
    joined = "\n".join(t for i in texty for t in _free_texts(results[i].action))
    block: _Block | None = None
    if contains_secret(joined, ctx.secrets):
        block = BlockReason.SECRET, "the run's actions together contain a secret"
    else:
        leak = find_leak(joined, _private_items(ctx))
        if leak is not None:
            block = (
                BlockReason.PRIVATE_DATA,
                f"the run's actions together contain the owner's {leak.describe()}",
            )
    if block is None:
        return results
    out = list(results)
    for i in allowed:
        item = out[i]
        out[i] = ValidatedAction(item.action, False, block[0], block[1], item.content_hash)
    return out


def _free_texts(action: AnyAction) -> list[str]:
    """What the model wrote freely: a post's title and content, a comment's content."""
    if isinstance(action, PostAction):
        return [action.title, action.content]
    if isinstance(action, CommentAction):
        return [action.content]
    return []


def _texts_of_note(action: AnyAction) -> bool:
    return not isinstance(action, VoteAction)


def _private_items(ctx: ValidationContext) -> list[PrivateItem]:
    return [item for item in ctx.private if item.kind not in ctx.private_allowed]


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
    if isinstance(action, FollowAction | SubscribeAction):
        return _social_block(action, ctx, run) or _check_secret(action, ctx) or _check_max(ctx, run)
    # What the text carries ranks above the thread rule: a leak is named as a leak.
    for check in (
        _check_fields(action),
        _check_secret(action, ctx),
        _check_private(action, ctx),
        _check_leak(action),
        _social_block(action, ctx, run),
    ):
        if check is not None:
            return check
    if isinstance(action, VoteAction | CommentAction):
        check = _check_target_post(action, ctx, run)
        if check is not None:
            return check
    if digest is not None and (digest in ctx.recent_hashes or digest in run.hashes):
        return BlockReason.DUPLICATE, "the same text was already posted within 24 h"
    return _check_rate(action, ctx, run) or _check_max(ctx, run)


def _social_block(action: AnyAction, ctx: ValidationContext, run: _RunTally) -> _Block | None:
    found = social.block(action, ctx.social, run.targets)
    return None if found is None else (BlockReason(found[0]), found[1])


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
    if not ID_RE.fullmatch(action.post_id):
        return BlockReason.INVALID, f"post_id {action.post_id[:80]!r} is not an id"
    if isinstance(action, CommentAction):
        if action.parent_id is not None and not ID_RE.fullmatch(action.parent_id):
            return BlockReason.INVALID, f"parent_id {action.parent_id[:80]!r} is not an id"
        return _check_text("content", action.content, COMMENT_CONTENT_MAX)
    return None


def _check_text(name: str, text: str, cap: int) -> _Block | None:
    if is_blank(text):
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


def _check_private(action: AnyAction, ctx: ValidationContext) -> _Block | None:
    if isinstance(action, VoteAction):
        return None
    leak = find_leak("\n".join(_free_texts(action)), _private_items(ctx))
    if leak is None:
        return None
    return (
        BlockReason.PRIVATE_DATA,
        f"the action contains the owner's {leak.describe()} from the chat "
        "(HEARTBEAT.md can allow it: 'Allow private data: " + leak.kind.value + "')",
    )


def _check_leak(action: PostAction | CommentAction | VoteAction) -> _Block | None:
    if isinstance(action, VoteAction):
        return None
    for text in (action.content, action.title if isinstance(action, PostAction) else ""):
        if OK_TOKEN_RE.search(text) or text.strip().strip(OK_EDGE_CHARS).upper() == HEARTBEAT_OK:
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
            when = allowed_again(ctx.next_post_allowed_at, ctx.now)
            return BlockReason.RATE_LIMITED, f"the Ledger allows the next post {when}"
        if ctx.post_cooldown_seconds > 0 and run.posts >= 1:
            return BlockReason.RATE_LIMITED, (
                "one post per cooldown: this run already plans one; the next is allowed "
                f"{allowed_again(ctx.now + ctx.post_cooldown_seconds, ctx.now)} at the earliest"
            )
    if isinstance(action, CommentAction):
        if ctx.next_comment_allowed_at is not None and ctx.next_comment_allowed_at > ctx.now:
            when = allowed_again(ctx.next_comment_allowed_at, ctx.now)
            return BlockReason.RATE_LIMITED, f"the Ledger allows the next comment {when}"
        if ctx.comments_left_today is not None and run.comments >= ctx.comments_left_today:
            return BlockReason.RATE_LIMITED, "no comments left today"
    return None
