"""The startup heap is frozen out of the collector while the app runs, and given back after."""

from __future__ import annotations

import gc
from collections.abc import Callable

from fastapi.testclient import TestClient
from support.service import LOCAL

from crt_loops.api.app import create_app
from crt_loops.core import heap
from crt_loops.settings import Settings


def test_freeze_then_unfreeze() -> None:
    try:
        frozen = heap.freeze_startup_objects()
        # Frozen objects that die meanwhile (another test's threads still let go of theirs in
        # this process) leave the count; none joins it but by another freeze.
        assert 0 < gc.get_freeze_count() <= frozen
    finally:
        heap.unfreeze()
    assert gc.get_freeze_count() == 0


def test_the_lifespan_freezes_after_startup_and_unfreezes_at_shutdown(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings(
        reflection_loop_enabled=False,
        personality_loop_enabled=False,
        journal_self_reply_loop_enabled=False,
    )
    with TestClient(create_app(settings), client=LOCAL) as client:
        assert gc.get_freeze_count() > 0
        assert client.get("/health").status_code == 200
    assert gc.get_freeze_count() == 0
