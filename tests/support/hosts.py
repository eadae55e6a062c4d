"""Several service processes ("hosts") on one PostgreSQL database and one shared Ledger.

Each host is a ``uvicorn crt_api:app`` subprocess with its own ``CRT_DATA_DIR`` and workspace
(its own HEARTBEAT.md), sharing ``CRT_DATABASE_URL``; the Ledger is the project's, run alone
(``uvicorn crt_loops.ledger.server:app``) so that killing any host leaves it up, and every host
uses it through ``CRT_LEDGER_URL`` with one agent's key.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
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


class StandaloneLedger:
    """``uvicorn crt_loops.ledger.server:app`` on a free loopback port, its own data dir."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.port = free_port()
        self.log_path = tmp / "ledger.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.api_key = ""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/v1"

    def start(self) -> StandaloneLedger:
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("CRT_")},
            "CRT_DATA_DIR": str(self.tmp / "ledger-data"),
            **LEDGER_LIMITS,
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
    tmp: Path, database_url: str, n: int, env: dict[str, str]
) -> Iterator[tuple[StandaloneLedger, list[Service]]]:
    """The shared Ledger and ``n`` started hosts; everything is stopped on the way out."""
    with ExitStack() as stack:
        ledger = StandaloneLedger(tmp)
        stack.callback(ledger.stop)
        ledger.start()
        started: list[Service] = []
        for i in range(n):
            home = tmp / f"host{i}"
            home.mkdir()
            (home / "HEARTBEAT.md").write_text(HEARTBEAT_MD, encoding="utf-8")
            svc = Service(home, env=host_env(database_url, ledger, **env))
            stack.callback(svc.stop)
            svc.start(timeout=60)
            started.append(svc)
        yield ledger, started
