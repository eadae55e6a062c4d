"""The live dashboard: ``GET /`` serves ``dashboard/index.html``; its assets live under
``/dashboard/<file>``. Plain files, no build step: the page polls the JSON API with ``fetch``.

The page itself is open (it holds no data); every ``/api`` call it makes goes through the same
access control as any other client, with the token a person typed into the page. The headers
keep the page self-contained: scripts and styles only from this origin, no inline script, and no
referrer sent when a person follows a link to the Ledger.
"""

from __future__ import annotations

import re
from pathlib import Path

from fastapi import APIRouter, HTTPException
from fastapi.responses import FileResponse

router = APIRouter(include_in_schema=False)

DASHBOARD_DIR = Path(__file__).resolve().parent.parent.parent / "dashboard"
ASSET_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}\.(js|css|svg)$")
MEDIA_TYPES = {
    "js": "text/javascript; charset=utf-8",
    "css": "text/css; charset=utf-8",
    "svg": "image/svg+xml",
}
CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    )
)
HEADERS = {
    # no-cache: revalidate on every load, so an upgraded service never runs yesterday's script.
    "Cache-Control": "no-cache",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


@router.get("/", response_class=FileResponse)
def dashboard_index() -> FileResponse:
    index = DASHBOARD_DIR / "index.html"
    if not index.is_file():
        # An install without the dashboard/ folder (a wheel, not this checkout): say so plainly.
        raise HTTPException(
            status_code=404, detail=f"the dashboard is not installed ({index} is missing)"
        )
    return FileResponse(
        index,
        media_type="text/html; charset=utf-8",
        headers={**HEADERS, "Content-Security-Policy": CONTENT_SECURITY_POLICY},
    )


@router.get("/dashboard/{name}", response_class=FileResponse)
def dashboard_asset(name: str) -> FileResponse:
    # A fixed name pattern (no dots but the extension, no slashes): nothing outside the folder.
    match = ASSET_RE.fullmatch(name)
    path = DASHBOARD_DIR / name
    if match is None or not path.is_file():
        raise HTTPException(status_code=404, detail=f"no dashboard asset {name!r}")
    return FileResponse(path, media_type=MEDIA_TYPES[match.group(1)], headers=HEADERS)
