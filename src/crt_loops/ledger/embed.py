"""Start (or join) the Ledger the service talks to, for ``crt_api``'s lifespan.

With ``CRT_LEDGER_URL`` unset, :func:`start_embedded_ledger` serves ``create_ledger_app`` with
real uvicorn on ``127.0.0.1:CRT_LEDGER_PORT`` in a thread. If that port is taken and what answers
there proves it is this service's Ledger (another uvicorn worker got there first), it uses that
one instead of failing; the proof is an HMAC of a fresh nonce with the secret in
``CRT_DATA_DIR/ledger.identity`` (crt_loops.ledger.identity), and anything that cannot give it is
refused with a startup error before the agent's key is sent anywhere. Then it makes sure
``CRT_AGENT_NAME`` is registered: the API key is kept in the session DB under
``ledger_api_key:<base_url>`` and reused after a restart; a stored key that the Ledger no longer
knows (its DB was reset) is replaced by registering again.

With ``CRT_LEDGER_URL`` set it serves nothing, registers nothing, and uses ``CRT_LEDGER_API_KEY``.
"""

from __future__ import annotations

import enum
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import httpx

from crt_loops.core.http_client import new_client
from crt_loops.core.server_thread import ServerStartError, ServerThread
from crt_loops.ledger.client import (
    LedgerAuthError,
    LedgerClient,
    LedgerError,
    LedgerHTTPError,
    LedgerRejected,
    LedgerUnavailable,
    PostPage,
)
from crt_loops.ledger.feed_cache import FeedCache, feed_budget
from crt_loops.ledger.identity import LedgerIdentityError, load_or_create_secret, refusal
from crt_loops.ledger.server import create_ledger_app
from crt_loops.settings import Settings

logger = logging.getLogger(__name__)

HOST = "127.0.0.1"
PROBE_TIMEOUT = httpx.Timeout(2.0, connect=1.0)
# How long a process that lost the registration race waits for the winner to store the key.
REGISTRATION_WAIT_SECONDS = 5.0


EMBEDDED_KEY = "ledger_api_key:embedded"


class LedgerEmbedError(RuntimeError):
    """Raised when the Ledger cannot be started or joined: its port is held by something that
    is not a Ledger, the agent name is registered but this session DB has no key for it, or the
    EmbeddedLedger was already stopped."""


class KeyValueStore(Protocol):
    """The part of SessionDB this module uses."""

    def kv_get(self, key: str) -> str | None: ...

    def kv_set(self, key: str, value: str) -> None: ...


class EmbedState(enum.StrEnum):
    RUNNING = "running"
    STOPPED = "stopped"


class EmbeddedLedger:
    """The Ledger this process talks to, and the uvicorn thread serving it when that is us."""

    def __init__(
        self,
        *,
        base_url: str,
        api_key: str | None,
        agent_name: str,
        embedded: bool,
        server: ServerThread | None = None,
        data_dir: Path | None = None,
        requests_per_minute: int = 100,
    ) -> None:
        self.base_url = base_url
        self.data_dir = data_dir
        #: The dashboard's feed, within its share of the agent's per-minute Ledger budget.
        self.feed_cache: FeedCache[PostPage] = FeedCache(feed_budget(requests_per_minute))
        self.api_key = api_key
        self.agent_name = agent_name
        self.embedded = embedded
        self._server = server
        self._lock = threading.Lock()
        self._client: LedgerClient | None = None
        # The status probes' own HTTP client, kept: a new httpx.Client builds a TLS context,
        # ~50 ms of CPU for every GET /api/ledger/status the dashboard sends (bench/scale.py).
        self._probe_http: httpx.Client | None = None
        self.state = EmbedState.RUNNING

    @property
    def serving(self) -> bool:
        """True when this process runs the Ledger's server thread."""
        return self._server is not None

    def client(self) -> LedgerClient:
        """The shared, thread-safe client for this Ledger, authenticated as our agent."""
        with self._lock:
            if self.state is not EmbedState.RUNNING:
                raise LedgerEmbedError("the Ledger connection was stopped; start a new one")
            if self._client is None:
                self._client = LedgerClient(self.base_url, self.api_key)
            return self._client

    def abort(self) -> int:
        """Release every call in flight on the shared client (the first step of a stop)."""
        with self._lock:
            client = self._client
        return client.abort() if client is not None else 0

    def ledger_info(self) -> dict[str, Any]:
        """For the status route: where the Ledger is, who we are on it, and whether it answers."""
        reachable, error = True, None
        http = self._probe_client()
        with LedgerClient(self.base_url, None, http, timeout=PROBE_TIMEOUT, max_retries=0) as probe:
            try:
                probe.health()
            except LedgerUnavailable as exc:
                reachable, error = False, str(exc)
            except LedgerError as exc:
                # It answered, just not our /health (another Ledger implementation): reachable.
                error = str(exc)
        identity_verified: bool | None = None
        if self.embedded and self.data_dir is not None and reachable:
            # Whatever holds the port now must still be our Ledger, or it is not "reachable".
            refused = refusal(self.base_url.removesuffix("/api/v1"), self.data_dir, http=http)
            identity_verified = refused is None
            if refused is not None:
                reachable, error = False, f"not this service's Ledger: {refused}"
        return {
            "url": self.base_url,
            "embedded": self.embedded,
            "serving": self.serving,
            "agent_name": self.agent_name,
            "registered": self.api_key is not None,
            "reachable": reachable,
            "identity_verified": identity_verified,
            "error": error,
            "state": self.state.value,
        }

    def _probe_client(self) -> httpx.Client | None:
        """The kept probe client while running; None once stopped (each probe then makes
        and closes its own)."""
        with self._lock:
            if self.state is not EmbedState.RUNNING:
                return None
            if self._probe_http is None:
                self._probe_http = new_client()
            return self._probe_http

    def stop(self) -> None:
        """Close the clients and stop the server thread if we run it. Idempotent."""
        with self._lock:
            if self.state is EmbedState.STOPPED:
                return
            self.state = EmbedState.STOPPED
            client, self._client = self._client, None
            probe, self._probe_http = self._probe_http, None
            server, self._server = self._server, None
        if client is not None:
            client.close()
        if probe is not None:
            probe.close()
        if server is not None:
            server.stop()
            logger.info("ledger: embedded server stopped")

    def __enter__(self) -> EmbeddedLedger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_embedded_ledger(
    settings: Settings,
    session_db: KeyValueStore,
    *,
    clock: Callable[[], float] = time.time,
    registration_wait: float = REGISTRATION_WAIT_SECONDS,
) -> EmbeddedLedger:
    """Serve or join the Ledger and make sure our agent has a key (see the module docstring).

    ``registration_wait``: when our name is taken and we hold no key, how long to wait for a
    concurrently starting worker to store the key it just got, before raising LedgerEmbedError.
    """
    if settings.ledger_url is not None:
        key = settings.ledger_api_key.get_secret_value() if settings.ledger_api_key else None
        if key is None:
            logger.warning(
                "ledger: CRT_LEDGER_URL is set but CRT_LEDGER_API_KEY is not; "
                "authenticated Ledger calls will fail with 401"
            )
        logger.info("ledger: using the Ledger at %s", settings.ledger_url)
        return EmbeddedLedger(
            base_url=settings.ledger_url,
            api_key=key,
            agent_name=settings.agent_name,
            embedded=False,
            requests_per_minute=settings.ledger_requests_per_minute,
        )

    try:
        # Before anything listens: a worker that loses the race for the port checks the proof
        # of whoever won against this file, so it must exist by then.
        load_or_create_secret(settings.data_dir)
    except LedgerIdentityError as exc:
        raise LedgerEmbedError(str(exc)) from exc
    server = ServerThread(
        create_ledger_app(settings, clock=clock),
        host=HOST,
        port=settings.ledger_port,
        name="ledger",
    )
    serving: ServerThread | None = server
    try:
        root_url = server.start().url
    except ServerStartError as exc:
        root_url = f"http://{HOST}:{settings.ledger_port}"
        if settings.ledger_port == 0:
            raise LedgerEmbedError(
                f"cannot serve the Ledger on {HOST}:{settings.ledger_port} ({exc})"
            ) from exc
        # The key goes only to a Ledger that proves it holds our data dir's secret: whatever
        # answered /health here first used to be joined and handed the key.
        refused = refusal(root_url, settings.data_dir, wait=REGISTRATION_WAIT_SECONDS)
        if refused is not None:
            raise LedgerEmbedError(
                f"cannot serve the Ledger on {HOST}:{settings.ledger_port} ({exc}), and what "
                f"answers there is not this service's Ledger: {refused}. The agent's key was "
                "not sent to it. Stop that program, or set CRT_LEDGER_PORT to a free port"
            ) from exc
        logger.info(
            "ledger: %s already serves a Ledger (another worker?); using it (identity proven)",
            root_url,
        )
        serving = None
    base_url = f"{root_url}/api/v1"
    try:
        api_key = _ensure_registered(
            settings.agent_name,
            base_url,
            session_db,
            registration_wait=registration_wait,
            # The embedded Ledger is its DB file in our data dir, whatever port serves it today:
            # keyed by URL, a changed CRT_LEDGER_PORT lost the key and the name stayed taken.
            kv_key=EMBEDDED_KEY,
        )
    except BaseException:
        if serving is not None:
            serving.stop()
        raise
    return EmbeddedLedger(
        base_url=base_url,
        api_key=api_key,
        agent_name=settings.agent_name,
        embedded=True,
        server=serving,
        data_dir=settings.data_dir,
        requests_per_minute=settings.ledger_requests_per_minute,
    )


def _ensure_registered(
    name: str,
    base_url: str,
    session_db: KeyValueStore,
    *,
    registration_wait: float,
    kv_key: str | None = None,
) -> str:
    """Our agent's API key on the Ledger at ``base_url``: the stored one if it still works."""
    kv_key = kv_key or f"ledger_api_key:{base_url}"
    stored = session_db.kv_get(kv_key)
    if stored is not None:
        with LedgerClient(base_url, stored, timeout=PROBE_TIMEOUT) as client:
            try:
                agent = client.me()
            except LedgerAuthError:
                logger.warning("ledger: the stored API key is unknown (Ledger DB reset?)")
            else:
                if agent.name.lower() == name.lower():
                    logger.info("ledger: agent %s uses its stored API key", agent.name)
                    return stored
                logger.info("ledger: stored key is for %s, not %s", agent.name, name)
    with LedgerClient(base_url, None, timeout=PROBE_TIMEOUT) as client:
        try:
            registration = client.register(name, "CRT Loops agent")
        except LedgerRejected as exc:
            if exc.status_code != 409:
                raise
            # Another worker may have registered the same name a moment ago: wait for its key.
            key = _wait_for_new_key(session_db, kv_key, stored, registration_wait)
            if key is not None:
                return key
            raise LedgerEmbedError(
                f"the agent name {name!r} is already registered on the Ledger at {base_url}, "
                "and the session DB holds no key for it; set CRT_AGENT_NAME to another name "
                "or remove that agent from the Ledger's database"
            ) from exc
        except LedgerHTTPError as exc:
            raise LedgerEmbedError(f"cannot register {name!r} on the Ledger: {exc}") from exc
    session_db.kv_set(kv_key, registration.api_key)
    logger.info("ledger: registered agent %s; API key stored in the session DB", name)
    return registration.api_key


def _wait_for_new_key(
    session_db: KeyValueStore, kv_key: str, previous: str | None, timeout: float
) -> str | None:
    pause = threading.Event()
    deadline = time.monotonic() + timeout
    while True:
        key = session_db.kv_get(kv_key)
        if key is not None and key != previous:
            return key
        if time.monotonic() >= deadline:
            return None
        pause.wait(0.05)
