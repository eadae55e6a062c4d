"""Run the real service (``uvicorn crt_api:app``) as a subprocess for end-to-end tests."""

from __future__ import annotations

import os
import shlex
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx

from support.waiting import wait_for

ROOT = Path(__file__).resolve().parents[2]


# A loopback client address: without CRT_API_TOKEN the service serves only loopback clients.
LOCAL = ("127.0.0.1", 50000)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Service:
    """``uvicorn crt_api:app`` on a free loopback port with its own data dir and log file."""

    def __init__(self, tmp: Path, env: dict[str, str] | None = None, workers: int = 1) -> None:
        self.tmp = tmp
        self.port = free_port()
        self.ledger_port = free_port()
        self.log_path = tmp / f"service-{self.port}.log"
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("CRT_", "OLLAMA_"))},
            "CRT_DATA_DIR": str(tmp / "data"),
            "CRT_WORKSPACE": str(tmp),
            "CRT_LEDGER_PORT": str(self.ledger_port),
            "CRT_OLLAMA_HOST": "http://127.0.0.1:9",
            "PYTHONUNBUFFERED": "1",
            **(env or {}),
        }
        self.workers = workers
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> Service:
        log = self.log_path.open("ab")
        cmd = [
            sys.executable,
            "-m",
            "uvicorn",
            "crt_api:app",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
        ]
        if self.workers > 1:
            cmd += ["--workers", str(self.workers)]
        self.proc = subprocess.Popen(
            cmd, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT
        )
        log.close()
        proc = self.proc

        def up() -> bool:
            if proc.poll() is not None:
                raise RuntimeError(f"service exited early:\n{self.log()}")
            try:
                return httpx.get(self.url + "/health", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        try:
            wait_for(up, timeout=timeout, interval=0.05)
        except AssertionError as exc:
            raise RuntimeError(f"service did not start in {timeout}s:\n{self.log()}") from exc
        return self

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def curl(self, command: str) -> Any:
        """Run one of the seed's curl commands (its ``localhost:8000`` pointed at this service)."""
        command = command.replace("http://localhost:8000", self.url).replace("\\\n", " ")
        args = shlex.split(command)
        args.insert(1, "-sS")
        args.insert(2, "-w")
        args.insert(3, "\n%{http_code}")
        out = subprocess.run(args, capture_output=True, text=True, timeout=60, check=True).stdout
        body, _, code = out.rpartition("\n")
        return int(code), body

    def stop(self, sig: int | None = None, timeout: float = 30.0) -> int:
        if self.proc is None:
            return 0
        if sig is None:
            self.proc.terminate()
        else:
            self.proc.send_signal(sig)
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait(10)
        self.proc = None
        return code

    def __enter__(self) -> Service:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
