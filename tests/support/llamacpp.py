"""Start llama.cpp's server (SmolLM2-135M) for the real-model lane.

The model and the server live in an environment of their own, made by
``scripts/real-model-env.sh`` (``make test`` runs it). The server is a child process serving
the OpenAI-compatible API on a free loopback port; it stops when :meth:`LlamaServer.stop` is
called or when this process dies (it exits when its stdin closes).
"""

from __future__ import annotations

import os
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path

import httpx

from support.waiting import wait_for

ROOT = Path(__file__).resolve().parents[2]
MODEL_ALIAS = "smollm2"


def env_dir() -> Path:
    return Path(os.environ.get("CRT_REAL_MODEL_ENV") or ROOT / ".cache" / "real-model")


def env_python() -> Path | None:
    """The real-model environment's Python, or None when it has not been made."""
    directory = env_dir()
    python = directory / "bin" / "python"
    installed = any(directory.glob(".installed-*"))
    return python if python.exists() and installed else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class LlamaServer:
    proc: subprocess.Popen[bytes]
    port: int
    log_path: Path
    alias: str = MODEL_ALIAS

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def openai_url(self) -> str:
        return self.url + "/v1"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.proc.stdin is not None and not self.proc.stdin.closed:
            self.proc.stdin.close()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)


def start_llama_server(
    log_dir: Path,
    *,
    ctx: int = 8192,
    parallel: int = 2,
    threads: int = 1,
    timeout: float = 60.0,
) -> LlamaServer:
    """llama.cpp's server, up and healthy; raises RuntimeError with its log when it is not.

    ``parallel`` slots share ``ctx`` (4,096 tokens each by default): one slot keeps the
    heartbeat's prompt cached while the other serves scoring and chat. One thread, because
    llama.cpp's threads wait on each other at every step: on 2 cores shared with other test
    runs (load 12) one thread generated 25-31 tokens/s and two 0.7-2.
    """
    python = env_python()
    if python is None:
        raise RuntimeError(
            f"no real-model environment in {env_dir()}: run scripts/real-model-env.sh"
        )
    port = _free_port()
    log_path = log_dir / f"llama-{port}.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [
                str(python),
                str(Path(__file__).with_name("llamacpp_main.py")),
                str(port),
                MODEL_ALIAS,
                str(ctx),
                str(parallel),
                str(threads),
            ],
            stdin=subprocess.PIPE,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    server = LlamaServer(proc, port, log_path)

    def healthy() -> bool:
        if proc.poll() is not None:
            raise RuntimeError(f"llama.cpp's server exited ({proc.returncode}):\n{server.log()}")
        try:
            return httpx.get(server.url + "/health", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        wait_for(healthy, timeout=timeout, interval=0.1)
    except AssertionError as exc:
        server.stop()
        raise RuntimeError(f"llama.cpp's server was not healthy:\n{server.log()}") from exc
    return server
