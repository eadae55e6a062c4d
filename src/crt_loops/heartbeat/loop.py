"""HeartbeatLoop: the fourth loop (docs/architecture.md §5 steps 1 and 2).

It sleeps until the earliest ``next_due`` of an enabled thread, or at most
``CRT_HEARTBEAT_LOOP_SECONDS``; a config change, run-now or stop wakes it at once. Each tick
claims due threads atomically with per-thread DB leases (so no two workers or processes run one
thread's heartbeat) and runs at most ``CRT_HEARTBEAT_MAX_CONCURRENCY`` at once. A thread found
busy is retried shortly, never pushed back a whole interval.

The runner (heartbeat/executor.py) is built lazily on first use; if building it fails the
loop's status says why and the next tick tries again.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import TYPE_CHECKING, Any

from crt_loops.core.clock import iso
from crt_loops.core.enums import RunOutcome, RunReason, Trigger
from crt_loops.db import heartbeat_claims
from crt_loops.heartbeat import approvals
from crt_loops.heartbeat.wake import ReplyWatcher
from crt_loops.loops.runner import BackgroundLoop

if TYPE_CHECKING:
    from crt_loops.heartbeat.executor import HeartbeatRunner

logger = logging.getLogger(__name__)

PREFIX = "[HEARTBEAT_LOOP]"
BUSY_RETRY_SECONDS = 15.0
MIN_SLEEP_SECONDS = 0.05
#: How often a pass also recovers what dead holders left (two indexed reads when nothing is).
RECOVERY_SECONDS = 10.0


class HeartbeatLoop(BackgroundLoop):
    """Per-thread heartbeats on their own schedules."""

    name = "heartbeat"
    log_prefix = PREFIX
    uses_lease = False  # claims are per thread, not per pass

    def __init__(
        self,
        *,
        runner_factory: Callable[[], HeartbeatRunner] | None,
        max_concurrency: int = 1,
        reply_wake_seconds: float = 0.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self._runner_factory = runner_factory
        self._runner: HeartbeatRunner | None = None
        self._runner_lock = threading.Lock()
        self.runner_error: str | None = None
        self.max_concurrency = max(1, max_concurrency)
        self._last_heartbeat_by_thread: dict[str, float] = {}
        self.runs_started = 0
        self._checker_announced = False
        self.reply_wake_seconds = reply_wake_seconds  # 0: no reply wakes
        self._watcher: ReplyWatcher | None = None
        self._recovered_at: float | None = None

    # -- the executor, built lazily --------------------------------------------------------

    def runner(self) -> HeartbeatRunner:
        """The heartbeat runner, built on first use. Raises if it cannot be built."""
        with self._runner_lock:
            if self._runner is None:
                if self._runner_factory is None:
                    raise RuntimeError("no heartbeat runner factory was given to build_loops")
                try:
                    self._runner = self._runner_factory()
                except Exception as exc:
                    self.runner_error = f"cannot build the heartbeat executor: {exc}"
                    logger.exception("%s Failed to run heartbeat: %s", PREFIX, self.runner_error)
                    raise
                self.runner_error = None
                self._runner.on_change = self.wake
                if self.reply_wake_seconds > 0:
                    self._watcher = ReplyWatcher(self._runner, interval=self.reply_wake_seconds)
            return self._runner

    def close_runs(self) -> None:
        """At shutdown, before stop(): heartbeats waiting for an LLM slot give up at once, so
        neither this loop nor a run-now request keeps shutdown waiting behind the model."""
        with self._runner_lock:
            runner = self._runner
        if runner is not None:
            runner.close()

    def recover(self) -> dict[str, Any]:
        """Recovery (at startup, then every RECOVERY_SECONDS from the pass): interrupted runs
        closed, pending outbox actions re-sent, whatever process or host left them."""
        self._recovered_at = self.clock()
        try:
            return self.runner().recover()
        except Exception as exc:  # recorded in status; the service still starts
            self.last_error = f"recovery failed: {exc}"
            logger.exception("%s Failed to run heartbeat: recovery: %s", PREFIX, exc)
            return {"error": self.last_error}

    # -- the pass ----------------------------------------------------------------------------

    def do_tick(self) -> Mapping[str, Any]:
        # Said once at INFO, so the log shows the loop is alive; every later wake is DEBUG
        # (at INFO it was one line per wake, most of an idle log).
        level = logging.DEBUG if self._checker_announced else logging.INFO
        self._checker_announced = True
        logger.log(level, "%s Checker loop running", PREFIX)
        runner = self.runner()
        approvals.expire_due(runner.db, self.clock())
        if self._recovered_at is None or self.clock() - self._recovered_at >= RECOVERY_SECONDS:
            # Another host (or worker) that died mid-run is settled here, not only at its own
            # restart: its lease has expired by then (heartbeat/recovery.py).
            self.recover()
        woken = 0
        if self._watcher is not None and heartbeat_claims.earliest_due(runner.db) is not None:
            # Only while some thread's heartbeat is on: nobody to wake otherwise.
            woken = self._watcher.maybe_poll()
        done: list[str] = []
        busy: set[str] = set()
        futures: dict[Future[Any], str] = {}
        pool = ThreadPoolExecutor(
            max_workers=self.max_concurrency, thread_name_prefix="heartbeat-run"
        )
        try:
            while not self._stop.is_set():
                free = self.max_concurrency - len(futures)
                if free > 0:
                    claimed, found_busy = heartbeat_claims.claim_due(
                        runner.db,
                        now=self.clock(),
                        owner=runner.owner,
                        ttl=runner.lease_ttl,
                        limit=free,
                        exclude=frozenset(futures.values()),
                    )
                    for thread_id in found_busy:
                        if thread_id not in busy:
                            busy.add(thread_id)
                            runner.record_busy(thread_id, retry_in=BUSY_RETRY_SECONDS)
                    for thread_id in claimed:
                        logger.info("%s Heartbeat due for thread: %s", PREFIX, thread_id)
                        self.runs_started += 1
                        futures[pool.submit(self._run_one, runner, thread_id)] = thread_id
                if not futures:
                    break
                finished, _ = wait(list(futures), return_when=FIRST_COMPLETED)
                for fut in finished:
                    thread_id = futures.pop(fut)
                    done.append(thread_id)
                    self._last_heartbeat_by_thread[thread_id] = self.clock()
        finally:
            # Runs in flight finish (their records must be written); new ones are not claimed.
            pool.shutdown(wait=True)
        detail = {"runs": len(done), "busy": len(busy)}
        if woken:
            detail["reply_wakes"] = woken
        return detail

    def _run_one(self, runner: HeartbeatRunner, thread_id: str) -> None:
        try:
            runner.run(thread_id, trigger=Trigger.SCHEDULE, lease_held=True)
        except Exception as exc:  # the runner records its own failures; this is a last resort
            logger.exception("%s Failed to run heartbeat: %s: %s", PREFIX, thread_id, exc)

    def run_for_thread(self, thread_id: str) -> Mapping[str, Any]:
        """One scheduled-style heartbeat for ``thread_id`` now: gates apply (unlike run-now).

        Called from an HTTP request (``POST /api/loops/run``), so it is admitted like a run-now
        and waits for an LLM slot a bounded time: it must not hold a server thread for minutes.
        """
        runner = self.runner()
        if not runner.manual_admission.acquire(0):
            return {
                "thread_id": thread_id,
                "outcome": RunOutcome.SKIPPED.value,
                "reason": RunReason.BUSY.value,
                "summary": "too many manual heartbeats are already running or waiting for the "
                "LLM; try again shortly",
            }
        try:
            return runner.run(thread_id, trigger=Trigger.SCHEDULE, bounded_wait=True).as_api()
        finally:
            runner.manual_admission.release()

    def next_delay(self) -> float:
        if self.db is None:
            return self.interval_seconds
        try:
            due = heartbeat_claims.earliest_due(self.db)
        except Exception as exc:  # a DB hiccup must not kill the loop: retry after the interval
            logger.warning("%s cannot read the schedule: %s", PREFIX, exc)
            return self.interval_seconds
        if due is None:
            return self.interval_seconds
        delay = min(self.interval_seconds, due[1] - self.clock())
        poll = self._watcher.seconds_until_poll() if self._watcher is not None else None
        if poll is not None:
            delay = min(delay, poll)
        return max(MIN_SLEEP_SECONDS, delay)

    def status(self) -> dict[str, Any]:
        base = super().status()
        if self.runner_error:
            base["last_error"] = self.runner_error
        base["max_concurrency"] = self.max_concurrency
        base["runs_started"] = self.runs_started
        base["reply_watch"] = (
            self._watcher.status.as_api() if self._watcher is not None else {"enabled": False}
        )
        base["last_heartbeat_by_thread"] = {
            k: iso(v) for k, v in sorted(self._last_heartbeat_by_thread.items())[:50]
        }
        return base
