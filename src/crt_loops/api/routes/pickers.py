"""What the dashboard's pickers offer: the LLM server's models and the IANA time zones."""

from __future__ import annotations

import functools
import zoneinfo
from typing import Annotated, Any

from fastapi import APIRouter, Depends

from crt_loops.api.routes import responses as out
from crt_loops.api.routes.deps import get_llm
from crt_loops.llm.client import LLM, LLMError

router = APIRouter(tags=["pickers"])


@functools.cache
def _zones() -> list[str]:
    # The tzdata package ships the names; "localtime" and "posix/..." are not zones to pick.
    return sorted(
        z
        for z in zoneinfo.available_timezones()
        if "/" in z or z == "UTC"
        if not z.startswith(("posix/", "right/", "Etc/"))
    )


@router.get(
    "/api/timezones",
    summary="IANA time zone names, for active hours",
    response_model=out.TimezoneList,
)
def timezones() -> dict[str, list[str]]:
    return {"timezones": _zones()}


@router.get(
    "/api/llm/models",
    summary="The models the LLM server has (empty when unreachable)",
    response_model=out.ModelList,
)
def models(llm: Annotated[LLM, Depends(get_llm)]) -> dict[str, Any]:
    try:
        names = llm.models(refresh=True)
    except LLMError as exc:
        return {"default": llm.model, "models": [], "error": str(exc)}
    if names is None:
        return {
            "default": llm.model,
            "models": [],
            "error": f"the LLM server at {llm.host} did not list its models",
        }
    return {"default": llm.model, "models": names, "error": None}
