"""heartbeat.gates and heartbeat.recording.due_after: each gate on its own, with real objects
(no runner, no server but the fake Ollama where a reachable LLM is needed)."""

from __future__ import annotations

from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from support.fake_ollama import FakeOllama

from crt_loops.core.enums import RunOutcome, RunReason, Trigger
from crt_loops.db import heartbeats
from crt_loops.heartbeat import gates
from crt_loops.heartbeat.config import HeartbeatConfig
from crt_loops.heartbeat.decision import parse_decision
from crt_loops.heartbeat.gates import Verdict
from crt_loops.heartbeat.instructions import Instructions
from crt_loops.heartbeat.recording import due_after
from crt_loops.heartbeat.schedule import ActiveWindow
from crt_loops.llm.client import (
    DisabledLLM,
    LLMError,
    LLMTimeout,
    LLMTruncated,
    LLMUnavailable,
    OllamaLLM,
)

NOON = 1_718_020_800.0  # 2024-06-10 12:00 UTC
NINE_TO_FIVE = ActiveWindow(9 * 60, 17 * 60, ZoneInfo("UTC"))


def hb(**fields: object) -> heartbeats.ThreadHeartbeat:
    values: dict[str, object] = {
        "thread_id": "t",
        "config": HeartbeatConfig(enabled=True),
        "configured": True,
        "last_run": None,
        "last_summary": None,
        "last_actions": [],
        "last_outcome": RunOutcome.SILENT,
        "last_reason": None,
        "next_due": None,
        "failures": 0,
        "context_hash": "abc",
    }
    values.update(fields)
    return heartbeats.ThreadHeartbeat(**values)  # type: ignore[arg-type]


def test_disabled_skips_unless_forced() -> None:
    off = HeartbeatConfig(enabled=False)
    verdict = gates.disabled(off, forced=False)
    assert verdict is not None
    assert (verdict.outcome, verdict.reason) == (RunOutcome.SKIPPED, RunReason.DISABLED)
    assert gates.disabled(off, forced=True) is None
    assert gates.disabled(HeartbeatConfig(enabled=True), forced=False) is None


def test_quiet_hours_skips_outside_the_window_and_names_it() -> None:
    evening = NOON + 6 * 3600  # 18:00 UTC
    verdict = gates.quiet_hours(NINE_TO_FIVE, evening, forced=False)
    assert verdict is not None and verdict.reason is RunReason.QUIET_HOURS
    assert verdict.summary == "outside active hours (09:00-17:00 UTC)"
    assert gates.quiet_hours(NINE_TO_FIVE, evening, forced=True) is None
    assert gates.quiet_hours(NINE_TO_FIVE, NOON, forced=False) is None
    assert gates.quiet_hours(None, evening, forced=False) is None


def test_read_instructions_passes_them_on_or_fails(tmp_path: Path) -> None:
    md = tmp_path / "HEARTBEAT.md"
    md.write_text("# HEARTBEAT.md\n\n- Read the feed.\n", encoding="utf-8")
    loaded = gates.read_instructions(md)
    assert isinstance(loaded, Instructions) and gates.empty_instructions(loaded) is None
    md.unlink()
    md.mkdir()  # a directory where the file should be: unreadable, not missing
    failed = gates.read_instructions(md)
    assert isinstance(failed, Verdict)
    assert (failed.outcome, failed.reason) == (RunOutcome.FAILED, RunReason.INSTRUCTIONS_ERROR)


def test_empty_or_missing_instructions_skip(tmp_path: Path) -> None:
    missing = gates.read_instructions(tmp_path / "HEARTBEAT.md")
    assert isinstance(missing, Instructions)
    verdict = gates.empty_instructions(missing)
    assert verdict is not None and verdict.reason is RunReason.EMPTY_INSTRUCTIONS
    assert verdict.summary is not None and "missing" in verdict.summary


def test_llm_unavailable_skips_and_a_reachable_one_passes(fake_ollama: FakeOllama) -> None:
    verdict = gates.llm_unavailable(DisabledLLM("http://127.0.0.1:9", "m"))
    assert verdict is not None
    assert (verdict.outcome, verdict.reason) == (RunOutcome.SKIPPED, RunReason.LLM_UNAVAILABLE)
    assert gates.llm_unavailable(OllamaLLM(fake_ollama.url, "llama3.2:latest")) is None


def test_unchanged_context_skips_only_a_repeat_of_a_run_that_went_through() -> None:
    config = HeartbeatConfig(enabled=True, skip_when_unchanged=True)
    verdict = gates.unchanged_context(config, hb(), "abc", forced=False)
    assert verdict is not None and verdict.reason is RunReason.NO_NEW_CONTEXT
    assert gates.unchanged_context(config, hb(), "abc", forced=True) is None
    assert gates.unchanged_context(config, hb(), "changed", forced=False) is None
    failed_last = hb(last_outcome=RunOutcome.FAILED)
    assert gates.unchanged_context(config, failed_last, "abc", forced=False) is None
    assert gates.unchanged_context(config, hb(last_outcome=None), "abc", forced=False) is None
    keep_going = HeartbeatConfig(enabled=True, skip_when_unchanged=False)
    assert gates.unchanged_context(keep_going, hb(), "abc", forced=False) is None


@pytest.mark.parametrize(
    ("exc", "outcome", "reason"),
    [
        (LLMTimeout("slow"), RunOutcome.FAILED, RunReason.LLM_TIMEOUT),
        (LLMTruncated("cut"), RunOutcome.FAILED, RunReason.INVALID_DECISION),
        (LLMUnavailable("gone"), RunOutcome.SKIPPED, RunReason.LLM_UNAVAILABLE),
        (LLMError("odd"), RunOutcome.FAILED, RunReason.LLM_ERROR),
    ],
)
def test_llm_failures_map_to_their_verdicts(
    exc: LLMError, outcome: RunOutcome, reason: RunReason
) -> None:
    verdict = gates.llm_failed(exc)
    assert (verdict.outcome, verdict.reason, verdict.error) == (outcome, reason, str(exc))


def test_usable_decision_passes_a_decision_on_and_quotes_a_bad_reply_redacted() -> None:
    good = parse_decision("HEARTBEAT_OK")
    assert not isinstance(gates.usable_decision(good, "HEARTBEAT_OK", []), Verdict)
    reply = "my key is sk-secret-123 and no JSON"
    verdict = gates.usable_decision(parse_decision(reply), reply, ["sk-secret-123"])
    assert isinstance(verdict, Verdict) and verdict.reason is RunReason.INVALID_DECISION
    assert verdict.summary is not None and "sk-secret-123" not in verdict.summary


def run_with(outcome: RunOutcome) -> heartbeats.RunRecord:
    run = heartbeats.RunRecord.begin("t", trigger=Trigger.SCHEDULE, dry_run=False, now=NOON)
    run.outcome = outcome
    return run


def test_due_after_a_failure_backs_off_and_after_success_waits_the_interval() -> None:
    config = HeartbeatConfig(enabled=True, every_seconds=1800)
    failed = run_with(RunOutcome.FAILED)
    assert due_after(failed, config, 1, now=NOON, default_timezone="UTC") == NOON + 30
    assert due_after(failed, config, 3, now=NOON, default_timezone="UTC") == NOON + 300
    acted = run_with(RunOutcome.ACTED)
    assert due_after(acted, config, 0, now=NOON, default_timezone="UTC") == NOON + 1800
    off = HeartbeatConfig(enabled=False)
    assert due_after(acted, off, 0, now=NOON, default_timezone="UTC") is None
