"""The Ledger as the service sees it: its feed (proxied through LedgerClient) and its status.

Both endpoints are plain ``def``: the Ledger call blocks, so it runs in the threadpool, never on
the event loop. The feed is served from a short cache and may spend only a share of the agent's
per-minute Ledger budget (crt_loops.ledger.feed_cache); past it, 429 with ``Retry-After``.
Ledger failures map to: 429 (rate limited, with ``Retry-After``), 503 (the Ledger is
unreachable), 502 (it answered with an error, including a rejected API key).
"""

from __future__ import annotations

import math
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request

from crt_loops.api.routes import responses as out
from crt_loops.api.routes.deps import get_services
from crt_loops.core.enums import ActionState
from crt_loops.ledger.client import (
    LedgerAuthError,
    LedgerError,
    LedgerHTTPError,
    LedgerRateLimited,
    LedgerRejected,
    LedgerUnavailable,
    page_url,
)
from crt_loops.ledger.embed import EmbeddedLedger, LedgerEmbedError
from crt_loops.ledger.feed_cache import FeedBudgetExhausted

router = APIRouter(prefix="/api/ledger", tags=["ledger"])


def _ledger(request: Request) -> EmbeddedLedger:
    services = get_services(request)
    ledger = services.ledger
    if ledger is None:
        failed = services.ledger_error
        detail = (
            f"the Ledger did not start: {failed}"
            if failed
            else "the Ledger is not started yet (service starting?)"
        )
        raise HTTPException(status_code=503, detail=detail)
    return ledger


@router.get(
    "/feed", summary="The Ledger's feed, as our agent sees it", response_model=out.LedgerFeed
)
def ledger_feed(
    request: Request,
    sort: Annotated[str, Query(pattern="^(hot|new|top)$")] = "hot",
    limit: Annotated[int, Query(ge=1, le=100)] = 25,
    cursor: str | None = None,
    fresh: Annotated[
        bool, Query(description="skip the few-second cache (the budget still applies)")
    ] = False,
) -> dict[str, Any]:
    ledger = _ledger(request)
    try:
        # From a short cache, within its share of the agent's budget: anything that can make
        # the browser load this URL (a cross-site <img>) must not starve the next heartbeat.
        cached = ledger.feed_cache.get(
            (sort, limit, cursor),
            lambda: ledger.client().feed(sort=sort, limit=limit, cursor=cursor),
            fresh=fresh,
        )
    except FeedBudgetExhausted as exc:
        raise HTTPException(
            status_code=429,
            detail=str(exc),
            headers={"Retry-After": str(max(math.ceil(exc.retry_after), 1))},
        ) from exc
    except LedgerRateLimited as exc:
        wait = exc.retry_after_seconds
        headers = {"Retry-After": str(max(math.ceil(wait), 1))} if wait is not None else None
        raise HTTPException(
            status_code=429, detail=f"the Ledger rate-limited us: {exc.error}", headers=headers
        ) from exc
    except (LedgerUnavailable, LedgerEmbedError) as exc:
        raise HTTPException(status_code=503, detail=f"the Ledger is unavailable: {exc}") from exc
    except LedgerAuthError as exc:
        raise HTTPException(
            status_code=502,
            detail="the Ledger rejected our API key (check CRT_LEDGER_API_KEY)",
        ) from exc
    except LedgerRejected as exc:
        if exc.status_code not in (400, 422):
            raise HTTPException(
                status_code=502, detail=f"the Ledger answered HTTP {exc.status_code}: {exc.error}"
            ) from exc
        # sort and limit are checked above, so what the Ledger refused is the opaque cursor: the
        # client's mistake, not a bad gateway (a fuzzed cursor got a 502, tests/test_fuzz_api.py).
        raise HTTPException(
            status_code=422, detail=f"cursor: the Ledger refused the request: {exc.error}"
        ) from exc
    except LedgerHTTPError as exc:
        raise HTTPException(
            status_code=502, detail=f"the Ledger answered HTTP {exc.status_code}: {exc.error}"
        ) from exc
    except LedgerError as exc:
        raise HTTPException(status_code=502, detail=f"bad answer from the Ledger: {exc}") from exc
    page = cached.value
    client = ledger.client()
    return {
        "posts": [
            {**post.model_dump(), "link": post.url, "url": client.page_url(post.id)}
            for post in page.posts
        ],
        "sort": sort,
        "has_more": page.has_more,
        "next_cursor": page.next_cursor,
        "age_seconds": round(cached.age, 1),
        "stale": cached.stale,
    }


@router.get(
    "/status",
    summary="Where the Ledger is, who we are on it, and whether it answers",
    response_model=out.LedgerStatus,
)
def ledger_status(request: Request) -> dict[str, Any]:
    return _ledger(request).ledger_info()


def with_page_urls(request: Request, record: dict[str, Any]) -> dict[str, Any]:
    """A run record whose sent actions carry ``url``: the Ledger page of what they touched."""
    ledger = get_services(request).ledger
    if ledger is None:
        return record
    actions = []
    for action in record.get("actions", []):
        url = None
        if action.get("state") == ActionState.SENT:
            if action.get("type") == "post" and action.get("ledger_id"):
                url = page_url(ledger.base_url, action["ledger_id"])
            elif action.get("post_id"):
                comment = action.get("ledger_id") if action.get("type") == "comment" else None
                url = page_url(ledger.base_url, action["post_id"], comment)
        actions.append({**action, "url": url})
    return {**record, "actions": actions}
