"""Shared fixtures: real SQLite files under tmp_path, a fake Ollama on loopback, settings, and
a guard that fails any test leaving a thread behind."""

from __future__ import annotations

import os
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from support.clock import FakeClock
from support.fake_ollama import FakeOllama
from support.pg_cluster import PgCluster, PgUnavailable, SharedCluster
from support.service import LOCAL

from crt_loops.api.app import create_app
from crt_loops.db.session import SessionDB
from crt_loops.settings import Settings

# Threads owned by the interpreter or by long-lived test infrastructure, not by a test.
_IGNORED_THREAD_PREFIXES = (
    "fake-ollama",
    "pydevd",
    "asyncio_",
    "ThreadPoolExecutor",
    "AnyIO worker thread",  # anyio keeps idle pool threads ~10 s by design
    "llm-idle",  # crt_loops.core.abandon keeps a finished call's thread IDLE_SECONDS too
    "ledger-idle",
)


@pytest.fixture(autouse=True)
def no_leaked_threads() -> Iterator[None]:
    before = set(threading.enumerate())
    yield

    def leaked() -> list[threading.Thread]:
        return [
            t
            for t in threading.enumerate()
            if t not in before and t.is_alive() and not t.name.startswith(_IGNORED_THREAD_PREFIXES)
        ]

    deadline = time.monotonic() + 5.0
    while leaked() and time.monotonic() < deadline:
        threading.Event().wait(0.02)
    assert not leaked(), f"test leaked threads: {[t.name for t in leaked()]}"


@pytest.fixture
def fake_ollama() -> Iterator[FakeOllama]:
    with FakeOllama() as fake:
        yield fake


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def make_settings(tmp_path: Path) -> Callable[..., Settings]:
    """Settings isolated under tmp_path; keyword arguments override fields."""

    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "data_dir": tmp_path / "data",
            "workspace": tmp_path,
            "ollama_host": "http://127.0.0.1:9",  # nothing listens: the LLM is "down"
            "ledger_port": 0,
            "llm_timeout_seconds": 10,
            # TestClient sends "Host: testserver"; the service answers only to the names it
            # is configured with, so the tests configure that one.
            "allowed_hosts": ("testserver",),
        }
        values.update(overrides)
        return Settings(_env_file=None, **values)  # type: ignore[call-arg]

    return make


# Test folders whose tests run on both backends (docs/storage.md, "A second backend"): every
# test there that takes the `db` fixture runs once on SQLite and once on PostgreSQL, unless it
# is marked `sqlite_only` (it inspects the file with SQLite's own SQL).
BACKEND_NEUTRAL = frozenset({"db", "loops", "mind", "heartbeat", "ledger"})
_TESTS = Path(__file__).parent


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "db_backend" not in metafunc.fixturenames:
        return
    backends: list[Any] = ["sqlite"]
    folder = Path(metafunc.definition.path).relative_to(_TESTS).parts[0]
    if folder in BACKEND_NEUTRAL and not metafunc.definition.get_closest_marker("sqlite_only"):
        backends.append(pytest.param("postgres", marks=pytest.mark.postgres))
    metafunc.parametrize("db_backend", backends)


# The run's PostgreSQL cluster is shared by the controller and its xdist workers: the
# controller makes the directory they coordinate through before the workers start (they inherit
# the environment) and stops the cluster after they have all finished.
_PG_SHARE = "CRT_TEST_PG_SHARE"


def pytest_configure(config: pytest.Config) -> None:
    if not hasattr(config, "workerinput"):
        os.environ[_PG_SHARE] = tempfile.mkdtemp(prefix="crt-pg-run-")


def pytest_unconfigure(config: pytest.Config) -> None:
    if not hasattr(config, "workerinput") and _PG_SHARE in os.environ:
        SharedCluster(Path(os.environ.pop(_PG_SHARE))).stop()


@pytest.fixture(scope="session")
def pg_cluster() -> PgCluster:
    """The run's throwaway PostgreSQL cluster, started on first use, stopped when the run ends
    whatever happens."""
    if os.environ.get("CRT_SKIP_POSTGRES") == "1":
        pytest.skip("CRT_SKIP_POSTGRES=1")
    try:
        return SharedCluster(Path(os.environ[_PG_SHARE])).get()
    except PgUnavailable as exc:
        # Like a missing Chromium: a failure that says what to do (make test installs it), or
        # a deliberate skip with CRT_SKIP_POSTGRES=1; `make test-fast` leaves these tests out.
        pytest.fail(f"{exc}; or set CRT_SKIP_POSTGRES=1 to skip the PostgreSQL tests")


@pytest.fixture
def db_url(pg_cluster: PgCluster) -> Iterator[str]:
    """A fresh, migrated PostgreSQL database for this test (dropped afterwards)."""
    with pg_cluster.fresh_database() as url:
        yield url


@pytest.fixture
def db_target(db_backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Path | str:
    """Where this test's session DB lives: a SQLite file, or a fresh PostgreSQL database."""
    if db_backend == "postgres":
        url: str = request.getfixturevalue("db_url")
        return url
    return tmp_path / "crt.db"


@pytest.fixture
def ledger_db_url(db_backend: str, request: pytest.FixtureRequest) -> Iterator[str | None]:
    """For a Ledger test: None (its SQLite file under the data dir), or a fresh, empty
    PostgreSQL database for CRT_LEDGER_DATABASE_URL."""
    if db_backend != "postgres":
        yield None
        return
    cluster: PgCluster = request.getfixturevalue("pg_cluster")
    with cluster.fresh_database(migrated=False) as url:
        yield url


@pytest.fixture
def db(db_target: Path | str, clock: FakeClock) -> Iterator[SessionDB]:
    database = SessionDB(db_target, clock=clock)
    yield database
    database.close()


@pytest.fixture
def client(
    make_settings: Callable[..., Settings], fake_ollama: FakeOllama, tmp_path: Path
) -> Iterator[TestClient]:
    """The whole app through its lifespan, on the fake Ollama, thinking loops off."""
    (tmp_path / "HEARTBEAT.md").write_text("## Checklist\n- Read the feed\n", encoding="utf-8")
    settings = make_settings(
        ollama_host=fake_ollama.url,
        ledger_post_cooldown_seconds=0,
        reflection_loop_enabled=False,
        personality_loop_enabled=False,
        journal_self_reply_loop_enabled=False,
    )
    with TestClient(create_app(settings), client=LOCAL) as c:
        yield c
