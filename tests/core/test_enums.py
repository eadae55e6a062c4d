"""core.enums: the vocabulary is documented where people look (the README, each class's
docstring) and accepted by the DB's CHECK constraints, value for value."""

from __future__ import annotations

import re
from enum import StrEnum
from pathlib import Path

import pytest

from crt_loops.core import enums
from crt_loops.core.enums import (
    ActionState,
    BlockReason,
    LoopState,
    RunOutcome,
    RunReason,
    TickOutcome,
    Trigger,
)
from crt_loops.db.session import SessionDB

README = Path(__file__).resolve().parents[2] / "README.md"
ALL = [ActionState, BlockReason, LoopState, RunOutcome, RunReason, TickOutcome, Trigger]
TICKED = re.compile(r"`([a-z][a-z0-9_]*)`")


def readme() -> str:
    return README.read_text(encoding="utf-8")


def outcome_table() -> dict[str, set[str]]:
    """The README's ``| outcome | reasons |`` table: each outcome with its backticked reasons."""
    lines = readme().splitlines()
    start = lines.index("| outcome | reasons |")
    table: dict[str, set[str]] = {}
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        outcome_cell, reasons_cell = line.strip("|").split("|", 1)
        (outcome,) = TICKED.findall(outcome_cell)
        table[outcome] = set(TICKED.findall(reasons_cell))
    return table


def test_every_module_member_is_listed() -> None:
    assert sorted(enums.__all__) == sorted(e.__name__ for e in ALL)


@pytest.mark.parametrize("enum", ALL, ids=lambda e: e.__name__)
def test_each_value_is_documented_in_its_docstring(enum: type[StrEnum]) -> None:
    doc = enum.__doc__ or ""
    documented = set(re.findall(r"^\s*- ``([a-z_]+)``:", doc, re.MULTILINE))
    values = {m.value for m in enum}
    if enum is RunReason:
        # The block reasons are documented in BlockReason and referred to here; one of them
        # (rate_limited) is also a failure's reason of its own.
        assert ":class:`BlockReason`" in doc
        assert values - {m.value for m in BlockReason} <= documented <= values
    else:
        assert documented == values


def test_readme_outcome_table_lists_exactly_the_outcomes_and_reasons() -> None:
    table = outcome_table()
    finished = {o.value for o in RunOutcome} - {RunOutcome.RUNNING.value}
    assert set(table) == finished
    assert set().union(*table.values()) == {r.value for r in RunReason}
    assert f"runs left `{RunOutcome.RUNNING}`" in readme()


def test_readme_outcome_table_puts_each_block_reason_under_silent() -> None:
    assert {b.value for b in BlockReason} <= outcome_table()[RunOutcome.SILENT]


def test_readme_lists_exactly_the_action_states() -> None:
    sentence = re.search(r"Each action of a run has a state: (.+?)\.\n", readme(), re.DOTALL)
    assert sentence is not None
    assert set(TICKED.findall(sentence.group(1))) == {s.value for s in ActionState}


def test_readme_metrics_list_exactly_the_triggers_and_tick_outcomes() -> None:
    text = readme()
    triggers = re.search(r"`trigger` \(([^)]*)\)", text)
    ticks = re.search(r"`crt_loop_ticks_total` .*?`outcome` \(([^)]*)\)", text)
    assert triggers is not None and ticks is not None
    assert set(TICKED.findall(triggers.group(1))) == {t.value for t in Trigger}
    assert set(TICKED.findall(ticks.group(1))) == {t.value for t in TickOutcome}


def test_a_member_is_its_string() -> None:
    # What keeps the DB, the API and the metrics labels unchanged.
    assert RunOutcome.ACTED == "acted" and f"{RunReason.LLM_TIMEOUT}" == "llm_timeout"
    assert RunOutcome("skipped") is RunOutcome.SKIPPED
    assert RunReason(BlockReason.SECRET) is RunReason.SECRET


def check_values(sql: str, column: str) -> set[str]:
    found = re.search(rf"{column} IN \(([^)]*)\)", sql)
    assert found is not None, f"no CHECK on {column}"
    return set(re.findall(r"'([a-z_]+)'", found.group(1)))


def test_the_db_accepts_exactly_the_stored_values(tmp_path: Path) -> None:
    db = SessionDB(tmp_path / "crt.db")
    try:
        sql = {
            name: text
            for name, text in db.read().execute("SELECT name, sql FROM sqlite_master")
            if text
        }
    finally:
        db.close()
    assert check_values(sql["heartbeat_runs"], "trigger") == {t.value for t in Trigger}
    assert check_values(sql["heartbeat_runs"], "outcome") == {o.value for o in RunOutcome}
    assert check_values(sql["heartbeat_actions"], "state") == {s.value for s in ActionState}
