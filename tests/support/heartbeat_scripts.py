"""Fake-Ollama responders for heartbeat decisions (schema title ``HeartbeatDecision``)."""

from __future__ import annotations

import itertools
import json
import re
from typing import Any

from support.fake_ollama import FakeOllama, Reply

POST_ID_RE = re.compile(r"post_id=([A-Za-z0-9_-]+)")
_counter = itertools.count(1)


def prompt_text(request: dict[str, Any]) -> str:
    return "\n".join(str(m.get("content", "")) for m in request.get("messages", []))


def shown_post_ids(request: dict[str, Any]) -> list[str]:
    return POST_ID_RE.findall(prompt_text(request))


def decision(actions: list[dict[str, Any]], summary: str = "decided") -> str:
    return json.dumps({"actions": actions, "summary": summary})


def poster(request: dict[str, Any]) -> Reply:
    """Always posts something new (a unique title each call)."""
    n = next(_counter)
    return Reply(
        content=decision(
            [
                {
                    "type": "post",
                    "submolt": "general",
                    "title": f"Heartbeat note {n}",
                    "content": f"Observation number {n} from my owner's thread.",
                }
            ],
            f"posted note {n}",
        )
    )


def commenter(request: dict[str, Any]) -> Reply:
    """Comments on the first post the prompt showed, or stays silent when none was shown."""
    ids = shown_post_ids(request)
    if not ids:
        return Reply(content=decision([], "nothing to comment on"))
    n = next(_counter)
    return Reply(
        content=decision(
            [{"type": "comment", "post_id": ids[0], "content": f"Thoughtful reply {n}."}],
            "replied",
        )
    )


def silent(request: dict[str, Any]) -> Reply:
    return Reply(content="HEARTBEAT_OK")


def install(fake: FakeOllama, responder: Any = poster) -> None:
    fake.route("HeartbeatDecision", responder)
