"""What every response model shares: the base class, an example helper, a sample time."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

ISO = "2026-03-01T09:30:00Z"


def _absent(value: Any) -> bool:
    return value is None


class Out(BaseModel):
    """Base of the response models: unknown keys pass through untouched."""

    model_config = ConfigDict(extra="allow")


def _example(example: dict[str, Any]) -> ConfigDict:
    return ConfigDict(extra="allow", json_schema_extra={"examples": [example]})
