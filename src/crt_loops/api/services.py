"""The composition root: every long-lived part of the running service in one typed object.

``Services.start(settings)`` builds and starts the parts in order: the session DB, the LLM, the
Ledger (embedded on its own loopback port unless ``CRT_LEDGER_URL`` points elsewhere), the
four loops, heartbeat recovery, a first retention pass, then each loop its ``CRT_*_ENABLED``
says to start. If any step fails, what was already started is stopped before the error
propagates. ``stop()`` runs the same steps backwards, each bounded, and is idempotent.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field

from crt_loops.api.snapshots import Snapshots
from crt_loops.db.session import SessionDB
from crt_loops.heartbeat.executor import HeartbeatRunner
from crt_loops.heartbeat.instructions import InstructionsError, ensure_instructions
from crt_loops.heartbeat.loop import HeartbeatLoop
from crt_loops.ledger.embed import EmbeddedLedger, start_embedded_ledger
from crt_loops.llm.client import LLM, build_llm
from crt_loops.llm.interruptible import InterruptibleLLM
from crt_loops.loops.build import build_loops
from crt_loops.loops.runner import BackgroundLoop
from crt_loops.settings import Settings

logger = logging.getLogger("crt_api")

#: The whole stop, every loop in parallel: Ctrl-C must end the process within 3 s, and calls
#: still in flight (a model, the Ledger) are abandoned rather than waited for.
SHUTDOWN_SECONDS = 2.0


@dataclass
class Services:
    """The running service's parts. Routes reach them through ``api.routes.deps``."""

    settings: Settings
    db: SessionDB
    llm: LLM
    ledger: EmbeddedLedger | None = None
    #: Why the Ledger did not start, when it did not (heartbeats record ``ledger_error``).
    ledger_error: str | None = None
    #: The four loops by name, in docs/seed.md's order.
    loops: dict[str, BackgroundLoop] = field(default_factory=dict)
    started_at: float = field(default_factory=time.time)
    stopped: bool = False
    #: Answers every dashboard tab shares (GET /api/dashboard/poll's thread list).
    snapshots: Snapshots = field(default_factory=Snapshots)
    #: The LLM's first liveness probe, run beside startup (see _start_parts).
    llm_probe: threading.Thread | None = None

    @property
    def heartbeat_loop(self) -> HeartbeatLoop | None:
        loop = self.loops.get("heartbeat")
        return loop if isinstance(loop, HeartbeatLoop) else None

    @classmethod
    def start(cls, settings: Settings) -> Services:
        """Build and start everything (blocking: run it off the event loop)."""
        try:
            ensure_instructions(settings.heartbeat_md_path)
        except InstructionsError as exc:  # runs then record instructions_error, with this reason
            logger.error("HEARTBEAT.md could not be created from the template: %s", exc)
        db = SessionDB(settings.session_db_target)
        llm = build_llm(
            enabled=settings.llm_enabled,
            host=settings.llm_url,
            model=settings.ollama_model,
            timeout_seconds=settings.llm_timeout_seconds,
            backend=settings.llm_backend,
            api_key=(settings.llm_api_key.get_secret_value() if settings.llm_api_key else None),
        )
        services = cls(settings=settings, db=db, llm=InterruptibleLLM(llm))
        try:
            services._start_parts()
        except BaseException:
            logger.error("startup failed; stopping what had started")
            services.stop()
            raise
        return services

    def _start_parts(self) -> None:
        try:
            self.ledger = start_embedded_ledger(self.settings, self.db)
        except Exception as exc:  # the service still runs; heartbeats record ledger_error
            logger.error("Ledger unavailable: %s", exc)
            self.ledger_error = f"{type(exc).__name__}: {exc}"
        built = build_loops(
            self.db,
            settings=self.settings,
            llm=self.llm,
            heartbeat_runner_factory=self._heartbeat_runner,
        )
        self.loops = {loop.name: loop for loop in built}
        heartbeat = self.heartbeat_loop
        if heartbeat is not None:
            heartbeat.recover()
        if built[0].maintenance is not None:
            built[0].maintenance()  # retention once at startup, then hourly from the loops
        # Without it the first GET /api/heartbeat/status probed the LLM itself (its HTTP
        # client's TLS context, then a probe and a model list from its server) and every status
        # request arriving meanwhile probed too: the first dashboard polls after a start took
        # 50-200 ms (bench/scale.py). Both answers are cached for the requests after it.
        self.llm_probe = threading.Thread(target=self._probe_llm, name="llm-probe", daemon=True)
        self.llm_probe.start()
        for loop in built:
            if loop.enabled:
                loop.start()
            else:
                logger.info(
                    "%s disabled by its env var (start it with POST /api/loops/%s/start)",
                    loop.log_prefix,
                    loop.name,
                )

    def _heartbeat_runner(self) -> HeartbeatRunner:
        return HeartbeatRunner.from_app_state(
            settings=self.settings,
            db=self.db,
            llm=self.llm,
            ledger=self.ledger,
            ledger_error=self.ledger_error,
        )

    def _probe_llm(self) -> None:
        try:
            self.llm.status()  # its liveness probe, then its model list: both are cached
        except Exception:  # a probe's failure is the LLM's status, never the service's
            logger.exception("the first LLM probe failed")

    def begin_stop(self) -> None:
        """The first, instant step of a stop (also run by the Ctrl-C hook, before uvicorn
        drains its requests): abandon every LLM and Ledger call in flight, ask every loop to
        stop."""
        heartbeat = self.heartbeat_loop
        if heartbeat is not None:
            # Runs (scheduled or run-now) waiting for an LLM slot give up at once.
            heartbeat.close_runs()
        if isinstance(self.llm, InterruptibleLLM):
            self.llm.abort()
        if self.ledger is not None:
            # A write caught here stays pending in the outbox: the next start sends it.
            self.ledger.abort()
        for loop in self.loops.values():
            loop.request_stop()

    def stop(self) -> None:
        """Stop the loops together, then the Ledger, then close the DB: ``SHUTDOWN_SECONDS``
        in all. A loop still busy at the deadline is abandoned (a daemon thread): its run is
        closed ``interrupted`` by the next start's recovery, its outbox actions re-sent then."""
        if self.stopped:
            return
        self.stopped = True
        deadline = time.monotonic() + SHUTDOWN_SECONDS
        self.begin_stop()
        for loop in self.loops.values():
            loop.stop(timeout=max(0.0, deadline - time.monotonic()))
        if self.ledger is not None:
            self.ledger.stop()
        if self.llm_probe is not None:
            self.llm_probe.join(timeout=max(0.0, deadline - time.monotonic()))
        self.db.close()
        logger.info("CRT Loops stopped")
