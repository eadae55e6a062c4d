"""``/docs`` is a usable reference: every operation has a summary, every request body an
example, and every JSON answer a named response model with an example."""

from __future__ import annotations

from typing import Any

import pytest

from crt_loops.api.app import create_app

SPEC: dict[str, Any] = create_app().openapi()
OPERATIONS = [
    (method.upper(), path, op)
    for path, item in SPEC["paths"].items()
    for method, op in item.items()
    if method in {"get", "post", "put", "patch", "delete"}
]
IDS = [f"{method} {path}" for method, path, _ in OPERATIONS]


def resolve(schema: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref")
    if ref is None:
        return schema
    name = ref.removeprefix("#/components/schemas/")
    resolved: dict[str, Any] = SPEC["components"]["schemas"][name]
    return resolved


def has_example(media: dict[str, Any]) -> bool:
    if media.get("example") is not None or media.get("examples"):
        return True
    schema = resolve(media.get("schema") or {})
    return bool(schema.get("examples") or schema.get("example") is not None)


def test_the_service_has_operations() -> None:
    assert len(OPERATIONS) >= 25
    assert ("GET", "/metrics") in {(m, p) for m, p, _ in OPERATIONS}


@pytest.mark.parametrize(("method", "path", "op"), OPERATIONS, ids=IDS)
def test_every_operation_has_a_summary(method: str, path: str, op: dict[str, Any]) -> None:
    summary = op.get("summary") or ""
    assert len(summary) >= 10, f"{method} {path} has no useful summary"


@pytest.mark.parametrize(("method", "path", "op"), OPERATIONS, ids=IDS)
def test_every_request_body_has_an_example(method: str, path: str, op: dict[str, Any]) -> None:
    body = op.get("requestBody")
    if body is None:
        return
    media = body["content"].get("application/json")
    assert media is not None, f"{method} {path}: the body is not JSON"
    assert has_example(media), f"{method} {path}: the request body has no example"


@pytest.mark.parametrize(("method", "path", "op"), OPERATIONS, ids=IDS)
def test_every_answer_has_a_model_and_an_example(
    method: str, path: str, op: dict[str, Any]
) -> None:
    ok = [code for code in op["responses"] if code.startswith("2")]
    assert ok, f"{method} {path} documents no success answer"
    answer = op["responses"][ok[0]]
    if ok[0] == "204":
        assert not answer.get("content")
        return
    content = answer.get("content") or {}
    media = content.get("application/json")
    if media is None:  # a non-JSON answer (the Prometheus text format) needs its own example
        assert any(m.get("example") for m in content.values()), f"{method} {path}"
        return
    schema = media.get("schema") or {}
    assert "$ref" in schema, f"{method} {path}: the answer has no named response model"
    assert has_example(media), f"{method} {path}: the answer's model has no example"


def test_validation_errors_are_documented() -> None:
    with_input = [
        (m, p, op) for m, p, op in OPERATIONS if op.get("parameters") or op.get("requestBody")
    ]
    missing = [f"{m} {p}" for m, p, op in with_input if not {"422", "4XX"} & set(op["responses"])]
    documented_elsewhere = {
        "POST /api/threads/{thread_id}/heartbeat/config",  # the body is read by hand, any type
        "POST /api/heartbeat/heartbeat.md",
    }
    assert set(missing) <= documented_elsewhere
