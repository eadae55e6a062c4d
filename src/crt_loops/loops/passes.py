"""What the reflection, personality and self-reply passes share.

- :class:`PassResult`: one pass's outcome as data (returned by every ``run_pass`` and
  ``process_thread``, shown by the loops' status and ``POST /api/loops/run``).
- :func:`run_watermarked_pass`: the per-loop watermark discipline. A pass first compares the
  table's highest id with the loop's global watermark (two indexed reads: nothing new means
  nothing else is touched), then works thread by thread inside a per-thread error boundary,
  calling ``keepalive()`` before each thread, and finally advances the global watermark to the
  highest id below which every row is processed for every thread. A thread that failed, was left
  for later, or was never reached because the pass stopped early holds the watermark just below
  its first unprocessed row, so it is picked up again by the next pass. The threads' writes go
  through one write batch (``Store.write_batch``: on SQLite one transaction for up to
  ``BATCH_SECONDS`` of threads, each thread's writes a savepoint), committed before the global
  watermark moves, and before every LLM call.
- :class:`LLMGate`: one pass's view of the LLM: probe it once, stop trying after repeated
  failures (so 200 threads do not each wait out a timeout), count calls, and warn once per pass,
  not once per message, when falling back.
- :func:`parse_reply`: lenient extraction of the JSON object from a model's reply (``<think>``
  blocks, code fences, prose around it), then strict validation with pydantic.
"""

from __future__ import annotations

import abc
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, TypeVar

import pydantic

from crt_loops.core.identity import PROCESS_OWNER
from crt_loops.core.lenient_json import first_object
from crt_loops.db import progress
from crt_loops.db.conn import POSTGRES
from crt_loops.db.errors import DatabaseClosedError
from crt_loops.db.progress import WATERMARK_TABLES, Candidate
from crt_loops.db.session import SessionDB
from crt_loops.db.store import WriteBatch
from crt_loops.llm.client import (
    LLM,
    ChatMessage,
    LLMBadOutput,
    LLMError,
    LLMReply,
    LLMTruncated,
    LLMUnavailable,
    LLMUsage,
    add_usage,
)
from crt_loops.llm.schema import closed, schema_max_tokens

logger = logging.getLogger(__name__)

M = TypeVar("M", bound=pydantic.BaseModel)

#: Consecutive LLM failures after which a pass stops calling the LLM and falls back.
MAX_CONSECUTIVE_LLM_FAILURES = 2
#: How long a host holds one thread of a pass (renewed never: a thread's work is one LLM call
#: or a few; a holder that dies frees it this long after).
THREAD_CLAIM_SECONDS = 300.0
#: How long a pass's writes may wait in one transaction, holding SQLite's write lock: the
#: service's other writers (a chat message, a heartbeat's record) wait at most about this long,
#: far below the busy timeout and /health's probe. Per-thread commits were a third of a backlog
#: pass's CPU (bench/backlog.py).
BATCH_SECONDS = 0.05
#: Per-thread lines a pass logs at INFO before the rest go to DEBUG (see :func:`detail_level`).
DETAIL_LINES_PER_PASS = 5
__all__ = [
    "BATCH_SECONDS",
    "DETAIL_LINES_PER_PASS",
    "MAX_CONSECUTIVE_LLM_FAILURES",
    "WATERMARK_TABLES",
    "Candidate",
    "LLMGate",
    "PassResult",
    "ProcessFn",
    "WatermarkedService",
    "detail_level",
    "extract_json_object",
    "has_new_rows",
    "parse_reply",
    "process_guarded",
    "run_watermarked_pass",
]


@dataclass
class PassResult:
    """One pass (or one thread run now) of a loop."""

    loop: str
    threads_seen: int = 0
    threads_processed: int = 0
    threads_deferred: int = 0  # evaluated, left for a later pass (e.g. the self-reply dice)
    threads_failed: int = 0
    messages_processed: int = 0
    llm_calls: int = 0
    llm_failures: int = 0
    fallbacks: int = 0  # items produced by a heuristic or template because the LLM was not used
    entries_written: int = 0
    interrupted: bool = False
    watermark: int | None = None
    duration_ms: float = 0.0
    errors: list[str] = field(default_factory=list)
    usage: LLMUsage | None = None  # the pass's LLM calls together, as the server counted them

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["duration_ms"] = round(self.duration_ms, 2)
        return data


#: Does one thread's work; returns True when the thread is done up to ``candidate.max_id``
#: (its watermark was advanced), False when it is deliberately left for a later pass.
ProcessFn = Callable[[Candidate], bool]


def has_new_rows(db: SessionDB, loop: str, table: str) -> bool:
    """Whether ``table`` has rows above the loop's global watermark: two indexed reads, no write."""
    return progress.committed_high_id(db, table) > db.loop_watermark(loop)


def process_guarded(
    process: ProcessFn, candidate: Candidate, result: PassResult, log_prefix: str
) -> bool | None:
    """Run one thread inside the error boundary: True/False from ``process``, None if it failed."""
    try:
        done = process(candidate)
    except DatabaseClosedError:
        raise  # shutting down: the whole pass stops, not one thread
    except Exception as exc:  # one thread's failure must not stop the others
        result.threads_failed += 1
        result.errors.append(f"{candidate.thread_id}: {type(exc).__name__}: {exc}")
        logger.exception(
            "%s thread %s failed; its work is retried next pass: %s",
            log_prefix,
            candidate.thread_id,
            exc,
        )
        return None
    if done:
        result.threads_processed += 1
    else:
        result.threads_deferred += 1
    return done


def _claimed(
    db: SessionDB,
    loop: str,
    candidate: Candidate,
    *,
    process: ProcessFn,
    result: PassResult,
    log_prefix: str,
) -> bool | None:
    """One thread of a pass that several hosts run at once: under the thread's lease
    (``loop:<loop>:<thread>``), from its watermark as it is now, so a thread another host just
    processed is neither processed again nor scored twice. A thread another host holds is left
    unfinished: it holds the global watermark back until that host has raised its own."""
    name = f"loop:{loop}:{candidate.thread_id}"
    if not db.acquire_lease(name, PROCESS_OWNER, THREAD_CLAIM_SECONDS):
        return False
    try:
        current = progress.thread_watermark(db, loop, candidate.thread_id)
        if current >= candidate.max_id:
            return True  # done meanwhile by another host
        fresh = Candidate(candidate.thread_id, max(current, candidate.watermark), candidate.max_id)
        return process_guarded(process, fresh, result, log_prefix)
    finally:
        db.release_lease(name, PROCESS_OWNER)


def run_watermarked_pass(
    db: SessionDB,
    *,
    loop: str,
    log_prefix: str,
    table: str,
    find_candidates: Callable[[], Sequence[Candidate]],
    process: ProcessFn,
    keepalive: Callable[[], bool],
    result: PassResult,
    batch: WriteBatch | None = None,
) -> PassResult:
    """One pass over the threads with rows newer than the loop's watermarks (module docstring);
    ``batch`` holds the threads' writes (default: each commits on its own)."""
    batch = batch or WriteBatch()
    if table not in WATERMARK_TABLES:
        raise ValueError(f"no watermark over table {table!r}")
    started = time.perf_counter()
    global_wm = db.loop_watermark(loop)
    # Read before the candidates: any row committed after this read has a higher id
    # (committed_high_id's promise), so the watermark cannot wrongly cover it.
    high = progress.committed_high_id(db, table)
    result.watermark = global_wm
    if high <= global_wm:
        result.duration_ms = (time.perf_counter() - started) * 1000
        return result
    candidates = list(find_candidates())
    result.threads_seen = len(candidates)
    unfinished: list[str] = []
    for index, candidate in enumerate(candidates):
        batch.checkpoint()
        if not keepalive():
            result.interrupted = True
            unfinished.extend(c.thread_id for c in candidates[index:])
            logger.info(
                "%s pass stopped early; %d thread(s) left for the next pass",
                log_prefix,
                len(candidates) - index,
            )
            break
        if db.dialect == POSTGRES:
            done = _claimed(
                db, loop, candidate, process=process, result=result, log_prefix=log_prefix
            )
        else:
            done = process_guarded(process, candidate, result, log_prefix)
        if not done:
            unfinished.append(candidate.thread_id)
    batch.flush()  # the threads' results are committed before the global watermark covers them
    new_wm = high
    for thread_id in unfinished:
        first = progress.first_unprocessed(db, loop, table, thread_id, global_wm)
        if first is not None:
            new_wm = min(new_wm, first - 1)
    if new_wm > global_wm:
        db.advance_loop_watermark(loop, new_wm)
        result.watermark = new_wm
    batch.flush()
    result.duration_ms = (time.perf_counter() - started) * 1000
    if result.threads_seen:
        logger.info(
            "%s pass: %d thread(s), %d processed, %d deferred, %d failed, %d LLM call(s), "
            "%d entr%s written in %.0f ms",
            log_prefix,
            result.threads_seen,
            result.threads_processed,
            result.threads_deferred,
            result.threads_failed,
            result.llm_calls,
            result.entries_written,
            "y" if result.entries_written == 1 else "ies",
            result.duration_ms,
        )
    return result


def detail_level(result: PassResult) -> int:
    """The level of a pass's per-thread line ("reflection written", "profile v3"): INFO for the
    first :data:`DETAIL_LINES_PER_PASS` of a pass, so a person with a few threads sees each one,
    DEBUG after that, so a backlog of thousands is one INFO line (the pass's), not thousands
    (a twentieth of a backlog pass's CPU, bench/backlog.py). Each change is in the DB anyway."""
    return logging.INFO if result.entries_written <= DETAIL_LINES_PER_PASS else logging.DEBUG


class LLMGate:
    """One pass's use of the LLM: a single probe, a failure budget, one warning per pass."""

    def __init__(
        self,
        llm: LLM,
        log_prefix: str,
        result: PassResult,
        *,
        fallback: str,
        before_call: Callable[[], None] = lambda: None,
    ) -> None:
        self.llm = llm
        # Runs before each probe and call: commits the pass's write batch, since no transaction
        # may wait on the network (docs/storage.md).
        self.before_call = before_call
        self.log_prefix = log_prefix
        self.result = result
        self.fallback_name = fallback
        self._available: bool | None = None
        self._consecutive_failures = 0
        self._warned = False

    def usable(self) -> bool:
        """Whether to try the LLM now; probes (cached by the adapter) at most once per pass."""
        if self._available is None:
            self.before_call()
            self._available = self.llm.available()
            if not self._available:
                self.note_fallback(f"the LLM at {self.llm.host} is unavailable")
        return self._available and self._consecutive_failures < MAX_CONSECUTIVE_LLM_FAILURES

    def note_fallback(self, why: str) -> None:
        if not self._warned:
            self._warned = True
            logger.warning(
                "%s using the %s instead of the LLM for this pass: %s",
                self.log_prefix,
                self.fallback_name,
                why,
            )

    def chat(
        self,
        messages: Sequence[ChatMessage],
        model_cls: type[M],
        *,
        temperature: float,
        max_tokens: int,
        schema: dict[str, Any] | None = None,
    ) -> tuple[M, LLMReply] | None:
        """Ask for ``model_cls`` as structured output; None (and a noted fallback) on failure.

        ``schema`` (default: the model's own) goes out closed (no extra keys), and
        ``max_tokens`` is raised to what its longest reply needs, so a bounded reply is never
        cut.
        """
        self.result.llm_calls += 1
        sent = closed(schema or model_cls.model_json_schema())
        reply: LLMReply | None = None
        self.before_call()
        try:
            reply = self.llm.chat(
                messages,
                schema=sent,
                temperature=temperature,
                max_tokens=max(max_tokens, schema_max_tokens(sent)),
            )
            self.result.usage = add_usage(self.result.usage, reply.usage)
            parsed = parse_reply(reply.content, model_cls)
        except LLMError as exc:
            if isinstance(exc, LLMTruncated):
                self.result.usage = add_usage(self.result.usage, exc.usage)
            self.result.llm_failures += 1
            self._consecutive_failures += 1
            if isinstance(exc, LLMUnavailable):
                self._available = False
            self.note_fallback(f"{type(exc).__name__}: {exc}")
            return None
        self._consecutive_failures = 0
        return parsed, reply


def extract_json_object(text: str) -> dict[str, Any]:
    """The first JSON object in a model's reply (core.lenient_json's rules); raises
    LLMBadOutput when there is none."""
    found = first_object(text)
    if found is None:
        raise LLMBadOutput(f"no JSON object in the model's reply: {text[:120]!r}")
    return found


def parse_reply(content: str, model_cls: type[M]) -> M:
    """Lenient extraction, strict validation: raises LLMBadOutput if the shape is wrong."""
    obj = extract_json_object(content)
    try:
        return model_cls.model_validate(obj)
    except pydantic.ValidationError as exc:
        raise LLMBadOutput(
            f"the model's {model_cls.__name__} does not validate: {exc.error_count()} error(s), "
            f"first: {exc.errors()[0]['msg']}"
        ) from exc


class WatermarkedService(abc.ABC):
    """What the three thinking services share: a read-only "anything new?" check, a pass over
    the threads above the watermark, and a manual run for one thread. Subclasses set the
    class attributes and implement :meth:`process`."""

    loop: str
    log_prefix: str
    table: str  # "messages" or "journal_entries": what the watermark runs over
    fallback: str  # what an LLM failure falls back to, for the log line
    db: SessionDB
    llm: LLM

    def has_work(self) -> bool:
        """Cheap and read-only: is there anything new for a pass to look at?"""
        return has_new_rows(self.db, self.loop, self.table)

    def candidates(self) -> Sequence[Candidate]:
        """Threads with unprocessed rows (default: messages above the loop's watermarks)."""
        return progress.candidates(self.db, self.loop, "messages")

    @abc.abstractmethod
    def process(self, cand: Candidate, gate: LLMGate, result: PassResult) -> bool:
        """One thread's work inside a pass; True when the thread is done (watermark moves)."""

    def run_pass(self, *, keepalive: Callable[[], bool] = lambda: True) -> PassResult:
        result = PassResult(self.loop)
        with self.db.write_batch(BATCH_SECONDS) as batch:
            gate = LLMGate(
                self.llm, self.log_prefix, result, fallback=self.fallback, before_call=batch.flush
            )
            return run_watermarked_pass(
                self.db,
                loop=self.loop,
                log_prefix=self.log_prefix,
                table=self.table,
                find_candidates=self.candidates,
                process=lambda c: self.process(c, gate, result),
                keepalive=keepalive,
                result=result,
                batch=batch,
            )

    def run_one(
        self, candidate: Candidate, process: Callable[[Candidate, LLMGate, PassResult], bool]
    ) -> PassResult:
        """Run ``process`` for one thread now, inside the same error boundary as a pass."""
        result = PassResult(self.loop, threads_seen=1)
        gate = LLMGate(self.llm, self.log_prefix, result, fallback=self.fallback)
        process_guarded(lambda c: process(c, gate, result), candidate, result, self.log_prefix)
        return result

    def process_thread(self, thread_id: str) -> PassResult:
        """This thread's unprocessed messages, now (``POST /api/loops/run``)."""
        return self.run_one(self.message_candidate(thread_id), self.process)

    def message_candidate(self, thread_id: str) -> Candidate:
        """The thread's unprocessed messages, for a manual run."""
        self.db.require_thread(thread_id)
        wm = self.db.thread_watermark(self.loop, thread_id)
        return Candidate(thread_id, wm, max(wm, self.db.latest_message_id(thread_id)))
