"""heartbeat.instructions: reading, parsing and atomically writing HEARTBEAT.md."""

from __future__ import annotations

import hashlib
import os
import threading
from pathlib import Path

import pytest

from crt_loops.heartbeat.instructions import (
    MAX_INSTRUCTIONS_BYTES,
    InstructionsConflict,
    InstructionsError,
    InstructionsInvalid,
    InstructionsTooLarge,
    is_effectively_empty,
    load_instructions,
    parse_sections,
    write_instructions,
)

REPO_HEARTBEAT_MD = Path(__file__).resolve().parents[2] / "HEARTBEAT.md"
EMPTY_SHA = hashlib.sha256(b"").hexdigest()

SEED_EXAMPLE = """\
# HEARTBEAT.md in workspace root

## Checklist
- Check for urgent items
- Review recent posts

## Rules
If 3+ urgent → post summary.
If contradictions → comment on feed.

## Proactive Behaviors
- Vote on polls
- Monitor key users
"""


@pytest.fixture
def md(tmp_path: Path) -> Path:
    return tmp_path / "HEARTBEAT.md"


# -- reading --------------------------------------------------------------------------------


def test_missing_file_is_empty_not_an_error(md: Path) -> None:
    doc = load_instructions(md)
    assert doc.missing and doc.effectively_empty
    assert (doc.content, doc.last_modified, doc.sha256, doc.sections) == ("", None, EMPTY_SHA, [])
    assert doc.as_dict()["last_modified"] is None


def test_a_directory_at_the_path_is_a_named_error(md: Path) -> None:
    md.mkdir()
    with pytest.raises(InstructionsError, match="is a directory"):
        load_instructions(md)


def test_invalid_utf8_is_a_named_error(md: Path) -> None:
    md.write_bytes(b"## Rules\n- caf\xe9\n")
    with pytest.raises(InstructionsError, match="not valid UTF-8"):
        load_instructions(md)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_permission_denied_is_a_named_error(md: Path) -> None:
    md.write_text("- do things\n")
    md.chmod(0)
    try:
        with pytest.raises(InstructionsError, match="permission"):
            load_instructions(md)
    finally:
        md.chmod(0o644)


def test_read_fresh_every_time(md: Path) -> None:
    md.write_text("- first\n", encoding="utf-8")
    assert load_instructions(md).sections[0].items == ["first"]
    md.write_text("- second\n", encoding="utf-8")
    doc = load_instructions(md)
    assert doc.sections[0].items == ["second"]
    assert doc.sha256 == hashlib.sha256(b"- second\n").hexdigest()
    assert doc.last_modified == md.stat().st_mtime
    assert doc.as_dict()["last_modified"].endswith("Z")


def test_a_byte_order_mark_is_not_content(md: Path) -> None:
    md.write_bytes(b"\xef\xbb\xbf## Rules\n- be kind\n")
    assert load_instructions(md).content.startswith("## Rules")


def test_seed_example_sections(md: Path) -> None:
    md.write_text(SEED_EXAMPLE, encoding="utf-8")
    doc = load_instructions(md)
    assert not doc.effectively_empty and not doc.missing
    assert [s.title for s in doc.sections] == ["Checklist", "Rules", "Proactive Behaviors"]
    checklist, rules, proactive = doc.sections
    assert checklist.items == ["Check for urgent items", "Review recent posts"]
    assert rules.items == []
    assert rules.text == "If 3+ urgent → post summary.\nIf contradictions → comment on feed."
    assert proactive.items == ["Vote on polls", "Monitor key users"]
    assert doc.as_dict()["sections"][0] == {
        "title": "Checklist",
        "items": ["Check for urgent items", "Review recent posts"],
        "text": "- Check for urgent items\n- Review recent posts",
    }


def test_checkbox_items_kept_verbatim() -> None:
    [section] = parse_sections(
        "## Checklist\n- [x] Vote on polls\n- [ ] Reply to @ana\n* [X] done\n"
    )
    assert section.items == ["[x] Vote on polls", "[ ] Reply to @ana", "[X] done"]


def test_other_sections_subheadings_fences_and_comments() -> None:
    text = (
        "# Title\nPreamble words.\n\n## Checklist\n- one\n  continued\n### Sub\n- two\n"
        "## Custom Section ##\n```\n## not a heading\n- not an item\n```\n"
        "<!-- ## hidden\n- hidden item -->\n1. numbered\n"
    )
    sections = parse_sections(text)
    assert [s.title for s in sections] == ["", "Checklist", "Custom Section"]
    assert "Preamble words." in sections[0].text
    assert sections[1].items == ["one continued", "two"]
    assert "### Sub" in sections[1].text
    assert sections[2].items == ["numbered"]
    assert "## not a heading" in sections[2].text
    assert "hidden" not in sections[2].text


@pytest.mark.parametrize(
    "text",
    [
        "",
        "\n\n  \n",
        "# HEARTBEAT.md\n\n## Checklist\n\n## Rules\n",
        "<!-- a\nmulti-line\ncomment -->\n",
        "## Checklist\n- \n- [ ]\n* [x]\n+\n1.\n2)\n",
        "---\n***\n_ _ _\n",
        "# Title\n<!-- never closed\n- Vote on everything\n",
        "## Rules <!-- inline --> \n",
    ],
)
def test_effectively_empty(text: str) -> None:
    assert is_effectively_empty(text)


@pytest.mark.parametrize(
    "text",
    [
        "- Check the feed",
        "Be kind.",
        "## Checklist\n- [ ] Vote on polls",
        "#hashtag is not a heading",
        "```\ncode\n```",
        "<!-- note --> Reply to comments",
    ],
)
def test_not_effectively_empty(text: str) -> None:
    assert not is_effectively_empty(text)


def test_repository_default_is_useful() -> None:
    doc = load_instructions(REPO_HEARTBEAT_MD)
    assert not doc.effectively_empty
    titles = [s.title for s in doc.sections]
    assert titles == ["Checklist", "Rules", "Proactive Behaviors"]
    assert all(doc.sections[i].items for i in (0, 2))
    text = doc.content
    assert "Do NOT post just because" in text
    assert "own posts" in text and "Upvote" in text
    assert len(text.encode()) < MAX_INSTRUCTIONS_BYTES


# -- writing --------------------------------------------------------------------------------


def test_write_creates_and_replaces(md: Path) -> None:
    doc = write_instructions(md, SEED_EXAMPLE)
    assert md.read_text(encoding="utf-8") == SEED_EXAMPLE
    assert doc.sha256 == hashlib.sha256(SEED_EXAMPLE.encode()).hexdigest()
    assert doc.sections[0].title == "Checklist"
    write_instructions(md, "- new\n")
    assert md.read_text(encoding="utf-8") == "- new\n"
    assert sorted(p.name for p in md.parent.iterdir()) == ["HEARTBEAT.md"]  # no temp files


def test_write_keeps_the_file_mode(md: Path) -> None:
    md.write_text("old\n")
    md.chmod(0o640)
    write_instructions(md, "new\n")
    assert md.stat().st_mode & 0o777 == 0o640


def test_too_large_leaves_the_file_untouched(md: Path) -> None:
    md.write_text("original\n")
    before = md.stat().st_mtime_ns
    with pytest.raises(InstructionsTooLarge, match="64 KiB"):
        write_instructions(md, "x" * (MAX_INSTRUCTIONS_BYTES + 1))
    with pytest.raises(InstructionsTooLarge):
        write_instructions(md, "é" * (MAX_INSTRUCTIONS_BYTES // 2 + 1))  # bytes, not characters
    assert md.read_text() == "original\n" and md.stat().st_mtime_ns == before
    write_instructions(md, "x" * MAX_INSTRUCTIONS_BYTES)  # exactly at the cap is fine


def test_conflicting_edit_is_refused(md: Path) -> None:
    first = write_instructions(md, "- v1\n")
    write_instructions(md, "- v2 from another editor\n", expected_sha256=first.sha256)
    with pytest.raises(InstructionsConflict, match="changed since it was loaded"):
        write_instructions(md, "- stale edit\n", expected_sha256=first.sha256)
    assert md.read_text() == "- v2 from another editor\n"


def test_expected_hash_of_a_missing_file_is_the_empty_hash(md: Path) -> None:
    write_instructions(md, "- created\n", expected_sha256=EMPTY_SHA.upper())
    assert md.read_text() == "- created\n"


def test_concurrent_editors_with_the_same_base_one_wins(md: Path) -> None:
    base = write_instructions(md, "- base\n").sha256
    barrier = threading.Barrier(6)
    outcomes: list[str] = []

    def edit(n: int) -> None:
        barrier.wait()
        try:
            write_instructions(md, f"- edit {n}\n", expected_sha256=base)
            outcomes.append("ok")
        except InstructionsConflict:
            outcomes.append("conflict")

    threads = [threading.Thread(target=edit, args=(n,), name=f"editor-{n}") for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert sorted(outcomes) == ["conflict"] * 5 + ["ok"]


def test_unencodable_text_is_refused(md: Path) -> None:
    with pytest.raises(InstructionsInvalid, match="not valid Unicode"):
        write_instructions(md, "bad \ud800 surrogate")
    assert not md.exists()


def test_missing_directory_is_a_named_error(tmp_path: Path) -> None:
    with pytest.raises(InstructionsError, match="does not exist"):
        write_instructions(tmp_path / "nope" / "HEARTBEAT.md", "- x\n")


def test_failed_write_leaves_no_temp_file(md: Path) -> None:
    md.mkdir()  # os.replace cannot put a file over a directory
    with pytest.raises(InstructionsError):
        write_instructions(md, "- x\n")
    assert sorted(p.name for p in md.parent.iterdir()) == ["HEARTBEAT.md"]


def test_write_through_a_symlink_keeps_the_link(tmp_path: Path) -> None:
    real = tmp_path / "dotfiles" / "HEARTBEAT.md"
    real.parent.mkdir()
    real.write_text("- old\n")
    link = tmp_path / "HEARTBEAT.md"
    link.symlink_to(real)
    doc = write_instructions(link, "- new\n")
    assert link.is_symlink() and real.read_text() == "- new\n"
    assert doc.content == "- new\n"
