"""``crt heartbeat history`` and ``crt heartbeat prompt``: a thread's runs, and what one sent."""

from __future__ import annotations

import argparse

from crt_loops.cli.http import EXIT_OK, Api, CLIError
from crt_loops.cli.output import dump_json, out, table, when
from crt_loops.core.enums import RunOutcome


def cmd_hb_history(api: Api, args: argparse.Namespace) -> int:
    data = api.get(f"/api/threads/{args.thread}/heartbeat/history", limit=args.limit)
    if args.json:
        dump_json(data)
        return EXIT_OK
    runs = data["runs"]
    if not runs:
        out(f"no heartbeat runs for thread {args.thread!r} yet")
        return EXIT_OK
    rows = [
        [
            when(r.get("started_at")),
            r.get("trigger"),
            r.get("outcome")
            + (" (dry)" if r.get("dry_run") and r["outcome"] != RunOutcome.DRY_RUN else ""),
            r.get("reason"),
            len(r.get("actions") or []),
            r.get("headline") or r.get("summary") or r.get("error"),
            r.get("run_id"),
        ]
        for r in runs
    ]
    out(table(["started", "trigger", "outcome", "reason", "actions", "what", "run"], rows))
    return EXIT_OK


def cmd_hb_prompt(api: Api, args: argparse.Namespace) -> int:
    run_id = args.run
    if run_id is None:  # the latest run that called the model
        runs = api.get(f"/api/threads/{args.thread}/heartbeat/history", limit=50)["runs"]
        run_id = next((r["run_id"] for r in runs if r.get("prompt_chars")), None)
        if run_id is None:
            raise CLIError(f"no run of thread {args.thread!r} has called the model yet", 1)
    data = api.get(f"/api/threads/{args.thread}/heartbeat/runs/{run_id}/prompt")
    if args.json:
        dump_json(data)
        return EXIT_OK
    cut = " (cut: the stored copy is capped)" if data.get("truncated") else ""
    out(f"# run {data['run_id']}, {when(data.get('created_at'))}, {data['chars']} chars{cut}")
    for message in data["messages"]:
        out(f"\n## {message['role']}\n{message['content']}")
    return EXIT_OK
