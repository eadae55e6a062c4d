"""The service's ASGI entry point: ``uvicorn crt_api:app``.

``app`` is built from the environment's settings when this module is imported; building starts
nothing (the lifespan does). Code that wants its own settings calls ``create_app(settings)``.
"""

from __future__ import annotations

from crt_loops.api.app import create_app

__all__ = ["app", "create_app"]

app = create_app()
