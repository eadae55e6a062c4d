"""The shared SQL text, as PostgreSQL reads it.

Repository SQL is written once where the dialects agree (docs/storage.md, "A second backend").
What differs only in spelling is rewritten here, once per distinct statement (cached):

- ``?`` placeholders become ``%s`` and ``:name`` ones ``%(name)s`` (a ``::`` cast is left
  alone); a literal ``%`` becomes ``%%``, as psycopg's placeholders want;
- SQLite's scalar ``MAX(a, b)`` / ``MIN(a, b)`` become ``GREATEST`` / ``LEAST`` (the one-argument
  aggregates stay);
- ``json_extract(x, '$.key')`` becomes ``(x::jsonb ->> 'key')`` and ``json_group_array(x)``
  becomes ``COALESCE(json_agg(x), '[]')::text``.

Quoted strings and identifiers are copied as they are. Anything else that differs is a
separate statement in the repository, chosen by ``dialect``.
"""

from __future__ import annotations

import re
from functools import lru_cache

__all__ = ["to_postgres"]

_WORD = re.compile(r"[A-Za-z_][A-Za-z_0-9]*")
_JSON_PATH = re.compile(r"^\s*(?P<expr>.+?)\s*,\s*'\$\.(?P<key>[A-Za-z_][A-Za-z_0-9]*)'\s*$", re.S)


def _matching_paren(sql: str, open_at: int) -> int:
    """Index of the ')' closing the '(' at ``open_at`` (quotes skipped)."""
    depth = 0
    i = open_at
    while i < len(sql):
        ch = sql[i]
        if ch in "'\"":
            i = sql.index(ch, i + 1)
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth == 0:
                return i
        i += 1
    raise ValueError(f"unbalanced parentheses in SQL: {sql[:120]!r}")


def _top_level_comma(inner: str) -> bool:
    depth = 0
    i = 0
    while i < len(inner):
        ch = inner[i]
        if ch in "'\"":
            i = inner.index(ch, i + 1)
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif ch == "," and depth == 0:
            return True
        i += 1
    return False


def _functions(sql: str) -> str:
    """Rewrite the functions whose names differ (module docstring), innermost first."""
    out: list[str] = []
    i = 0
    while i < len(sql):
        ch = sql[i]
        if ch in "'\"":
            end = sql.index(ch, i + 1)
            out.append(sql[i : end + 1])
            i = end + 1
            continue
        word = _WORD.match(sql, i)
        if word is None or (i > 0 and (sql[i - 1].isalnum() or sql[i - 1] in "_.")):
            out.append(ch)
            i += 1
            continue
        name = word.group(0)
        after = word.end()
        lower = name.lower()
        if after < len(sql) and sql[after] == "(" and lower in _REWRITES:
            close = _matching_paren(sql, after)
            inner = _functions(sql[after + 1 : close])
            out.append(_REWRITES[lower](inner))
            i = close + 1
            continue
        out.append(name)
        i = after
    return "".join(out)


def _max(inner: str) -> str:
    return f"GREATEST({inner})" if _top_level_comma(inner) else f"MAX({inner})"


def _min(inner: str) -> str:
    return f"LEAST({inner})" if _top_level_comma(inner) else f"MIN({inner})"


def _json_extract(inner: str) -> str:
    match = _JSON_PATH.match(inner)
    if match is None:
        raise ValueError(f"json_extract path not supported on PostgreSQL: {inner!r}")
    return f"(({match['expr']})::jsonb ->> '{match['key']}')"


def _json_group_array(inner: str) -> str:
    return f"COALESCE(json_agg({inner}), '[]'::json)::text"


_REWRITES = {
    "max": _max,
    "min": _min,
    "json_extract": _json_extract,
    "json_group_array": _json_group_array,
}


def _placeholders(sql: str) -> str:
    out: list[str] = []
    if "?" not in sql and ":" not in sql and "%" not in sql:
        return sql
    i = 0
    while i < len(sql):
        ch = sql[i]
        if ch in "'\"":
            end = sql.index(ch, i + 1)
            out.append(sql[i : end + 1].replace("%", "%%"))
            i = end + 1
        elif ch == "?":
            out.append("%s")
            i += 1
        elif ch == "%":
            out.append("%%")
            i += 1
        elif ch == ":" and i + 1 < len(sql) and sql[i + 1] == ":":
            out.append("::")
            i += 2
        elif ch == ":" and (word := _WORD.match(sql, i + 1)) is not None:
            out.append(f"%({word.group(0)})s")
            i = word.end()
        else:
            out.append(ch)
            i += 1
    return "".join(out)


@lru_cache(maxsize=2048)
def to_postgres(sql: str, *, with_params: bool = True) -> str:
    """``sql`` (SQLite's spelling, shared text) as PostgreSQL and psycopg read it.

    Without parameters psycopg sends the text as it is, so placeholders are not rewritten and
    ``%`` is not doubled.
    """
    rewritten = _functions(sql)
    return _placeholders(rewritten) if with_params else rewritten
