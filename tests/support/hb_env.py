"""A heartbeat environment for tests: real SQLite under tmp_path, the real Ledger app (with an
injected clock) reached in process through Starlette's ASGI transport, or on a loopback port
with ``real_ledger=True`` for tests that stop or replace the server, the real Ollama client
against the fake Ollama, and a runner."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from crt_loops.core.server_thread import ServerThread
from crt_loops.db import heartbeats
from crt_loops.db.session import SessionDB
from crt_loops.heartbeat.deps import LedgerLimits, RunnerDeps, RunnerOptions
from crt_loops.heartbeat.executor import HeartbeatRunner
from crt_loops.ledger.client import LedgerClient
from crt_loops.ledger.server import create_ledger_app
from crt_loops.llm.client import OllamaLLM
from crt_loops.settings import Settings
from support.clock import FakeClock
from support.fake_ollama import FakeOllama

DEFAULT_MD = """# HEARTBEAT.md

## Checklist
- Look at new comments on your posts and answer them.
- Read the feed; upvote what is good.

## Rules
Post only when you have something specific and new to say.
"""


@dataclass
class HeartbeatEnv:
    tmp: Path
    clock: FakeClock
    db: SessionDB
    fake: FakeOllama
    llm: OllamaLLM
    #: The Ledger's server thread when ``real_ledger``; None when it is reached in process.
    ledger_server: ServerThread | None
    ledger: LedgerClient
    neighbour: LedgerClient
    runner: HeartbeatRunner
    api_key: str

    @property
    def md(self) -> Path:
        return self.tmp / "HEARTBEAT.md"

    def configure(self, thread_id: str = "default", **patch: Any) -> None:
        """Partial config update through the same path as the API's POST."""
        self.runner.update_config(thread_id, patch)

    def run(self, thread_id: str = "default", **kwargs: Any) -> heartbeats.RunRecord:
        kwargs.setdefault("trigger", "manual")
        return self.runner.run(thread_id, **kwargs)

    def ledger_posts(self) -> list[Any]:
        return list(self.ledger.list_posts(sort="new", limit=100).posts)

    def neighbour_post(self, title: str = "A neighbour's thought", content: str = "Hello.") -> str:
        return str(self.neighbour.create_post("general", title, content).id)


class InProcessLedger(TestClient):
    """The Ledger app reached in process. LedgerClient passes a per-request timeout, which
    means nothing without a network (and TestClient warns about it), so it is dropped."""

    def request(self, method: str, url: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        kwargs.pop("timeout", None)
        return super().request(method, url, **kwargs)


@contextmanager
def heartbeat_env(
    tmp: Path,
    fake: FakeOllama,
    *,
    post_cooldown: float = 0,
    known_limits: LedgerLimits | None = None,
    llm_timeout: float = 10.0,
    busy_timeout_ms: int = 5000,
    ledger_timeout: float = 5.0,
    real_ledger: bool = False,
    db_target: Path | str | None = None,
    **runner_kwargs: Any,
) -> Iterator[HeartbeatEnv]:
    clock = FakeClock()
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None,
        data_dir=tmp / "data",
        workspace=tmp,
        ledger_post_cooldown_seconds=post_cooldown,
        ledger_comment_cooldown_seconds=0,
        ledger_port=0,
    )
    db = SessionDB(db_target or tmp / "crt.db", clock=clock, busy_timeout_ms=busy_timeout_ms)
    (tmp / "HEARTBEAT.md").write_text(DEFAULT_MD, encoding="utf-8")
    app = create_ledger_app(settings, clock=clock)
    server: ServerThread | None = None
    transport: TestClient | None = None
    if real_ledger:
        server = ServerThread(app, name="ledger").start()
        base = server.url + "/api/v1"
    else:
        # The Host is a loopback address, as a real client's would be.
        transport = InProcessLedger(app, base_url="http://127.0.0.1", raise_server_exceptions=False)
        transport.__enter__()  # runs the Ledger's lifespan: its database opens
        base = "http://127.0.0.1/api/v1"
    import httpx

    try:
        setup = LedgerClient(base, None, http_client=transport)
        key = setup.register("crt", "the agent").api_key
        neighbour_key = setup.register("neighbour", "another agent").api_key
        setup.close()
    except BaseException:
        if transport is not None:
            transport.__exit__(None, None, None)
        if server is not None:
            server.stop()
        raise
    ledger = LedgerClient(
        base, key, timeout=httpx.Timeout(ledger_timeout, connect=1.0), http_client=transport
    )
    neighbour = LedgerClient(base, neighbour_key, http_client=transport)
    llm = OllamaLLM(fake.url, "llama3.2:latest", timeout_seconds=llm_timeout)
    runner = HeartbeatRunner(
        RunnerDeps(db=db, llm=llm, ledger=ledger, heartbeat_md=tmp / "HEARTBEAT.md", clock=clock),
        RunnerOptions(
            agent_name="crt",
            default_model="llama3.2:latest",
            default_timezone="UTC",
            window=20,
            llm_timeout=llm_timeout,
            limits=known_limits or LedgerLimits(post_cooldown, 0, 50),
            secrets=(key,),
            **runner_kwargs,
        ),
    )
    env = HeartbeatEnv(tmp, clock, db, fake, llm, server, ledger, neighbour, runner, key)
    try:
        yield env
    finally:
        ledger.close()
        neighbour.close()
        if server is not None:
            server.stop()
        if env.ledger_server is not None:
            env.ledger_server.stop()  # a test may have replaced it
        if transport is not None:
            transport.__exit__(None, None, None)
        db.close()
