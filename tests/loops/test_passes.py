"""Pass plumbing: lenient JSON extraction, strict validation, the result record."""

from __future__ import annotations

import pytest
from pydantic import BaseModel

from crt_loops.llm.client import LLMBadOutput
from crt_loops.loops.passes import PassResult, extract_json_object, parse_reply


class Thing(BaseModel):
    name: str
    size: int


@pytest.mark.parametrize(
    "content",
    [
        '{"name": "a", "size": 1}',
        '<think>Let me think {"name": "wrong"}</think>{"name": "a", "size": 1}',
        'Sure! Here it is:\n```json\n{"name": "a", "size": 1}\n```\nAnything else?',
        'Prose with a {brace} first, then {"name": "a", "size": 1} and more.',
        '  {"name": "a", "size": "1"}  ',  # lax numbers are fine, the shape is strict
        # An unclosed <think> is searched when the visible text holds nothing, as for the
        # heartbeat's decisions: one rule for every reply (core.lenient_json).
        '<think>unfinished thinking {"name": "a", "size": 1}',
    ],
)
def test_parse_reply_is_lenient_about_wrapping(content: str) -> None:
    assert parse_reply(content, Thing) == Thing(name="a", size=1)


@pytest.mark.parametrize(
    "content",
    [
        "",
        "no json here",
        "<think>unfinished thinking, no object",
        "[1, 2, 3]",
        '{"name": "a"}',
        '{"name": "a", "size": "big"}',
    ],
)
def test_parse_reply_is_strict_about_shape(content: str) -> None:
    with pytest.raises(LLMBadOutput):
        parse_reply(content, Thing)


def test_extract_returns_the_first_object() -> None:
    assert extract_json_object('x {"a": {"b": 1}} y {"c": 2}') == {"a": {"b": 1}}


def test_pass_result_as_dict() -> None:
    result = PassResult("reflection", threads_seen=2, duration_ms=1.23456)
    result.errors.append("t1: RuntimeError: boom")
    data = result.as_dict()
    assert data["loop"] == "reflection" and data["duration_ms"] == 1.23
    assert {
        "threads_seen",
        "threads_processed",
        "threads_failed",
        "llm_calls",
        "entries_written",
        "errors",
    } <= set(data)
    assert data["errors"] == ["t1: RuntimeError: boom"]
