"""core.lenient_json: one rule set for every model reply, lenient about form, never repairing."""

from __future__ import annotations

import pytest
from pydantic import BaseModel

from crt_loops.core.lenient_json import first_object, json_values, split_reply
from crt_loops.heartbeat.decision import parse_decision
from crt_loops.loops.passes import parse_reply


class Answer(BaseModel):
    summary: str
    actions: list[dict[str, str]]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"a": 1}', {"a": 1}),
        ('<think>{"a": 0}</think>{"a": 1}', {"a": 1}),
        ('a template opened it {"a": 0}</think> {"a": 1}', {"a": 1}),
        ('```json\n{"a": 1,}\n```', {"a": 1}),
        ('prose {not json} then {"a": {"b": 1}} and {"c": 2}', {"a": {"b": 1}}),
        ('visible {"a": 1} <think> hidden {"a": 2}', {"a": 1}),
        ('<think>first {"a": 1} then the answer {"a": 2}', {"a": 2}),
    ],
)
def test_first_object(text: str, expected: dict[str, object]) -> None:
    assert first_object(text) == expected


@pytest.mark.parametrize(
    "text",
    ["", "no json", '{"a": "cut off mid-str', "[1, 2]", "<think>only thinking"],
)
def test_nothing_is_repaired_or_invented(text: str) -> None:
    assert first_object(text) is None


def test_a_bare_list_is_offered_first() -> None:
    assert next(value for _, _, value in json_values(' [{"a": 1}] ')) == [{"a": 1}]


def test_split_reply_separates_an_unclosed_think() -> None:
    reply = split_reply("<think>x</think>said ```json <think>still thinking")
    assert reply.visible.strip() == "said"
    assert reply.hidden == "still thinking"


@pytest.mark.parametrize(
    "reply",
    [
        '<think>draft</think>{"summary": "s", "actions": []}',
        '<think>the answer at the end {"summary": "s", "actions": []}',
        '```json\n{"summary": "s", "actions": [],}\n```',
    ],
)
def test_the_heartbeat_and_the_passes_read_a_reply_alike(reply: str) -> None:
    assert parse_reply(reply, Answer) == Answer(summary="s", actions=[])
    parsed = parse_decision(reply)
    assert parsed.ok and parsed.decision is not None and parsed.decision.summary == "s"
