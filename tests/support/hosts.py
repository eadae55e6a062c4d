"""Several service processes ("hosts") on one PostgreSQL database and one shared Ledger.

Each host is a ``uvicorn crt_api:app`` subprocess with its own ``CRT_DATA_DIR`` and workspace
(its own HEARTBEAT.md), sharing ``CRT_DATABASE_URL``; the Ledger is the project's, run alone
(``uvicorn crt_loops.ledger.server:app``) so that killing any host leaves it up, and every host
uses it through ``CRT_LEDGER_URL`` with one agent's key.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx

from support.service import ROOT, Service, free_port
from support.waiting import wait_for

HEARTBEAT_MD = "# HEARTBEAT.md\n\n## Checklist\n- Share one useful note about my owner's day\n"
#: The standalone Ledger's limits, which every host is told (README, "Scaling out").
LEDGER_LIMITS = {
    "CRT_LEDGER_POST_COOLDOWN_SECONDS": "0",
    "CRT_LEDGER_COMMENT_COOLDOWN_SECONDS": "0",
    "CRT_LEDGER_REQUESTS_PER_MINUTE": "100000",
}

#: The hosts' loops for the heartbeat tests: only the heartbeat loop, ticking every second, and
#: no wait for the owner to be quiet first.
HEARTBEAT_LOOP_ONLY = {
    "CRT_HEARTBEAT_LOOP_ENABLED": "true",
    "CRT_HEARTBEAT_LOOP_SECONDS": "1",
    "CRT_HEARTBEAT_OWNER_QUIET_SECONDS": "0",
    "CRT_REFLECTION_LOOP_ENABLED": "false",
    "CRT_PERSONALITY_LOOP_ENABLED": "false",
    "CRT_JOURNAL_SELF_REPLY_LOOP_ENABLED": "false",
}


class StandaloneLedger:
    """``uvicorn crt_loops.ledger.server:app`` on a free loopback port, its own data dir."""

    def __init__(self, tmp: Path, database_url: str | None = None) -> None:
        self.tmp = tmp
        self.database_url = database_url  # CRT_LEDGER_DATABASE_URL; None: its SQLite file
        self.port = free_port()
        self.log_path = tmp / "ledger.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.api_key = ""
        self.proxy: HoldingProxy | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/v1"

    def start(self) -> StandaloneLedger:
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("CRT_")},
            "CRT_DATA_DIR": str(self.tmp / "ledger-data"),
            **LEDGER_LIMITS,
            **({"CRT_LEDGER_DATABASE_URL": self.database_url} if self.database_url else {}),
        }
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "crt_loops.ledger.server:app", "--host",
             "127.0.0.1", "--port", str(self.port)],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        log.close()

        def up() -> bool:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"the Ledger exited early:\n{self.log()}")
            try:
                return httpx.get(self.url.removesuffix("/api/v1") + "/health", timeout=1).is_success
            except httpx.HTTPError:
                return False

        wait_for(up, timeout=30, interval=0.05)
        r = httpx.post(self.url + "/agents/register", json={"name": "crt", "description": "x"})
        r.raise_for_status()
        self.api_key = r.json()["agent"]["api_key"]
        return self

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
            self.proc = None


logger = logging.getLogger(__name__)


class HoldingProxy:
    """An HTTP proxy in front of the Ledger that, once armed, forwards the first ``POST
    .../posts`` (so the post lands) and then holds its answer until released: the host that
    sent it dies between the Ledger's write and its own record of it, mid-send."""

    FORWARDED = ("authorization", "content-type", "idempotency-key")

    def __init__(self, target: str) -> None:
        # Paths are forwarded whole (/health, /api/v1/...): the target is the Ledger's root.
        self.target = target.rstrip("/").removesuffix("/api/v1")
        self.held = threading.Event()  # a post was forwarded and its answer is being held
        self.release = threading.Event()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def _forward(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                headers = {k: v for k, v in self.headers.items() if k.lower() in proxy.FORWARDED}
                r = httpx.request(
                    self.command, proxy.target + self.path, content=body, headers=headers,
                    timeout=30,
                )  # fmt: skip
                post = self.command == "POST" and self.path.endswith("/posts")
                if post and r.is_success and not proxy.held.is_set():
                    proxy.held.set()
                    proxy.release.wait(60)
                try:
                    self.send_response(r.status_code)
                    self.send_header("Content-Type", r.headers.get("content-type", "text/plain"))
                    self.send_header("Content-Length", str(len(r.content)))
                    self.end_headers()
                    self.wfile.write(r.content)
                except OSError as exc:  # the host died while its answer was held
                    logger.info(
                        "ledger proxy: %s %s not answered: %s", self.command, self.path, exc
                    )

            do_GET = do_POST = do_DELETE = do_PATCH = do_PUT = _forward

            def log_message(self, format: str, *args: object) -> None:
                logger.debug("ledger proxy: " + format, *args)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(
            target=self.server.serve_forever, name="ledger-proxy", daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}/api/v1"

    def start(self) -> HoldingProxy:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(10)


def host_env(database_url: str, ledger: StandaloneLedger, **extra: str) -> dict[str, str]:
    return {
        "CRT_DATABASE_URL": database_url,
        "CRT_LEDGER_URL": ledger.url,
        "CRT_LEDGER_API_KEY": ledger.api_key,
        **LEDGER_LIMITS,
        **extra,
    }


@contextmanager
def hosts(
    tmp: Path,
    database_url: str,
    n: int,
    env: dict[str, str],
    *,
    proxied_host: int | None = None,
    ledger_database_url: str | None = None,
    heartbeat_md: Callable[[int], str] = lambda i: HEARTBEAT_MD,
) -> Iterator[tuple[StandaloneLedger, list[Service]]]:
    """The shared Ledger and ``n`` started hosts; everything is stopped on the way out.
    ``proxied_host``: that host reaches the Ledger through a :class:`HoldingProxy`
    (``ledger.proxy``). ``ledger_database_url``: the Ledger's own PostgreSQL database.
    ``heartbeat_md``: host ``i``'s HEARTBEAT.md (each host reads its own workspace's)."""
    with ExitStack() as stack:
        ledger = StandaloneLedger(tmp, ledger_database_url)
        stack.callback(ledger.stop)
        ledger.start()
        if proxied_host is not None:
            ledger.proxy = HoldingProxy(ledger.url).start()
            stack.callback(ledger.proxy.stop)
        started: list[Service] = []
        for i in range(n):
            home = tmp / f"host{i}"
            home.mkdir()
            (home / "HEARTBEAT.md").write_text(heartbeat_md(i), encoding="utf-8")
            own = {"CRT_LEDGER_URL": ledger.proxy.url} if ledger.proxy and i == proxied_host else {}
            svc = Service(home, env={**host_env(database_url, ledger, **env), **own})
            stack.callback(svc.stop)
            started.append(svc)
        # Started side by side, as a deployment's hosts come up: a start is mostly imports,
        # and one after another they cost the tests seconds for nothing.
        with ThreadPoolExecutor(n, thread_name_prefix="host-start") as pool:
            list(pool.map(lambda svc: svc.start(timeout=60), started))
        yield ledger, started
