"""Install the edge guards on an app, in their order (see :mod:`crt_loops.edge`).

Starlette runs the middleware added last first, so an app calls :func:`add_body_guards`, then
adds whatever must see only well-formed requests from the right place (the API's token check),
then :func:`add_browser_guards`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from starlette.applications import Starlette

from crt_loops.edge.body import BodySizeLimit
from crt_loops.edge.hosts import HostAllowList
from crt_loops.edge.json_text import InvalidTextGuard
from crt_loops.edge.origin import BrowserOriginGuard
from crt_loops.edge.refusal import Refuse, detail_refusal

__all__ = ["add_body_guards", "add_browser_guards"]


def add_body_guards(
    app: Starlette, *, limit: int, refuse: Refuse = detail_refusal, hint: str = ""
) -> None:
    """413 over ``limit`` bytes, then 422 for JSON text that cannot be stored."""
    app.add_middleware(InvalidTextGuard, refuse=refuse)
    app.add_middleware(BodySizeLimit, limit=limit, refuse=refuse, hint=hint)


def add_browser_guards(
    app: Starlette,
    *,
    host_names: Iterable[str] | Callable[[], Iterable[str]],
    refuse: Refuse = detail_refusal,
) -> None:
    """The Host allow-list (outermost), then the Origin / Sec-Fetch / Content-Type checks.

    ``host_names``: the names accepted beside the loopback ones (the bound host and
    ``CRT_ALLOWED_HOSTS``), or a function giving them.
    """
    app.add_middleware(BrowserOriginGuard, refuse=refuse)
    app.add_middleware(HostAllowList, names=host_names, refuse=refuse)
