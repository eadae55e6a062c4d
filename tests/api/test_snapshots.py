"""Shared answers: kept until this process writes to the DB or their bound passes; a change
made elsewhere is visible within the bound, one made here at once."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient
from support.clock import FakeClock

from crt_loops.api.snapshots import Snapshots
from crt_loops.db.session import SessionDB


def test_kept_until_a_write_ends_here(tmp_path: Path, clock: FakeClock) -> None:
    db = SessionDB(tmp_path / "s.db", clock=clock)
    try:
        snapshots = Snapshots(ttl=1.0, clock=clock)
        builds: list[int] = []

        def build() -> int:
            builds.append(len(db.list_threads()))
            return builds[-1]

        assert snapshots.get("threads", lambda: db.writes_ended, build) == 1
        assert snapshots.get("threads", lambda: db.writes_ended, build) == 1
        assert len(builds) == 1
        db.ensure_thread("work")  # a write transaction ends here
        assert snapshots.get("threads", lambda: db.writes_ended, build) == 2
        assert len(builds) == 2
    finally:
        db.close()


def test_a_change_made_elsewhere_is_visible_within_the_bound(
    tmp_path: Path, clock: FakeClock
) -> None:
    here = SessionDB(tmp_path / "s.db", clock=clock)
    elsewhere = SessionDB(tmp_path / "s.db", clock=clock)  # another process's writes
    try:
        snapshots = Snapshots(ttl=1.0, clock=clock)

        def count() -> int:
            return snapshots.get("n", lambda: here.writes_ended, here.count_threads)

        assert count() == 1
        elsewhere.ensure_thread("work")
        clock.advance(0.5)
        assert count() == 1  # within the bound, still the kept answer
        clock.advance(0.5)
        assert count() == 2
    finally:
        here.close()
        elsewhere.close()


def test_a_failed_write_also_ends_the_kept_answer(tmp_path: Path, clock: FakeClock) -> None:
    db = SessionDB(tmp_path / "s.db", clock=clock)
    try:
        before = db.writes_ended
        try:
            with db.write():
                raise RuntimeError("rolled back")
        except RuntimeError:
            pass
        assert db.writes_ended == before + 1
    finally:
        db.close()


def test_the_poll_shows_a_new_thread_at_once(client: TestClient) -> None:
    def listed() -> list[str]:
        parts = client.get("/api/dashboard/poll").json()["parts"]
        [page] = [p for p in parts if p["path"] == "/api/threads?limit=100"]
        return [t["thread_id"] for t in page["body"]["threads"]]

    assert listed() == ["default"]
    client.post("/api/threads/notes/messages", json={"content": "hello"})
    assert listed()[0] == "notes"
    client.delete("/api/threads/notes")
    assert listed() == ["default"]


def test_a_write_batch_ends_the_kept_answer_when_it_commits(
    tmp_path: Path, clock: FakeClock
) -> None:
    db = SessionDB(tmp_path / "s.db", clock=clock)
    try:
        with db.write_batch(60.0):
            db.ensure_thread("work")
            inside = db.writes_ended
        assert db.writes_ended == inside + 1
    finally:
        db.close()
