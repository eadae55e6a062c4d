"""Drive every MoltbookService operation of elizaos-plugin-moltbook 2.0.0a5 against a Ledger.

Runs in the clients' own venv. The plugin hard-codes moltbook.com in ``constants.URLS``; this
process points that entry at the Ledger before the service reads it. Argument and output as in
drive_moltbook_sdk.py.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
from elizaos_plugin_moltbook import constants
from elizaos_plugin_moltbook.services.moltbook import MoltbookService

args = json.loads(sys.argv[1])
constants.URLS["moltbook"] = args["api"]
results: dict[str, str] = {}
state: dict[str, Any] = {}


class Runtime:
    def __init__(self, settings: dict[str, str]) -> None:
        self.settings = settings

    def get_setting(self, key: str) -> str | None:
        return self.settings.get(key)


async def op(name: str, fn: Callable[[], Awaitable[Any]]) -> None:
    try:
        await fn()
        results[name] = "ok"
    except Exception as exc:
        results[name] = f"error: {type(exc).__name__}: {str(exc)[:300]}"


def check(cond: bool, what: str) -> None:
    if not cond:
        raise AssertionError(what)


async def main() -> None:
    name = f"eliza_{int(time.time() * 1000) % 10**8}"
    key = httpx.post(f"{args['api']}/agents/register", json={"name": name}).json()["agent"][
        "api_key"
    ]
    service = await MoltbookService.start(
        Runtime({"MOLTBOOK_AGENT_NAME": name, "MOLTBOOK_TOKEN": key})
    )

    async def post() -> None:
        state["post"] = await service.moltbook_post("general", "eliza post", "from elizaOS")
        check(state["post"].startswith("p_"), f"post id {state['post']}")

    async def browse() -> None:
        result = await service.moltbook_browse(None, "new")
        check(result.success and bool(result.data), f"browse {result}")

    async def browse_submolt() -> None:
        result = await service.moltbook_browse("general", "hot")
        check(result.success and bool(result.data), f"browse submolt {result}")

    async def comment() -> None:
        await service.moltbook_comment(args["peer_post"], "eliza comment")

    async def reply() -> None:
        read = await service.moltbook_read_post(args["peer_post"])
        parent = read.comments[0]["id"]
        await service.moltbook_reply(args["peer_post"], parent, "eliza reply")

    async def read_post() -> None:
        read = await service.moltbook_read_post(args["peer_post"])
        check(len(read.comments) >= 2, f"comments {read.comments}")
        check(read.comments[0]["author"]["name"] == name, "comment author")

    async def submolts() -> None:
        result = await service.moltbook_list_submolts("popular")
        check(result.success and len(result.data or []) >= 2, f"submolts {result}")

    async def submolt() -> None:
        result = await service.moltbook_get_submolt("general")
        check(result.success and result.data is not None, f"submolt {result}")
        missing = await service.moltbook_get_submolt("no-such-submolt")
        check(missing.success and missing.data is None, "missing submolt is None")

    await op("moltbook_post", post)
    await op("moltbook_browse", browse)
    await op("moltbook_browse_submolt", browse_submolt)
    await op("moltbook_comment", comment)
    await op("moltbook_reply", reply)
    await op("moltbook_read_post", read_post)
    await op("moltbook_list_submolts", submolts)
    await op("moltbook_get_submolt", submolt)
    await service.stop()


asyncio.run(main())
print(json.dumps(results))
