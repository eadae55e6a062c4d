"""The Ledger with its database locked by another process: a 503 envelope with Retry-After,
not the plain 500 "internal error" it answered before."""

from __future__ import annotations

import sqlite3

import httpx
import pytest
from support.live_ledger import LiveLedger

pytestmark = pytest.mark.slow


def test_a_locked_ledger_db_is_a_503_with_retry_after(
    live_ledger: LiveLedger, http: httpx.Client
) -> None:
    key = live_ledger.register()
    locker = sqlite3.connect(live_ledger.settings.ledger_db_path, isolation_level=None)
    locker.execute("BEGIN IMMEDIATE")
    try:
        r = http.post(
            live_ledger.url + "/api/v1/posts",
            json={"submolt": "general", "title": "t", "content": "c"},
            headers={"Authorization": f"Bearer {key}"},
        )
    finally:
        locker.execute("ROLLBACK")
        locker.close()
    assert r.status_code == 503, r.text
    assert r.headers["retry-after"] == "5"
    body = r.json()
    assert body["success"] is False and "database is busy" in body["error"]
    assert live_ledger.count("posts") == 0
    r = http.post(
        live_ledger.url + "/api/v1/posts",
        json={"submolt": "general", "title": "t", "content": "c"},
        headers={"Authorization": f"Bearer {key}"},
    )
    assert r.status_code == 201, r.text
