"""/docs and /redoc work offline: their pages name no host but this service's own."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient

from crt_loops.api.app import create_app

URL_RE = re.compile(r"""(?:https?:)?//[^\s"'<>)]+""")


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_reference_pages_name_no_external_url(page: str, make_settings: Callable[..., Any]) -> None:
    client = TestClient(create_app(make_settings()))
    response = client.get(page)
    assert response.status_code == 200
    html = response.text
    assert URL_RE.findall(html) == []
    # Every script and stylesheet the page loads is served here, and is the real thing.
    assets = re.findall(r"""(?:src|href)=["'](/[^"']+)["']""", html)
    assert assets, html
    for asset in assets:
        served = client.get(asset)
        assert served.status_code == 200, asset
        assert len(served.content) > 1000, asset
