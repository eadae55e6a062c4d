"""heartbeat.decision and heartbeat.validation: the schema, lenient parsing that never raises,
strict validation."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crt_loops.core.enums import BlockReason
from crt_loops.heartbeat.config import HeartbeatConfig
from crt_loops.heartbeat.decision import (
    COMMENT_CONTENT_MAX,
    DECISION_SCHEMA_TITLE,
    POST_CONTENT_MAX,
    TITLE_MAX,
    CommentAction,
    Decision,
    ParseResult,
    PostAction,
    VoteAction,
    decision_json_schema,
    parse_decision,
)
from crt_loops.heartbeat.fence import UNTRUSTED_CLOSE, UNTRUSTED_OPEN
from crt_loops.heartbeat.validation import (
    ValidatedAction,
    ValidationContext,
    action_hash,
    content_hash,
    validate_actions,
)

DECISION = {
    "summary": "one reply and one upvote",
    "actions": [
        {"type": "comment", "post_id": "p1", "content": "Good point about caching."},
        {"type": "vote", "post_id": "p2", "direction": "up"},
    ],
}


def parsed(text: str) -> ParseResult:
    result = parse_decision(text)
    assert result.ok, result.error
    assert result.decision is not None
    return result


# -- schema ---------------------------------------------------------------------------------


def test_schema_is_titled_and_plain() -> None:
    schema = decision_json_schema()
    assert schema["title"] == DECISION_SCHEMA_TITLE == "HeartbeatDecision"
    json.dumps(schema)
    allowed = {"title", "type", "properties", "items", "enum", "required"}

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            assert set(node) <= allowed or set(node) & {"post_id", "summary", "type"}, node
            for value in node.values():
                walk(value)

    walk(schema)
    assert "anyOf" not in json.dumps(schema) and "$ref" not in json.dumps(schema)
    action = schema["properties"]["actions"]["items"]
    assert action["properties"]["type"]["enum"] == [
        "post",
        "comment",
        "vote",
        "follow",
        "subscribe",
    ]
    assert action["properties"]["direction"]["enum"] == ["up", "down"]


def test_schema_shaped_reply_round_trips() -> None:
    result = parsed(json.dumps(DECISION))
    assert result.format == "json" and result.rejected == []
    assert result.decision == Decision.model_validate(DECISION)


# -- lenient parsing ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "HEARTBEAT_OK",
        "  HEARTBEAT_OK.\n",
        "`HEARTBEAT_OK`",
        "**HEARTBEAT_OK**",
        "heartbeat_ok",
        "Nothing needs attention right now. HEARTBEAT_OK",
        "<think>the feed is quiet</think>\nHEARTBEAT_OK",
    ],
)
def test_heartbeat_ok_is_silence(text: str) -> None:
    result = parsed(text)
    assert result.format == "heartbeat_ok"
    assert result.decision is not None and result.decision.actions == []


def test_think_blocks_are_ignored() -> None:
    reply = (
        '<think>maybe {"summary": "draft", "actions": [{"type": "post"}]}</think>\n'
        + json.dumps(DECISION)
    )
    assert parsed(reply).decision == Decision.model_validate(DECISION)


def test_only_a_closing_think_tag() -> None:
    reply = 'reasoning from a template that opened the block {"x": 1}</think>' + json.dumps(
        DECISION
    )
    assert parsed(reply).decision == Decision.model_validate(DECISION)


def test_unclosed_leading_think_uses_the_last_object() -> None:
    reply = '<think>first idea {"summary": "draft", "actions": []} then ' + json.dumps(DECISION)
    assert parsed(reply).decision == Decision.model_validate(DECISION)


def test_code_fences_and_prose() -> None:
    reply = "Sure! Here is my decision:\n```json\n" + json.dumps(DECISION) + "\n```\nThanks."
    assert parsed(reply).decision == Decision.model_validate(DECISION)


def test_greedy_regex_regression() -> None:
    """Regression (docs/reference.md §6): a greedy ``\\{.*\\}`` grabbed from the first brace to the
    last."""
    reply = (
        'I looked at {"post_id": "p9"} first. Decision: '
        + json.dumps(DECISION)
        + " (braces in prose: } {)"
    )
    result = parsed(reply)
    assert result.decision == Decision.model_validate(DECISION)


def test_braces_inside_strings_do_not_confuse_the_scan() -> None:
    reply = '{"summary": "a } and a { in text", "actions": []}'
    assert parsed(reply).decision == Decision(summary="a } and a { in text")


def test_object_nested_in_a_wrapper_is_found() -> None:
    assert parsed(json.dumps({"decision": DECISION})).decision == Decision.model_validate(DECISION)


def test_trailing_commas_are_forgiven() -> None:
    assert parsed('{"summary": "s", "actions": [],}').decision == Decision(summary="s")


@pytest.mark.parametrize(
    "legacy",
    [
        {"action": None},
        {"action": None, "reason": "nothing new"},
        {"action": "none", "reason": "quiet"},
        {"action": "", "summary": "quiet"},
    ],
)
def test_legacy_silence_including_action_null(legacy: dict[str, Any]) -> None:
    """Regression (docs/reference.md §6): ``"action": null`` crashed the earlier parser."""
    result = parsed(json.dumps(legacy))
    assert result.format == "legacy"
    assert result.decision is not None and result.decision.actions == []


def test_legacy_single_actions() -> None:
    post = parsed(
        '{"action": "post", "title": "T", "content": "C", "submolt": "m/General", "reason": "r"}'
    )
    assert post.decision is not None
    assert post.decision.actions == [PostAction(title="T", content="C", submolt="general")]
    assert post.decision.summary == "r"
    vote = parsed('{"action": "vote", "post_id": 42, "vote": "down"}').decision
    assert vote is not None and vote.actions == [VoteAction(post_id="42", direction="down")]
    comment = parsed('{"action": "comment", "post_id": "p1", "content": "hi"}').decision
    assert comment is not None and comment.actions == [CommentAction(post_id="p1", content="hi")]


def test_legacy_unknown_action_is_rejected_not_silent() -> None:
    result = parsed('{"action": "dance", "content": "x"}')
    assert result.decision is not None and result.decision.actions == []
    assert len(result.rejected) == 1 and result.rejected[0].raw["type"] == "dance"


def test_single_bare_action_and_bare_list() -> None:
    single = parsed('{"type": "vote", "post_id": "p2", "direction": "up"}')
    assert single.format == "single"
    listed = parsed('[{"type": "vote", "post_id": "p2", "direction": "up"}]')
    assert single.decision == listed.decision


def test_forgiving_spellings() -> None:
    reply = json.dumps(
        {
            "summary": "s",
            "actions": [
                {"type": "Upvote", "postId": 7},
                {"type": "reply", "post_id": "p1", "text": "hello", "parent_id": ""},
                {"TYPE": "vote", "post_id": "p3", "direction": -1},
            ],
        }
    )
    decision = parsed(reply).decision
    assert decision is not None
    assert decision.actions == [
        VoteAction(post_id="7", direction="up"),
        CommentAction(post_id="p1", content="hello"),
        VoteAction(post_id="p3", direction="down"),
    ]


def test_malformed_items_are_rejected_and_the_rest_kept() -> None:
    reply = json.dumps(
        {
            "summary": "mixed",
            "actions": [
                {"type": "comment", "content": "no post id"},
                {"type": "vote", "post_id": "p2", "direction": "sideways"},
                "post something",
                {"type": "dance"},
                {"type": "vote", "post_id": "p2", "direction": "up"},
            ],
        }
    )
    result = parsed(reply)
    assert result.decision is not None
    assert result.decision.actions == [VoteAction(post_id="p2", direction="up")]
    reasons = [r.reason for r in result.rejected]
    assert len(reasons) == 4
    assert "post_id" in reasons[0] and "direction" in reasons[1]
    assert result.rejected[2].raw == {"value": "post something"}


def test_too_many_items_are_capped() -> None:
    items = [{"type": "vote", "post_id": f"p{i}", "direction": "up"} for i in range(60)]
    result = parsed(json.dumps({"summary": "", "actions": items}))
    assert result.decision is not None and len(result.decision.actions) == 50
    assert "first 50" in result.rejected[-1].reason


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   \n",
        "I would rather not decide.",
        '{"foo": 1}',
        "{not json}",
        '{"summary": "cut off", "actions": [',
        "[" * 10_000,
        "{" * 10_000,
        '{"a":' * 5_000,
        "x" * 200_001,
        "<think>only thinking, never finished",
    ],
)
def test_non_decisions_fail_with_a_reason(text: str) -> None:
    result = parse_decision(text)
    assert not result.ok and result.decision is None and result.error
    assert result.format == "invalid"


def test_non_string_input_is_a_failure_not_a_crash() -> None:
    assert not parse_decision(None).ok  # type: ignore[arg-type]


# -- parsing properties ---------------------------------------------------------------------

json_scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(
            st.sampled_from(["actions", "action", "type", "post_id", "content", "summary", "x"]),
            inner,
            max_size=4,
        )
    ),
    max_leaves=15,
)
noise = st.text(alphabet=st.sampled_from(list('{}[]"\\:, <>/thinkHEARTBEAT_OK`\n')), max_size=30)


def check_consistent(result: ParseResult) -> None:
    assert result.ok == (result.decision is not None)
    assert (result.error is None) == result.ok


@settings(max_examples=200, deadline=None)
@given(text=st.text())
def test_parse_never_raises_on_any_text(text: str) -> None:
    check_consistent(parse_decision(text))


@settings(max_examples=200, deadline=None)
@given(before=noise, value=json_values, after=noise)
def test_parse_never_raises_on_json_ish_text(before: str, value: Any, after: str) -> None:
    check_consistent(parse_decision(before + json.dumps(value) + after))


action_strategy = st.one_of(
    st.builds(
        PostAction,
        title=st.text(min_size=1, max_size=20).filter(str.strip).map(str.strip),
        content=st.text(min_size=1, max_size=40).filter(str.strip).map(str.strip),
        submolt=st.sampled_from([None, "general"]),
    ),
    st.builds(
        CommentAction,
        post_id=st.from_regex(r"[a-z0-9]{1,8}", fullmatch=True),
        content=st.text(min_size=1, max_size=40).filter(str.strip).map(str.strip),
    ),
    st.builds(
        VoteAction,
        post_id=st.from_regex(r"[a-z0-9]{1,8}", fullmatch=True),
        direction=st.sampled_from(["up", "down"]),
    ),
)


@settings(max_examples=150, deadline=None)
@given(actions=st.lists(action_strategy, max_size=4), summary=st.text(max_size=40), prose=noise)
def test_any_valid_decision_survives_prose_around_it(
    actions: list[Any], summary: str, prose: str
) -> None:
    decision = Decision(actions=actions, summary=summary.strip())
    result = parse_decision("Decision:\n" + decision.model_dump_json() + "\n" + prose)
    assert result.ok and result.decision == decision


# -- validation -----------------------------------------------------------------------------

NOW = 1_700_000_000.0


def ctx(**overrides: Any) -> ValidationContext:
    values: dict[str, Any] = {
        "config": HeartbeatConfig(max_actions=5),
        "now": NOW,
        "shown_post_ids": {"p1", "p2", "p3", "mine"},
        "own_post_ids": {"mine"},
        "secrets": ["sk-ledger-123", "api-token-xyz"],
    }
    values.update(overrides)
    return ValidationContext(**values)


def check(action: Any, **overrides: Any) -> ValidatedAction:
    [result] = validate_actions(Decision(actions=[action]), ctx(**overrides))
    return result


def post(**fields: Any) -> PostAction:
    return PostAction(**({"title": "A title", "content": "Some content"} | fields))


def comment(**fields: Any) -> CommentAction:
    return CommentAction(**({"post_id": "p1", "content": "A thought"} | fields))


def vote(**fields: Any) -> VoteAction:
    return VoteAction(**({"post_id": "p1", "direction": "up"} | fields))


def test_valid_actions_pass_and_posts_get_the_default_submolt() -> None:
    results = validate_actions(
        Decision(actions=[post(), comment(), vote()]),
        ctx(config=HeartbeatConfig(submolt="reflections")),
    )
    assert [r.allowed for r in results] == [True, True, True]
    assert results[0].action == post(submolt="reflections")
    assert results[0].content_hash == action_hash(results[0].action)
    assert results[2].content_hash is None
    assert check(post(), default_submolt="general").action.submolt == "general"


@pytest.mark.parametrize(
    ("target", "blocked"),
    [("none", {"post", "comment", "vote"}), ("comment", {"post", "vote"}), ("any", set())],
)
def test_target(target: str, blocked: set[str]) -> None:
    results = validate_actions(
        Decision(actions=[post(), comment(), vote()]), ctx(config=HeartbeatConfig(target=target))
    )
    for result in results:
        expected = result.action.type in blocked
        assert (result.reason == BlockReason.TARGET) is expected
        assert result.allowed is not expected


def test_max_actions_counts_allowed_actions_only() -> None:
    actions = [
        vote(post_id="p9"),
        vote(post_id="p1"),
        comment(),
        comment(post_id="p2", content="x"),
    ]
    results = validate_actions(
        Decision(actions=actions), ctx(config=HeartbeatConfig(max_actions=2))
    )
    assert [r.reason for r in results] == [
        BlockReason.UNKNOWN_POST,
        None,
        None,
        BlockReason.MAX_ACTIONS,
    ]


def test_unknown_post_and_unknown_parent() -> None:
    assert check(comment(post_id="p404")).reason == BlockReason.UNKNOWN_POST
    assert check(vote(post_id="p404")).reason == BlockReason.UNKNOWN_POST
    shown = {"c1"}
    assert check(comment(parent_id="c1"), shown_comment_ids=shown).allowed
    assert check(comment(parent_id="c9"), shown_comment_ids=shown).reason == "unknown_post"
    assert check(comment(parent_id="c9")).allowed  # no comment ids known: not checked


def test_votes_self_and_twice() -> None:
    assert check(vote(post_id="mine")).reason == BlockReason.SELF_VOTE
    assert check(comment(post_id="mine")).allowed  # replying under one's own post is good
    assert check(vote(), voted_post_ids={"p1"}).reason == BlockReason.ALREADY_VOTED
    twice = validate_actions(Decision(actions=[vote(), vote(direction="down")]), ctx())
    assert [r.reason for r in twice] == [None, BlockReason.ALREADY_VOTED]


def test_duplicates_within_24h_and_within_the_run() -> None:
    seen = {action_hash(comment(content="Same   words"))}
    assert check(comment(content="same words"), recent_hashes=seen).reason == "duplicate"
    recent_post = {action_hash(post())}
    assert check(
        post(title="a TITLE", content="some\ncontent"), recent_hashes=recent_post
    ).reason == (BlockReason.DUPLICATE)
    run = validate_actions(Decision(actions=[comment(), comment(post_id="p2")]), ctx())
    assert [r.reason for r in run] == [None, BlockReason.DUPLICATE]


def test_rate_limits_known_ahead() -> None:
    assert check(post(), next_post_allowed_at=NOW + 60).reason == BlockReason.RATE_LIMITED
    # A blocked post says when posting becomes possible again, as a clock time and a wait.
    later = datetime.fromtimestamp(NOW + 12 * 60, UTC)
    assert check(post(), next_post_allowed_at=NOW + 12 * 60).detail == (
        f"the Ledger allows the next post at {later:%H:%M} UTC, in 12 min"
    )
    assert check(post(), next_post_allowed_at=NOW).allowed
    assert check(comment(), next_comment_allowed_at=NOW + 5).reason == "rate_limited"
    assert check(comment(), comments_left_today=0).reason == BlockReason.RATE_LIMITED
    two = validate_actions(
        Decision(actions=[comment(), comment(post_id="p2", content="other")]),
        ctx(comments_left_today=1),
    )
    assert [r.reason for r in two] == [None, BlockReason.RATE_LIMITED]
    posts = validate_actions(
        Decision(actions=[post(), post(title="Another", content="Else")]),
        ctx(post_cooldown_seconds=1800),
    )
    assert [r.reason for r in posts] == [None, BlockReason.RATE_LIMITED]
    assert check(vote(), next_post_allowed_at=NOW + 60, comments_left_today=0).allowed


@pytest.mark.parametrize(
    ("action", "reason"),
    [
        (post(title="t" * TITLE_MAX, content="c" * POST_CONTENT_MAX), None),
        (post(title="t" * (TITLE_MAX + 1)), BlockReason.TOO_LONG),
        (post(content="c" * (POST_CONTENT_MAX + 1)), BlockReason.TOO_LONG),
        (comment(content="c" * COMMENT_CONTENT_MAX), None),
        (comment(content="c" * (COMMENT_CONTENT_MAX + 1)), BlockReason.TOO_LONG),
        (post(title="   "), BlockReason.EMPTY),
        (post(content=""), BlockReason.EMPTY),
        (comment(content=" \n "), BlockReason.EMPTY),
        (post(submolt="Bad Name!"), BlockReason.INVALID),
        (post(submolt="x"), BlockReason.INVALID),
        (comment(post_id="../agents/me"), BlockReason.INVALID),
        (vote(post_id="p1/upvote"), BlockReason.INVALID),
        (comment(parent_id="a b"), BlockReason.INVALID),
    ],
)
def test_caps_and_shapes(action: Any, reason: BlockReason | None) -> None:
    assert check(action).reason == reason


@pytest.mark.parametrize(
    "action",
    [
        post(content="my key is sk-ledger-123, enjoy"),
        post(title="api-token-xyz"),
        comment(content="token: api-token-xyz"),
    ],
)
def test_secrets_never_leave(action: Any) -> None:
    result = check(action)
    assert result.reason == BlockReason.SECRET
    assert "sk-ledger" not in (result.detail or "") and "api-token" not in (result.detail or "")


@pytest.mark.parametrize(
    "action",
    [
        post(content="HEARTBEAT_OK"),
        comment(content="  HEARTBEAT_OK. "),
        comment(content="All quiet today. HEARTBEAT_OK"),
        post(content=f"{UNTRUSTED_OPEN}\nsomeone said hi\n{UNTRUSTED_CLOSE}"),
        comment(content="as the untrusted ledger content says, ..."),
        post(title="HEARTBEAT_OK"),
    ],
)
def test_internal_output_never_leaks(action: Any) -> None:
    assert check(action).reason == BlockReason.INTERNAL_LEAK


def test_order_is_kept_and_every_action_reported() -> None:
    actions = [vote(post_id="p404"), post(), comment(content="")]
    results = validate_actions(Decision(actions=actions), ctx())
    assert [r.action.type for r in results] == ["vote", "post", "comment"]
    assert [r.allowed for r in results] == [False, True, False]
    assert all(r.detail for r in results if not r.allowed)


def test_content_hash_normalises() -> None:
    assert (
        content_hash("Hello   World")
        == content_hash("hello world")
        == content_hash(" HELLO\nworld ")
    )
    full_width = "\uff48\uff45\uff4c\uff4c\uff4f"  # NFKC folds these to "hello"
    assert content_hash(full_width) == content_hash("hello")
    assert content_hash("hello") != content_hash("hello!")


@settings(max_examples=100, deadline=None)
@given(
    actions=st.lists(action_strategy, max_size=8),
    target=st.sampled_from(["any", "none", "post", "comment,vote"]),
    max_actions=st.integers(1, 5),
)
def test_validation_invariants(actions: list[Any], target: str, max_actions: int) -> None:
    config = HeartbeatConfig(target=target, max_actions=max_actions)
    results = validate_actions(Decision(actions=actions), ctx(config=config))
    assert len(results) == len(actions)
    allowed = [r for r in results if r.allowed]
    assert len(allowed) <= max_actions
    assert all(r.action.type in config.allowed_actions() for r in allowed)
    assert all((r.reason is None) == r.allowed for r in results)
