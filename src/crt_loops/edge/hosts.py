"""The Host allow-list: the defence against DNS rebinding.

A page on ``http://evil.example:8000`` can have its name re-pointed at 127.0.0.1 after it
loaded; the browser then treats our service as that page's own origin and lets it read and
write everything. What gives the trick away is the ``Host`` header: it still says
``evil.example``. So every request (``/health`` included) must name this service by a host it
is known by: ``localhost``, ``127.0.0.1``, ``[::1]``, the host it was started on (``HOST``),
the IP address the connection arrived at, or one of ``CRT_ALLOWED_HOSTS`` (a reverse proxy's
or a LAN name). Anything else is a 421 with a sentence saying how to allow the name. The port is
not compared: a rebinding attack changes the name, and the socket already fixes the port.

A request without a Host header (HTTP/1.0 tools) passes: browsers always send one.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable

from starlette.types import ASGIApp, Receive, Scope, Send

from crt_loops.edge.refusal import Refuse, detail_refusal

__all__ = ["LOOPBACK_NAMES", "HostAllowList", "normalise_host", "split_host"]

LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
_WILDCARD_BINDS = frozenset({"", "0.0.0.0", "::"})  # noqa: S104 - names, not binds


def split_host(value: str) -> tuple[str, int | None]:
    """``("example.org", 8000)`` from a Host header ``Example.org.:8000``; IPv6 in brackets."""
    value = value.strip()
    port: int | None = None
    if value.startswith("["):
        end = value.find("]")
        host, rest = (value[1:end], value[end + 1 :]) if end > 0 else (value, "")
        if rest.startswith(":") and rest[1:].isdigit():
            port = int(rest[1:])
    elif value.count(":") == 1:
        host, _, tail = value.partition(":")
        port = int(tail) if tail.isdigit() else None
    else:
        host = value  # a bare IPv6 address, or no port
    return normalise_host(host), port


def normalise_host(host: str) -> str:
    """Lower case, no brackets or trailing dot, IP addresses in canonical form."""
    host = host.strip().strip("[]").rstrip(".").lower()
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host
    mapped = getattr(address, "ipv4_mapped", None)
    return str(mapped or address)


class HostAllowList:
    """Refuse any request whose Host header is not a name this service answers to.

    ``names`` gives the extra names: the bound host and ``CRT_ALLOWED_HOSTS``. It may be a
    function, asked on every request, for an app whose settings are read only at startup.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        names: Iterable[str] | Callable[[], Iterable[str]] = (),
        refuse: Refuse = detail_refusal,
    ) -> None:
        self.app = app
        self._names = names
        self._cache: tuple[tuple[str, ...], frozenset[str]] | None = None
        self.refuse = refuse

    def allowed(self) -> frozenset[str]:
        """Every name accepted, normalised (wildcard bind addresses are not names)."""
        extra = tuple(self._names() if callable(self._names) else self._names)
        if self._cache is None or self._cache[0] != extra:
            names = {split_host(name)[0] for name in extra if name.strip()}
            self._cache = (extra, frozenset((names - _WILDCARD_BINDS) | LOOPBACK_NAMES))
        return self._cache[1]

    def allows(self, host: str, local_address: str | None) -> bool:
        if host in self.allowed():
            return True
        # The IP address the client connected to names this machine whatever it is (a LAN
        # address with --host 0.0.0.0); a rebinding attack always arrives under a DNS name.
        return local_address is not None and host == normalise_host(local_address)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        raw = dict(scope["headers"]).get(b"host")
        if raw is None:
            await self.app(scope, receive, send)
            return
        header = raw.decode("latin-1")
        host, _ = split_host(header)
        server = scope.get("server")
        local = str(server[0]) if server else None
        if self.allows(host, _ip_only(local)):
            await self.app(scope, receive, send)
            return
        response = self.refuse(
            421,
            f"this service does not answer to the host name {header[:100]!r} (a DNS rebinding "
            "attack would look like this); it answers to localhost, 127.0.0.1, [::1] and the "
            "names in CRT_ALLOWED_HOSTS",
            hint="to reach it by that name (a reverse proxy, a LAN name), add the name to "
            "CRT_ALLOWED_HOSTS, and set CRT_API_TOKEN for anything beyond loopback",
        )
        await response(scope, receive, send)


def _ip_only(address: str | None) -> str | None:
    # TestClient reports its made-up host name ("testserver") as the server address; only a
    # real socket's IP address counts as "the address the client connected to".
    if address is None:
        return None
    try:
        ipaddress.ip_address(address)
    except ValueError:
        return None
    return address
