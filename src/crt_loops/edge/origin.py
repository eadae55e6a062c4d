"""Browser-origin defence (CSRF): no other web page can make the owner's browser drive us.

Every page the owner opens runs in a browser on the same machine as the service, so loopback is
no protection by itself: a page on another origin can send a "simple" request (a
``<form enctype="text/plain">``, or ``fetch(..., {mode: "no-cors"})`` with a ``text/plain``
body) that needs no permission from us. Browsers label such requests, and this guard refuses
them with a 403 and a sentence:

- ``Origin`` other than this service's own (scheme aside, the same host and port as the Host
  header), including ``null`` (sandboxed frames, ``data:`` pages): refused, whatever the
  method. Browsers send ``Origin`` on every cross-origin POST, forms included.
- ``Sec-Fetch-Site`` other than ``same-origin`` or ``none`` (typed in the address bar): for a
  state-changing method (anything but GET, HEAD, OPTIONS), refused; for a read, refused unless
  it is a top-level navigation (a link to the dashboard still opens it; an ``<img>``, script or
  frame pointing at the API does not).
- A state-changing request whose ``Content-Type`` is not JSON: 415. JSON bodies come as
  ``application/json`` (or ``+json``), with no Content-Type, or as
  ``application/x-www-form-urlencoded``, because that is what ``curl -d '{...}'`` sends; a URL
  encoded form cannot spell a JSON object (``{`` and ``"`` are percent-encoded), but a
  ``text/plain`` form or a ``multipart/form-data`` one can, so those are refused even from a
  client that sends no Origin (an old browser). A request with an ``Authorization`` header is
  exempt: no form or no-cors fetch can set one (it needs a CORS preflight, which nothing here
  grants), and the Ledger's Moltbook uploads (avatars, banners) are multipart with a key.

Requests that carry none of these headers (curl, scripts, ``crt``, the Ledger client) and the
dashboard's own same-origin requests pass untouched.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from starlette.types import ASGIApp, Receive, Scope, Send

from crt_loops.edge.hosts import split_host
from crt_loops.edge.refusal import Refuse, detail_refusal

__all__ = ["SAFE_METHODS", "BrowserOriginGuard", "is_json_content_type", "same_origin"]

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_DEFAULT_PORTS = {"http": 80, "https": 443}
_TRUSTED_SITES = frozenset({"same-origin", "none"})


def same_origin(origin: str, host_header: str) -> bool:
    """True when ``origin`` (``http://host:port``) names the host and port of ``host_header``.

    A Host without a port means the browser used its scheme's default port, so the Origin must
    not name another one; the scheme itself is not compared, since a TLS-terminating proxy
    forwards ``https`` pages to us over ``http``.
    """
    try:
        parts = urlsplit(origin)
        origin_port = parts.port
    except ValueError:
        return False
    if parts.scheme not in _DEFAULT_PORTS or not parts.hostname:
        return False
    origin_host, _ = split_host(parts.hostname)
    host, port = split_host(host_header)
    if origin_host != host:
        return False
    effective = origin_port or _DEFAULT_PORTS[parts.scheme]
    return effective == (port or _DEFAULT_PORTS[parts.scheme])


def is_json_content_type(value: bytes | None) -> bool:
    """True for the raw Content-Type headers a JSON body may arrive with (module docstring)."""
    if value is None:
        return True
    media = value.decode("latin-1").split(";", 1)[0].strip().lower()
    return media in ("", "application/json", "application/x-www-form-urlencoded") or (
        media.startswith("application/") and media.endswith("+json")
    )


class BrowserOriginGuard:
    """Refuse requests a browser marks as coming from another site (module docstring)."""

    def __init__(self, app: ASGIApp, *, refuse: Refuse = detail_refusal) -> None:
        self.app = app
        self.refuse = refuse

    def check(self, method: str, headers: dict[bytes, bytes]) -> tuple[int, str, str] | None:
        """None when the request may pass, else (status, sentence, hint)."""
        unsafe = method not in SAFE_METHODS
        origin = headers.get(b"origin")
        if origin is not None:
            text = origin.decode("latin-1").strip()
            host = headers.get(b"host", b"").decode("latin-1")
            if text == "null" or not host or not same_origin(text, host):
                return (
                    403,
                    f"cross-origin request refused: a page on {text[:100]!r} asked this "
                    "service to act, and only its own pages (the dashboard) may",
                    "clients that send no Origin header (curl, scripts, crt) are served",
                )
        site = headers.get(b"sec-fetch-site")
        if site is not None and site.decode("latin-1").strip().lower() not in _TRUSTED_SITES:
            mode = headers.get(b"sec-fetch-mode", b"").lower()
            dest = headers.get(b"sec-fetch-dest", b"").lower()
            if unsafe or (mode, dest) != (b"navigate", b"document"):
                return (
                    403,
                    f"cross-site request refused (Sec-Fetch-Site: {site.decode('latin-1')[:40]})"
                    ": a page of another site tried to use this service through the browser",
                    "open the dashboard itself, or call the API without a browser",
                )
        content_type = headers.get(b"content-type")
        if unsafe and b"authorization" not in headers and not is_json_content_type(content_type):
            shown = content_type.decode("latin-1")[:80] if content_type else ""
            return (
                415,
                f"unsupported Content-Type {shown!r}: request bodies are JSON",
                "send application/json (or no Content-Type); text/plain and form uploads, "
                "which any web page can send, are refused",
            )
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        problem = self.check(scope["method"].upper(), dict(scope["headers"]))
        if problem is None:
            await self.app(scope, receive, send)
            return
        status, message, hint = problem
        await self.refuse(status, message, hint=hint)(scope, receive, send)
