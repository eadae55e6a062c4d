"""``crt db copy``: a SQLite session DB copied into an empty PostgreSQL one, ids kept."""

from __future__ import annotations

from pathlib import Path

import pytest

from crt_loops.cli.main import main
from crt_loops.core.enums import Trigger
from crt_loops.db import heartbeats, journal, progress
from crt_loops.db.session import SessionDB

pytestmark = pytest.mark.postgres


def _seed(path: Path) -> dict[str, int]:
    db = SessionDB(path)
    try:
        db.ensure_thread("work", "Work")
        for i in range(5):
            db.add_message("default", "user", f"message {i} at 100% effort")
        last = db.add_message("work", "assistant", "noted").id
        db.delete_thread("work")  # ids are never reused: the copy keeps the gap
        db.ensure_thread("work", "Work again")
        entry = journal.add_entry(
            db, thread_id="default", entry_type="reflection", title="t", body="b", created_at=1.0
        )
        journal.add_entry(
            db,
            thread_id="default",
            entry_type="comment",
            title="",
            body="a person's comment",
            created_at=2.0,
            reply_to=entry.id,
        )
        heartbeats.start_run(
            db, run_id="r1", thread_id="default", trigger=Trigger.SCHEDULE, dry_run=True, now=3.0
        )
        db.set_thread_watermark("reflection", "default", 3)
        db.advance_loop_watermark("reflection", 3)
        db.kv_set("agent_key", "secret")
        db.acquire_lease("loop:reflection", "old-host:1:x", 60)
        return {"last_message": last, "entry": entry.id}
    finally:
        db.close()


def test_copy_keeps_every_row_and_id_and_continues_after_them(
    tmp_path: Path, db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "crt.db"
    seeded = _seed(source)
    assert main(["db", "copy", "--from", str(source), "--to", db_url]) == 0
    assert "copied" in capsys.readouterr().out

    target = SessionDB(db_url)
    try:
        assert {t.thread_id for t in target.list_threads()} == {"default", "work"}
        assert target.require_thread("work").title == "Work again"
        texts = [m.content for m in target.list_messages("default")]
        assert texts == [f"message {i} at 100% effort" for i in range(5)]
        assert progress.committed_high_id(target, "messages") == 5  # 6 went with its thread
        entries = journal.list_entries(target, "default")
        assert {e.reply_to for e in entries} == {None, seeded["entry"]}
        assert heartbeats.get_run(target, "r1") is not None
        assert heartbeats.outcome_counts(target).get("running") == 1
        assert target.thread_watermark("reflection", "default") == 3
        assert target.loop_watermark("reflection") == 3
        assert target.kv_get("agent_key") == "secret"
        assert target.lease_holder("loop:reflection") is None  # the old host's leases stay behind
        # New rows continue after the copied ids, never below a watermark.
        assert target.add_message("work", "user", "after the move").id > seeded["last_message"]
    finally:
        target.close()


def test_copy_refuses_a_target_that_holds_data(tmp_path: Path, db_url: str) -> None:
    source = tmp_path / "crt.db"
    _seed(source)
    assert main(["db", "copy", "--from", str(source), "--to", db_url]) == 0
    assert main(["db", "copy", "--from", str(source), "--to", db_url]) == 5
    target = SessionDB(db_url)
    try:
        assert len(target.list_messages("default")) == 5  # nothing copied twice
    finally:
        target.close()


def test_copy_refuses_a_file_that_is_not_a_session_db(tmp_path: Path, db_url: str) -> None:
    other = tmp_path / "other.db"
    other.write_bytes(b"")
    assert main(["db", "copy", "--from", str(other), "--to", db_url]) == 5
    assert main(["db", "copy", "--from", str(tmp_path / "missing.db"), "--to", db_url]) == 5
