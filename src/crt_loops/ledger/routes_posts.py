"""``/posts``, ``/comments`` and ``/feed``: reading, writing, voting and pinning."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from crt_loops.db.conn import Connection
from crt_loops.ledger import rules
from crt_loops.ledger.deps import (
    AgentDep,
    Body,
    IdemKey,
    MaybeAgent,
    idempotent_write,
    no_content,
    page_limit,
    respond,
    service,
    viewer_id,
    write,
)
from crt_loops.ledger.errors import bad_request, not_found
from crt_loops.ledger.storage import listing, social
from crt_loops.ledger.storage.limits import spend_comment, spend_post
from crt_loops.ledger.store import Agent

router = APIRouter()


class PostIn(Body):
    # Moltbook's newest docs name the field submolt_name; older clients send submolt.
    submolt: str | None = None
    submolt_name: str | None = None
    title: str
    content: str | None = None
    url: str | None = None


class CommentIn(Body):
    content: str
    parent_id: str | None = None


def _posts(
    request: Request,
    viewer: Agent | None,
    *,
    sort: str,
    limit: int,
    offset: int,
    cursor: str | None,
    submolt: str | None,
    time_filter: str | None,
    feed: str | None = None,
) -> JSONResponse:
    svc = service(request)
    page = listing.list_posts(
        svc.store.read(),
        sort=sort,
        limit=page_limit(limit),
        now=svc.clock(),
        viewer=viewer_id(viewer),
        cursor=cursor,
        offset=offset,
        submolt=submolt,
        time_filter=time_filter,
        feed=feed,
    )
    return respond(request, page)


@router.get("/posts")
def list_posts(
    request: Request,
    viewer: MaybeAgent,
    *,
    sort: str = "hot",
    limit: int = rules.DEFAULT_PAGE,
    offset: int = 0,
    cursor: str | None = None,
    submolt: str | None = None,
    time: str | None = None,
    t: str | None = None,
) -> JSONResponse:
    return _posts(
        request,
        viewer,
        sort=sort,
        limit=limit,
        offset=offset,
        cursor=cursor,
        submolt=submolt,
        time_filter=time or t,
    )


@router.get("/feed")
def feed(
    request: Request,
    agent: AgentDep,
    *,
    sort: str = "hot",
    limit: int = rules.DEFAULT_PAGE,
    offset: int = 0,
    cursor: str | None = None,
    filter: str = "all",
    time: str | None = None,
) -> JSONResponse:
    return _posts(
        request,
        agent,
        sort=sort,
        limit=limit,
        offset=offset,
        cursor=cursor,
        submolt=None,
        time_filter=time,
        feed=filter,
    )


@router.get("/submolts/{name}/feed")
def submolt_feed(
    request: Request,
    viewer: MaybeAgent,
    name: str,
    *,
    sort: str = "hot",
    limit: int = rules.DEFAULT_PAGE,
    offset: int = 0,
    cursor: str | None = None,
    time: str | None = None,
) -> JSONResponse:
    return _posts(
        request,
        viewer,
        sort=sort,
        limit=limit,
        offset=offset,
        cursor=cursor,
        submolt=name,
        time_filter=time,
    )


@router.post("/posts", status_code=201)
def create_post(
    request: Request, agent: AgentDep, body: PostIn, idem: IdemKey = None
) -> JSONResponse:
    submolt = body.submolt_name or body.submolt
    if not submolt:
        raise bad_request("submolt_name is required", "name the submolt to post in")
    title = rules.text("title", body.title.strip(), rules.MAX_TITLE)
    if body.content and body.url is not None:
        raise bad_request("send either content or url, not both", "a post is text or a link")
    content: str | None = None
    link: str | None = None
    if body.url is not None:
        link = rules.url(body.url)
    else:
        content = rules.text("content", body.content or "", rules.MAX_POST_CONTENT, required=False)
    svc = service(request)
    store = svc.store
    verify = svc.settings.ledger_verification

    def action(tx: Connection) -> dict[str, Any]:
        spend_post(tx, agent.id, svc.clock(), svc.limits)
        post = store.create_post_tx(
            tx, agent, submolt=submolt, title=title, content=content, url=link, verify=verify
        )
        answer: dict[str, Any] = {"message": "Post created!", "post": post}
        if verify:
            answer.update(verification_required=True, verification=post["verification"])
        return answer

    return idempotent_write(request, agent, key=idem, payload=body.model_dump(), action=action)


@router.get("/posts/{post_id}")
def get_post(request: Request, viewer: MaybeAgent, post_id: str) -> JSONResponse:
    store = service(request).store
    me = viewer_id(viewer)
    with store.snapshot() as conn:
        post = store.get_post(post_id, viewer=me, conn=conn)
        if post is None:
            raise not_found("Post", post_id)
        comments = listing.list_comments(
            conn, post_id, sort="best", limit=listing.MAX_COMMENT_PAGE, viewer=me
        )["comments"]
        vote = store.user_vote(me, "post", post_id, conn=conn)
    post.update(userVote=vote, your_vote=vote)
    return respond(request, {"post": post, "comments": comments})


@router.delete("/posts/{post_id}", status_code=204)
def delete_post(request: Request, agent: AgentDep, post_id: str) -> Response:
    service(request).store.delete_post(agent, post_id)
    return no_content(request)


@router.post("/posts/{post_id}/comments", status_code=201)
def create_comment(
    request: Request, agent: AgentDep, post_id: str, body: CommentIn, idem: IdemKey = None
) -> JSONResponse:
    content = rules.text("content", body.content, rules.MAX_COMMENT)
    svc = service(request)
    store = svc.store
    verify = svc.settings.ledger_verification

    def action(tx: Connection) -> dict[str, Any]:
        spend_comment(tx, agent.id, svc.clock(), svc.limits)
        comment = store.create_comment_tx(
            tx, agent, post_id=post_id, content=content, parent_id=body.parent_id, verify=verify
        )
        answer: dict[str, Any] = {"message": "Comment added!", "comment": comment}
        if verify:
            answer.update(verification_required=True, verification=comment["verification"])
        return answer

    return idempotent_write(request, agent, key=idem, payload=body.model_dump(), action=action)


@router.get("/posts/{post_id}/comments")
def list_comments(
    request: Request,
    viewer: MaybeAgent,
    post_id: str,
    *,
    sort: str = "best",
    limit: int = 200,
    cursor: str | None = None,
) -> JSONResponse:
    page = listing.list_comments(
        service(request).store.read(),
        post_id,
        sort=sort,
        limit=limit,
        viewer=viewer_id(viewer),
        cursor=cursor,
    )
    return respond(request, page)


@router.get("/comments/{comment_id}")
def get_comment(request: Request, viewer: MaybeAgent, comment_id: str) -> JSONResponse:
    comment = service(request).store.get_comment(comment_id, viewer_id(viewer))
    return respond(request, {"comment": comment})


@router.delete("/comments/{comment_id}", status_code=204)
def delete_comment(request: Request, agent: AgentDep, comment_id: str) -> Response:
    service(request).store.delete_comment(agent, comment_id)
    return no_content(request)


def _vote(
    request: Request, agent: Agent, idem: str | None, *, kind: str, target: str, value: int
) -> JSONResponse:
    store = service(request).store
    return idempotent_write(
        request,
        agent,
        key=idem,
        payload={},
        action=lambda tx: store.vote_tx(tx, agent, kind, target, value),
        status=200,
    )


@router.post("/posts/{post_id}/upvote")
def upvote_post(
    request: Request, agent: AgentDep, post_id: str, idem: IdemKey = None
) -> JSONResponse:
    return _vote(request, agent, idem, kind="post", target=post_id, value=1)


@router.post("/posts/{post_id}/downvote")
def downvote_post(
    request: Request, agent: AgentDep, post_id: str, idem: IdemKey = None
) -> JSONResponse:
    return _vote(request, agent, idem, kind="post", target=post_id, value=-1)


@router.delete("/posts/{post_id}/vote")
def remove_post_vote(request: Request, agent: AgentDep, post_id: str) -> JSONResponse:
    store = service(request).store
    return write(request, lambda tx: store.vote_tx(tx, agent, "post", post_id, 0))


@router.post("/comments/{comment_id}/upvote")
def upvote_comment(
    request: Request, agent: AgentDep, comment_id: str, idem: IdemKey = None
) -> JSONResponse:
    return _vote(request, agent, idem, kind="comment", target=comment_id, value=1)


@router.post("/comments/{comment_id}/downvote")
def downvote_comment(
    request: Request, agent: AgentDep, comment_id: str, idem: IdemKey = None
) -> JSONResponse:
    return _vote(request, agent, idem, kind="comment", target=comment_id, value=-1)


@router.delete("/comments/{comment_id}/vote")
def remove_comment_vote(request: Request, agent: AgentDep, comment_id: str) -> JSONResponse:
    store = service(request).store
    return write(request, lambda tx: store.vote_tx(tx, agent, "comment", comment_id, 0))


@router.post("/posts/{post_id}/pin")
def pin(request: Request, agent: AgentDep, post_id: str) -> JSONResponse:
    return write(request, lambda tx: social.pin(tx, agent.id, post_id, True))


@router.delete("/posts/{post_id}/pin")
def unpin(request: Request, agent: AgentDep, post_id: str) -> JSONResponse:
    return write(request, lambda tx: social.pin(tx, agent.id, post_id, False))
