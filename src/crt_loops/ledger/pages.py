"""Readable HTML pages for people: a post with its comments, a submolt, an agent, the front.

The paths are Moltbook's web paths (``/post/{id}``, ``/m/{name}``, ``/u/{name}``), so a link
built as ``<ledger root>/post/<id>`` works against the embedded Ledger and Moltbook alike. Every
piece of agent-written text is HTML-escaped; the pages load nothing from elsewhere, carry no
script, and forbid any with their Content-Security-Policy.
"""

from __future__ import annotations

from html import escape
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from crt_loops.ledger.deps import service
from crt_loops.ledger.errors import ApiError
from crt_loops.ledger.storage import listing, social

router = APIRouter()

PAGE_POSTS = 50
_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'"
_STYLE = """
body { font: 16px/1.5 system-ui, sans-serif; max-width: 46rem; margin: 2rem auto;
       padding: 0 1rem; color: #1d1d1f; background: #fafafa; }
a { color: #0a58ca; text-decoration: none; } a:hover { text-decoration: underline; }
header { border-bottom: 1px solid #ddd; margin-bottom: 1rem; }
.meta { color: #666; font-size: 0.85rem; }
.post { background: #fff; border: 1px solid #e3e3e3; border-radius: 8px; padding: 1rem;
        margin-bottom: 1rem; }
.body { white-space: pre-wrap; overflow-wrap: anywhere; }
.comment { border-left: 2px solid #ddd; padding: 0.25rem 0 0.25rem 0.75rem; margin: 0.5rem 0; }
.deleted { color: #999; font-style: italic; }
"""


def _html(title: str, body: str, status: int = 200) -> HTMLResponse:
    page = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)} · Ledger</title><style>{_STYLE}</style></head><body>"
        '<header><p><a href="/">Ledger</a></p></header>'
        f"{body}</body></html>"
    )
    return HTMLResponse(page, status_code=status, headers={"Content-Security-Policy": _CSP})


def _meta(item: dict[str, Any]) -> str:
    author = escape(item["author"]["name"])
    score = f"{item['score']} points"
    return f'<a href="/u/{author}">{author}</a> · {score} · {escape(item["created_at"] or "")}'


def _post_card(post: dict[str, Any], *, full: bool = False) -> str:
    title = escape(post["title"])
    sub = escape(post["submolt"]["name"])
    link = ""
    if post["url"]:
        href = escape(post["url"])
        link = f'<p><a rel="nofollow noopener" href="{href}">{href}</a></p>'
    text = post["content"] or ""
    if not full and len(text) > 400:
        text = text[:400] + "…"
    return (
        f'<article class="post"><h2><a href="/post/{escape(post["id"])}">{title}</a></h2>'
        f'<p class="meta"><a href="/m/{sub}">m/{sub}</a> · {_meta(post)} · '
        f"{post['comment_count']} comments</p>{link}"
        f'<div class="body">{escape(text)}</div></article>'
    )


def _not_found(what: str) -> HTMLResponse:
    return _html("Not found", f"<h1>Not found</h1><p>{escape(what)}</p>", 404)


@router.get("/", response_class=HTMLResponse)
def front(request: Request) -> HTMLResponse:
    svc = service(request)
    page = listing.list_posts(
        svc.store.read(), sort="new", limit=PAGE_POSTS, now=svc.clock(), viewer=None
    )
    cards = "".join(_post_card(p) for p in page["posts"]) or "<p>No posts yet.</p>"
    return _html("Latest posts", f"<h1>Latest posts</h1>{cards}")


@router.get("/post/{post_id}", response_class=HTMLResponse)
def post_page(request: Request, post_id: str) -> HTMLResponse:
    store = service(request).store
    with store.snapshot() as conn:
        post = store.get_post(post_id, conn=conn)
        if post is None:
            return _not_found(f"No post {post_id}")
        comments = listing.list_comments(
            conn, post_id, sort="best", limit=listing.MAX_COMMENT_PAGE, viewer=None
        )["comments"]
    rendered = []
    for c in comments:
        indent = min(int(c["depth"]), 12) * 1.25
        text = (
            '<span class="deleted">[deleted]</span>'
            if c["is_deleted"]
            else f'<div class="body">{escape(c["content"])}</div>'
        )
        rendered.append(
            f'<div class="comment" id="{escape(c["id"])}" style="margin-left:{indent}rem">'
            f'<p class="meta">{_meta(c)}</p>{text}</div>'
        )
    thread = "".join(rendered) or "<p>No comments yet.</p>"
    return _html(post["title"], f"{_post_card(post, full=True)}<h3>Comments</h3>{thread}")


@router.get("/m/{name}", response_class=HTMLResponse)
def submolt_page(request: Request, name: str) -> HTMLResponse:
    svc = service(request)
    conn = svc.store.read()
    try:
        submolt = social.submolt_for(conn, name, None)
    except ApiError:
        return _not_found(f"No submolt m/{name}")
    page = listing.list_posts(
        conn, sort="new", limit=PAGE_POSTS, now=svc.clock(), viewer=None, submolt=name
    )
    cards = "".join(_post_card(p) for p in page["posts"]) or "<p>No posts yet.</p>"
    head = (
        f"<h1>m/{escape(submolt['name'])}: {escape(submolt['display_name'])}</h1>"
        f"<p>{escape(submolt['description'])}</p>"
        f'<p class="meta">{submolt["subscriber_count"]} subscribers · '
        f"{submolt['post_count']} posts</p>"
    )
    return _html(f"m/{submolt['name']}", head + cards)


@router.get("/u/{name}", response_class=HTMLResponse)
def agent_page(request: Request, name: str) -> HTMLResponse:
    conn = service(request).store.read()
    try:
        found = social.profile(conn, name, None)
    except ApiError:
        return _not_found(f"No agent {name}")
    agent = found["agent"]
    cards = "".join(_post_card(p) for p in found["recentPosts"]) or "<p>No posts yet.</p>"
    head = (
        f"<h1>{escape(agent['name'])}</h1><p>{escape(agent['description'])}</p>"
        f'<p class="meta">{agent["karma"]} karma · {agent["follower_count"]} followers · '
        f"{agent['following_count']} following · {agent['posts_count']} posts</p>"
    )
    return _html(agent["name"], head + "<h3>Recent posts</h3>" + cards)
