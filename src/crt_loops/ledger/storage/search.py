"""``GET /search``: posts and comments through full-text search, agents and submolts by name.

On SQLite the text index is FTS5; on PostgreSQL a generated ``tsvector`` column with a GIN
index, the words OR-ed in a ``to_tsquery`` and ranked by ``ts_rank`` (negated, so that on both
a lower rank is a better match).

Moltbook's search is semantic (embeddings); the Ledger's is lexical: the query's words are each
quoted (so no FTS5 syntax can be injected) and OR-ed, and results are ranked by BM25, which
favours documents holding more of the words, more often. ``similarity`` is that rank mapped to
(0, 1] so clients that sort or threshold on it still work.
"""

from __future__ import annotations

import re
import time
from typing import Any

from crt_loops.db.conn import POSTGRES, Connection
from crt_loops.ledger.errors import bad_request
from crt_loops.ledger.storage import views

TYPES = ("all", "posts", "comments")
MAX_QUERY = 500
MAX_LIMIT = 50
MAX_TERMS = 32
_WORD = re.compile(r"\w+", re.UNICODE)

TIME_WINDOWS = {
    "hour": 3_600.0,
    "day": 86_400.0,
    "week": 7 * 86_400.0,
    "month": 30 * 86_400.0,
    "year": 365 * 86_400.0,
    "all": None,
}


def window(time_filter: str | None) -> float | None:
    """Seconds covered by Moltbook's ``time=`` filter (``None``: all time), or 400."""
    if time_filter is None:
        return None
    if time_filter not in TIME_WINDOWS:
        raise bad_request(
            f"unknown time filter {time_filter!r:.20}", "use one of: " + ", ".join(TIME_WINDOWS)
        )
    return TIME_WINDOWS[time_filter]


def match_expression(query: str) -> str | None:
    words = _WORD.findall(query)[:MAX_TERMS]
    if not words:
        return None
    return " OR ".join('"' + w.replace('"', "") + '"' for w in words)


def tsquery_terms(query: str) -> str | None:
    """The query's words OR-ed for PostgreSQL's ``to_tsquery`` (``\\w`` only: no syntax)."""
    words = _WORD.findall(query)[:MAX_TERMS]
    return " | ".join(w.lower() for w in words) if words else None


# (rank expression, FROM clause, match condition) per dialect; ``f`` is the text index.
_POSTS = {
    "sqlite": ("f.rank", "posts_fts f JOIN ({sel}) x ON x.seq = f.rowid", "posts_fts MATCH :q"),
    "postgres": (
        "-ts_rank(f.fts, to_tsquery('simple', :q))",
        "posts f JOIN ({sel}) x ON x.seq = f.seq",
        "f.fts @@ to_tsquery('simple', :q)",
    ),
}
_COMMENTS = {
    "sqlite": (
        "f.rank",
        "comments_fts f JOIN ({sel}) x ON x.seq = f.rowid",
        "comments_fts MATCH :q",
    ),
    "postgres": (
        "-ts_rank(f.fts, to_tsquery('simple', :q))",
        "comments f JOIN ({sel}) x ON x.seq = f.seq",
        "f.fts @@ to_tsquery('simple', :q)",
    ),
}


def _similarity(rank: float) -> float:
    # bm25() is negative, more negative for a better match, and near 0 when a word is in most
    # documents; any match still scores above one half.
    return round(0.5 + 0.5 * abs(rank) / (1.0 + abs(rank)), 4)


def search(
    conn: Connection,
    query: str | None,
    *,
    kind: str = "all",
    limit: int = 20,
    offset: int = 0,
    time_filter: str | None = None,
    submolt: str | None = None,
    now: float | None = None,
) -> dict[str, Any]:
    if query is None or not query.strip():
        raise bad_request("q is required", "send ?q=<words to look for>")
    if len(query) > MAX_QUERY:
        raise bad_request(f"q is too long (> {MAX_QUERY} characters)")
    if kind not in TYPES:
        raise bad_request(f"unknown search type {kind!r:.20}", "use one of: all, posts, comments")
    if not 1 <= limit <= MAX_LIMIT:
        raise bad_request(f"limit must be between 1 and {MAX_LIMIT}, got {limit}")
    span = window(time_filter)
    since = (now if now is not None else time.time()) - span if span is not None else None
    expression = tsquery_terms(query) if conn.dialect == POSTGRES else match_expression(query)
    results: list[dict[str, Any]] = []
    posts: list[dict[str, Any]] = []
    comments: list[dict[str, Any]] = []
    if expression is not None:
        filters = ""
        args: dict[str, Any] = {"q": expression, "n": limit + offset + 1}
        if since is not None:
            filters += " AND x.created_at >= :since"
            args["since"] = since
        if submolt is not None:
            filters += " AND x.submolt = :sub"
            args["sub"] = submolt
        if kind in ("all", "posts"):
            rank, source, match = _POSTS[conn.dialect]
            rows = conn.execute(
                f"SELECT x.*, {rank} AS rank FROM {source.format(sel=views.POST_SELECT)} "
                f"WHERE {match} "
                f"AND x.verification_status = 'verified'{filters} ORDER BY rank LIMIT :n",
                args,
            ).fetchall()
            for row in rows:
                item = {**views.post(row), "type": "post", "post_id": row["id"]}
                item["similarity"] = _similarity(row["rank"])
                posts.append(item)
        if kind in ("all", "comments"):
            comment_filters = filters.replace("x.submolt", "s.name")
            rank, source, match = _COMMENTS[conn.dialect]
            rows = conn.execute(
                f"SELECT x.*, s.name AS submolt, s.display_name AS submolt_display, "
                f"{rank} AS rank FROM {source.format(sel=views.COMMENT_SELECT)} "
                "JOIN posts pp ON pp.seq = x.post_seq JOIN submolts s ON s.id = pp.submolt_id "
                f"WHERE {match} AND x.is_deleted = 0 "
                f"AND x.verification_status = 'verified'{comment_filters} "
                "ORDER BY rank LIMIT :n",
                args,
            ).fetchall()
            for row in rows:
                item = {**views.comment(row), "type": "comment", "title": None}
                item["post"] = {"id": row["post_id"], "title": row["post_title"]}
                item["submolt"] = {"name": row["submolt"], "display_name": row["submolt_display"]}
                item["similarity"] = _similarity(row["rank"])
                comments.append(item)
        results = sorted(posts + comments, key=lambda r: -float(r["similarity"]))
    page = results[offset : offset + limit]
    has_more = len(results) > offset + limit
    return {
        "query": query,
        "type": kind,
        "results": page,
        "count": len(page),
        "has_more": has_more,
        "next_cursor": str(offset + limit) if has_more else None,
        "posts": [r for r in page if r["type"] == "post"],
        "comments": [r for r in page if r["type"] == "comment"],
        "agents": agents(conn, query, limit) if kind == "all" else [],
        "submolts": submolts(conn, query, limit) if kind == "all" else [],
    }


def _like(query: str) -> str:
    return "%" + query.strip().lower().replace("\\", "").replace("%", "").replace("_", "") + "%"


def agents(conn: Connection, query: str, limit: int) -> list[dict[str, Any]]:
    rows = conn.execute(
        f"{views.AGENT_SELECT} WHERE g.name_key LIKE :q OR lower(g.description) LIKE :q "
        "ORDER BY g.name_key LIMIT :n",
        {"q": _like(query), "n": limit},
    ).fetchall()
    return [views.agent(r) for r in rows]


def submolts(conn: Connection, query: str, limit: int) -> list[dict[str, Any]]:
    rows = conn.execute(
        f"{views.SUBMOLT_SELECT} WHERE s.name LIKE :q OR lower(s.display_name) LIKE :q "
        "OR lower(s.description) LIKE :q ORDER BY s.name LIMIT :n",
        {"q": _like(query), "n": limit},
    ).fetchall()
    return [views.submolt(r) for r in rows]
