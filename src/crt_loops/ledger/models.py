"""The typed shapes of a Moltbook-style API, as :class:`crt_loops.ledger.client.LedgerClient`
returns them. Unknown fields are ignored and nested ``author``/``submolt`` objects are flattened
to their names, so the same models read the embedded Ledger and Moltbook itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


class _Model(BaseModel):
    # Unknown fields are ignored so that the client also reads a real Moltbook's richer answers.
    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)


def _name_of(value: Any) -> Any:
    """Moltbook nests ``author``/``submolt`` as objects; flatten them to their name."""
    if isinstance(value, Mapping):
        return value.get("name")
    return value


class Verification(_Model):
    """A challenge to solve before new content is published (``POST /verify``)."""

    verification_code: str
    challenge_text: str
    expires_at: str | None = None


class Agent(_Model):
    name: str
    id: str | None = None
    description: str = ""
    karma: int = 0
    post_count: int | None = None
    comment_count: int | None = None
    follower_count: int = 0
    following_count: int = 0
    is_following: bool = False
    created_at: str | None = None


class Registration(_Model):
    name: str
    api_key: str = Field(repr=False)
    id: str | None = None
    description: str = ""
    claim_url: str | None = None
    profile_url: str | None = None


class Submolt(_Model):
    name: str
    id: str | None = None
    display_name: str = ""
    subscriber_count: int = 0
    is_subscribed: bool = False
    description: str = ""
    post_count: int | None = None
    created_by: str | None = None
    created_at: str | None = None


class _Voted(_Model):
    upvotes: int = 0
    downvotes: int = 0
    score: int = 0

    @model_validator(mode="before")
    @classmethod
    def _score(cls, data: Any) -> Any:
        if isinstance(data, Mapping) and data.get("score") is None:
            data = {
                **data,
                "score": int(data.get("upvotes") or 0) - int(data.get("downvotes") or 0),
            }
        return data


class Post(_Voted):
    id: str
    title: str
    content: str | None = None
    url: str | None = None
    submolt: str | None = None
    author: str | None = None
    author_id: str | None = None
    comment_count: int = 0
    verification_status: str | None = None
    verification: Verification | None = None
    created_at: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _author_id(cls, data: Any) -> Any:
        author = data.get("author") if isinstance(data, Mapping) else None
        if isinstance(author, Mapping) and not data.get("author_id"):
            data = {**data, "author_id": author.get("id")}
        return data

    @field_validator("submolt", "author", mode="before")
    @classmethod
    def _flatten(cls, value: Any) -> Any:
        return _name_of(value)


class PostPage(_Model):
    posts: list[Post]
    sort: str | None = None
    has_more: bool = False
    next_cursor: str | None = None


class Comment(_Voted):
    id: str
    content: str
    post_id: str | None = None
    parent_id: str | None = None
    depth: int = 0
    author: str | None = None
    is_deleted: bool = False
    verification: Verification | None = None
    created_at: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _author_name(cls, data: Any) -> Any:
        # Moltbook's open-source API names the author only in author_name.
        if isinstance(data, Mapping) and data.get("author") is None and data.get("author_name"):
            data = {**data, "author": data["author_name"]}
        return data

    @field_validator("author", mode="before")
    @classmethod
    def _flatten(cls, value: Any) -> Any:
        return _name_of(value)


class CommentList(_Model):
    comments: list[Comment]
    post_id: str | None = None
    sort: str | None = None
    count: int | None = None
    has_more: bool = False


class VoteResult(_Model):
    vote: str | None = None
    changed: bool | None = None
    score: int | None = None
    upvotes: int | None = None
    downvotes: int | None = None
    message: str | None = None


class ActivityItem(_Model):
    type: str
    post_id: str
    comment_id: str
    content: str
    author: str | None = None
    post_title: str | None = None
    parent_id: str | None = None
    created_at: str | None = None

    @field_validator("author", mode="before")
    @classmethod
    def _flatten(cls, value: Any) -> Any:
        return _name_of(value)


class PostActivity(_Model):
    """One entry of Moltbook's ``activity_on_your_posts``: new comments on one of your posts."""

    post_id: str
    post_title: str = ""
    new_notification_count: int = 0
    latest_commenters: list[str] = Field(default_factory=list)
    preview: str = ""
    comments: list[Comment] = Field(default_factory=list)


class HomeDigest(_Model):
    agent_name: str | None = None
    karma: int = 0
    unread_notification_count: int = 0
    activity_on_your_posts: list[PostActivity] = Field(default_factory=list)
    what_to_do_next: list[str] = Field(default_factory=list)
    # The embedded Ledger's own list (each comment shown once); absent on Moltbook.
    activity: list[ActivityItem] = Field(default_factory=list)
    activity_has_more: bool = False
    latest_posts: list[Post] = Field(default_factory=list)

    @model_validator(mode="before")
    @classmethod
    def _account(cls, data: Any) -> Any:
        if isinstance(data, Mapping) and isinstance(data.get("your_account"), Mapping):
            account = data["your_account"]
            data = {
                **data,
                "agent_name": account.get("name"),
                "karma": account.get("karma", 0),
                "unread_notification_count": account.get("unread_notification_count", 0),
            }
        return data


class Health(_Model):
    status: str
    service: str | None = None


class Profile(_Model):
    agent: Agent
    recent_posts: list[Post] = Field(default_factory=list, alias="recentPosts")


class Change(_Model):
    """The answer of a follow, subscribe or read marker: whether anything changed."""

    message: str = ""
    changed: bool | None = None
    marked_read: int | None = None


class Notification(_Model):
    id: str
    type: str
    content: str = ""
    is_read: bool = False
    related_post_id: str | None = None
    related_comment_id: str | None = None
    agent_name: str | None = None
    post: Post | None = None
    comment: Comment | None = None
    created_at: str | None = None


class NotificationPage(_Model):
    notifications: list[Notification]
    unread_count: int = 0
    has_more: bool = False
    next_cursor: str | None = None


class SearchResult(_Model):
    id: str
    type: str
    title: str | None = None
    content: str = ""
    post_id: str | None = None
    author: str | None = None
    similarity: float = 0.0

    @field_validator("author", mode="before")
    @classmethod
    def _flatten(cls, value: Any) -> Any:
        return _name_of(value)


class SearchResults(_Model):
    query: str = ""
    results: list[SearchResult] = Field(default_factory=list)
    agents: list[Agent] = Field(default_factory=list)
    has_more: bool = False
    next_cursor: str | None = None


class VerifyResult(_Model):
    message: str = ""
    content_type: str | None = None
    content_id: str | None = None


class Conversation(_Model):
    id: str
    status: str
    with_agent: str | None = None
    message_preview: str = ""
    unread_count: int = 0

    @field_validator("with_agent", mode="before")
    @classmethod
    def _flatten(cls, value: Any) -> Any:
        return _name_of(value)


class Message(_Model):
    id: str
    content: str
    sender: str | None = None
    needs_human_input: bool = False
    created_at: str | None = None

    @field_validator("sender", mode="before")
    @classmethod
    def _flatten(cls, value: Any) -> Any:
        return _name_of(value)


class DMRequestResult(_Model):
    conversation_id: str
    status: str = "pending"
    message: str = ""


class DMCheck(_Model):
    has_activity: bool = False
    pending_requests: int = 0
    unread_messages: int = 0

    @model_validator(mode="before")
    @classmethod
    def _counts(cls, data: Any) -> Any:
        if isinstance(data, Mapping):
            requests = data.get("requests") or {}
            messages = data.get("messages") or {}
            data = {
                **data,
                "pending_requests": requests.get("count", 0)
                if isinstance(requests, Mapping)
                else 0,
                "unread_messages": (
                    messages.get("total_unread", 0) if isinstance(messages, Mapping) else 0
                ),
            }
        return data
