"""Structured-output schemas a grammar-constrained model can finish, and what they can cost.

A server that turns a JSON schema into a grammar (Ollama's ``format``, llama.cpp's
``response_format``) lets the model write any string the schema allows; a small model given an
unbounded string writes until the token limit cuts it. Every schema sent here is therefore
bounded (``maxLength``, ``maxItems``, enums, ``additionalProperties: false``), and
:func:`schema_max_tokens` is the ``max_tokens`` its longest reply fits in.
"""

from __future__ import annotations

import copy
import json
from typing import Any

# English prose runs about 4 characters a token (SmolLM2, llama 3); 3 leaves room for JSON
# punctuation and short words, so max_tokens does not cut a reply the grammar let through. A
# reply cut anyway is recorded as cut, with what came.
CHARS_PER_TOKEN_FLOOR = 3.0
UNBOUNDED_CHARS = 1000


def closed(schema: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``schema`` with ``additionalProperties: false`` on every object."""
    out = copy.deepcopy(schema)

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if node.get("type") == "object" or "properties" in node:
                node.setdefault("additionalProperties", False)
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(out)
    return out


def schema_max_chars(schema: dict[str, Any], root: dict[str, Any] | None = None) -> int:
    """The longest JSON text ``schema`` allows (keys, quotes, separators, bounded strings);
    ``$ref`` into ``$defs`` is followed; an unbounded part counts ``UNBOUNDED_CHARS``."""
    root = root or schema
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/$defs/"):
        return schema_max_chars(root.get("$defs", {}).get(ref.rsplit("/", 1)[1], {}), root)
    for key in ("anyOf", "oneOf"):
        if key in schema:
            return max(schema_max_chars(s, root) for s in schema[key])
    if "enum" in schema:
        return max(len(_json(v)) for v in schema["enum"])
    kind = schema.get("type")
    if kind == "string":
        return 2 + int(schema.get("maxLength", UNBOUNDED_CHARS))
    if kind in {"integer", "number"}:
        high = max(abs(int(schema.get("maximum", 10**9))), abs(int(schema.get("minimum", 0))))
        return len(str(high)) + 1
    if kind == "boolean":
        return 5
    if kind == "null":
        return 4
    if kind == "array":
        items = int(schema.get("maxItems", 10))
        return 2 + items * (schema_max_chars(schema.get("items", {}), root) + 2)
    if kind == "object" or "properties" in schema:
        props = schema.get("properties", {})
        return 2 + sum(len(k) + 4 + schema_max_chars(v, root) for k, v in props.items())
    return UNBOUNDED_CHARS


def schema_max_tokens(schema: dict[str, Any]) -> int:
    """A ``max_tokens`` the longest reply ``schema`` allows fits in (with room for whitespace)."""
    return int(schema_max_chars(schema) / CHARS_PER_TOKEN_FLOOR) + 32


def _json(value: Any) -> str:
    return json.dumps(value)
