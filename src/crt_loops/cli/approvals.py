"""``crt approvals``: the heartbeat actions waiting for the owner, and approving or rejecting one.

    crt approvals [list] [--thread T]          what waits, the one expiring first first
    crt approvals approve ID [--title T] [--content C]   send it (edited), once
    crt approvals reject ID [--reason R]       decline it; the model sees the reason next time

Approving an action that is no longer proposed (already decided, expired) exits 5 (conflict)
with the service's sentence naming its state.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from crt_loops.cli.http import EXIT_OK, Api
from crt_loops.cli.output import clip, dump_json, out, pairs, table, when

Add = Callable[[Any, str, Callable[..., int], str], argparse.ArgumentParser]


def _text(item: dict[str, Any]) -> str:
    if item.get("type") == "post":
        return f"[{item.get('submolt')}] {item.get('title')}: {item.get('content')}"
    if item.get("type") == "comment":
        return f"on {item.get('post_id')}: {item.get('content')}"
    return f"{item.get('direction')}vote on {item.get('post_id')}"


def cmd_list(api: Api, args: argparse.Namespace) -> int:
    thread = getattr(args, "thread", None)
    data = api.get("/api/approvals", **({"thread_id": thread} if thread else {}))
    if args.json:
        dump_json(data)
        return EXIT_OK
    items = data["approvals"]
    if not items:
        out("nothing is waiting for your approval")
        return EXIT_OK
    rows = [
        [
            i["action_id"],
            i["thread_id"],
            i["type"],
            clip(_text(i), 70),
            when(i.get("expires_at")),
        ]
        for i in items
    ]
    out(table(["id", "thread", "type", "action", "expires"], rows))
    out("approve with `crt approvals approve ID` (--title/--content to edit), or reject it")
    return EXIT_OK


def _print(action: dict[str, Any]) -> None:
    out(
        pairs(
            [
                ("action", action.get("action_id")),
                ("thread", action.get("thread_id")),
                ("state", action.get("state")),
                ("what", _text(action)),
                ("ledger id", action.get("ledger_id") or "-"),
                ("error", action.get("error") or "-"),
            ]
        )
    )


def cmd_approve(api: Api, args: argparse.Namespace) -> int:
    edits = {k: v for k, v in (("title", args.title), ("content", args.content)) if v is not None}
    action = api.post(f"/api/approvals/{args.id}/approve", edits or None)
    if args.json:
        dump_json(action)
    else:
        _print(action)
    return EXIT_OK


def cmd_reject(api: Api, args: argparse.Namespace) -> int:
    body = {"reason": args.reason} if args.reason else None
    action = api.post(f"/api/approvals/{args.id}/reject", body)
    if args.json:
        dump_json(action)
    else:
        _print(action)
    return EXIT_OK


def add_parsers(sub: Any, add: Add) -> None:
    """``crt approvals`` and its actions, on the main parser's subcommands."""
    approvals = add(sub, "approvals", cmd_list, "heartbeat actions waiting for your approval")
    approvals.add_argument("--thread", help="only this thread's")
    actions = approvals.add_subparsers(dest="action", metavar="ACTION")
    listing = add(actions, "list", cmd_list, "what waits for your approval (the default)")
    listing.add_argument("--thread", help="only this thread's")
    approve = add(actions, "approve", cmd_approve, "approve an action (optionally edited)")
    approve.add_argument("id", type=int, metavar="ID")
    approve.add_argument("--title", help="send this title instead (posts)")
    approve.add_argument("--content", help="send this text instead")
    reject = add(actions, "reject", cmd_reject, "reject an action")
    reject.add_argument("id", type=int, metavar="ID")
    reject.add_argument("--reason", help="why (the model sees it in its next heartbeats)")
