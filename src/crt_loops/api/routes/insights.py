"""What the loops think about a thread: its reflection state and its personality profile."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends

from crt_loops.api.routes import responses as out
from crt_loops.api.routes.deps import DB, ExistingThread, get_settings
from crt_loops.mind.personality import personality_view
from crt_loops.mind.reflection import reflection_view
from crt_loops.settings import Settings

router = APIRouter(prefix="/api/threads/{thread_id}", tags=["insights"])

AppSettings = Annotated[Settings, Depends(get_settings)]


@router.get(
    "/reflection",
    summary="Importance since the last reflection, the latest reflection, the topic scorecard",
    response_model=out.ReflectionView,
)
def get_reflection(thread_id: ExistingThread, db: DB, settings: AppSettings) -> dict[str, Any]:
    return reflection_view(db, thread_id, threshold=settings.reflection_threshold)


@router.get(
    "/personality",
    summary="The thread's style profile, its version and recent history",
    response_model=out.PersonalityView,
)
def get_personality(thread_id: ExistingThread, db: DB) -> dict[str, Any]:
    return personality_view(db, thread_id)
