"""The Ledger budget belongs to the heartbeat: a flood of feed requests (a cross-site <img>
pointed at /api/ledger/feed) cannot make the next heartbeat fail."""

from __future__ import annotations

import itertools

from fastapi.testclient import TestClient
from support import heartbeat_scripts
from support.fake_ollama import FakeOllama

FLOOD = 300
# What a page can vary in the URL to defeat a cache: sort, limit and an invented cursor.
VARIANTS = itertools.cycle(
    [
        {"sort": sort, "limit": limit, "fresh": fresh}
        for sort in ("hot", "new", "top")
        for limit in range(1, 101)
        for fresh in ("false", "true")
    ]
)


def test_a_feed_flood_leaves_the_heartbeat_its_budget(
    client: TestClient, fake_ollama: FakeOllama
) -> None:
    heartbeat_scripts.install(fake_ollama, heartbeat_scripts.silent)
    client.post("/api/threads/default/heartbeat/config", json={"enabled": True})
    codes: dict[int, int] = {}
    for _ in range(FLOOD):
        response = client.get("/api/ledger/feed", params=next(VARIANTS))
        codes[response.status_code] = codes.get(response.status_code, 0) + 1
        if response.status_code == 429:
            assert int(response.headers["Retry-After"]) >= 1
    ledger = client.app.state.services.ledger  # type: ignore[attr-defined]
    # The feed spent at most its share (a fifth of 100 requests a minute), then refused.
    assert ledger.feed_cache.fetches <= 20
    # Each fetched page may also be served once more from the cache (the same page, fresh).
    assert codes[200] <= 40 and codes[429] >= FLOOD - 40, codes
    run = client.post("/api/threads/default/heartbeat/run-now").json()
    assert (run["outcome"], run["reason"]) == ("silent", None), run
    print(
        f"\nfeed flood of {FLOOD}: {codes}; Ledger calls spent by the feed: "
        f"{ledger.feed_cache.fetches}; heartbeat afterwards: {run['outcome']}"
    )


def test_a_burst_for_one_page_is_served_from_the_cache(client: TestClient) -> None:
    first = client.get("/api/ledger/feed").json()
    ledger = client.app.state.services.ledger  # type: ignore[attr-defined]
    for _ in range(50):
        again = client.get("/api/ledger/feed")
        assert again.status_code == 200
        assert again.json()["posts"] == first["posts"]
    assert ledger.feed_cache.fetches == 1
    assert again.json()["age_seconds"] >= 0 and again.json()["stale"] is False
