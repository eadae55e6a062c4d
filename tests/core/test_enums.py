"""core.enums: the vocabulary is documented where people look (the README, each class's
docstring) and accepted by the DB's CHECK constraints, value for value."""

from __future__ import annotations

import ast
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


# -- nothing else spells a value --------------------------------------------------------------

SRC = Path(__file__).resolve().parents[2] / "src" / "crt_loops"
# Where a bare value is the point: the enums themselves, and the migrations' CHECK constraints
# (schema history, written once).
BARE_ALLOWED = {"core/enums.py", "db/migrations.py"}
VOCABULARY = {m.value for e in (RunOutcome, RunReason, ActionState, Trigger) for m in e}
FIELDS = ("outcome", "reason", "state", "trigger")


def _names_a_field(node: ast.AST) -> bool:
    text = ast.unparse(node)
    return any(field in text for field in FIELDS)


def _bare(node: ast.AST) -> bool:
    return isinstance(node, ast.Constant) and node.value in VOCABULARY


def bare_spellings(tree: ast.AST) -> list[str]:
    """Comparisons, keyword arguments and dict entries that give one of the outcome, reason,
    state or trigger fields a bare string from the vocabulary."""
    found: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare):
            sides = [node.left, *node.comparators]
            values = [v for s in sides for v in (s.elts if isinstance(s, ast.Tuple) else [s])]
            if any(_bare(v) for v in values) and any(_names_a_field(s) for s in sides):
                found.append(ast.unparse(node))
        elif isinstance(node, ast.keyword):
            if node.arg in FIELDS and _bare(node.value):
                found.append(ast.unparse(node))
        elif isinstance(node, ast.Dict):
            for key, value in zip(node.keys, node.values, strict=True):
                if (
                    isinstance(key, ast.Constant)
                    and key.value in FIELDS
                    and value is not None
                    and _bare(value)
                ):
                    found.append(f"{key.value!r}: {ast.unparse(value)}")
    return found


def test_bare_spellings_are_found() -> None:
    tree = ast.parse(
        "if run.outcome == 'failed': pass\n"
        "x = r.state in ('sent', 'pending')\n"
        "runner.run(t, trigger='manual')\n"
        "d = {'reason': 'busy'}\n"
        "ok = run.outcome is RunOutcome.FAILED\n"
        "y = name == 'failed'\n"
    )
    assert len(bare_spellings(tree)) == 4


def test_no_product_module_spells_an_outcome_reason_state_or_trigger() -> None:
    offenders = {}
    for path in sorted(SRC.rglob("*.py")):
        rel = path.relative_to(SRC).as_posix()
        if rel in BARE_ALLOWED:
            continue
        found = bare_spellings(ast.parse(path.read_text(encoding="utf-8")))
        if found:
            offenders[rel] = found
    assert offenders == {}
