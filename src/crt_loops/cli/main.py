"""``crt``: the command line for a running CRT Loops service.

Every command but ``serve`` talks to the service over HTTP (``--url``, else ``CRT_URL``, else
``HOST``/``PORT`` like ``make run``, else http://127.0.0.1:8000) and sends ``CRT_API_TOKEN``
as a Bearer token when it is set. Output is
a readable table by default and the service's JSON with ``--json``. The exit code says what
happened (see ``EXIT_CODES``), so scripts can tell a failed heartbeat from a typo.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from crt_loops.cli import approvals as approvals_cli
from crt_loops.cli import chat as chat_commands
from crt_loops.cli import db as db_cli
from crt_loops.cli.args import CrtParser, package_version, positive_seconds, service_url
from crt_loops.cli.demo import cmd_demo
from crt_loops.cli.http import (
    DEFAULT_TIMEOUT,
    DEFAULT_URL,
    EXIT_CODES,
    EXIT_CONFLICT,
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    MD_PATH,
    RUN_TIMEOUT,
    Api,
    CLIError,
    run_heartbeat,
)
from crt_loops.cli.output import (
    dump_json,
    duration,
    err,
    out,
    pairs,
    print_run,
    progress,
    table,
    when,
)
from crt_loops.cli.runs import cmd_hb_history, cmd_hb_prompt
from crt_loops.core.enums import RunOutcome

#: 128 + SIGPIPE, what a shell reports for a writer whose reader went away.
EXIT_BROKEN_PIPE = 141

LOOP_NAMES = ("reflection", "personality", "journal_self_reply", "heartbeat")


# -- commands --------------------------------------------------------------------------------


def cmd_status(api: Api, args: argparse.Namespace) -> int:
    health = api.get("/health")
    loops = api.get("/api/loops")["loops"]
    hb = api.get("/api/heartbeat/status")
    try:
        ledger: dict[str, Any] = api.get("/api/ledger/status")
    except CLIError as exc:
        if exc.code != EXIT_FAILED:
            raise
        ledger = {"error": str(exc), "reachable": False}
    if args.json:
        dump_json({"health": health, "loops": loops, "heartbeat": hb, "ledger": ledger})
        return EXIT_OK
    out(
        f"CRT Loops {health.get('version', '?')} at {api.url}: {health.get('status')}, "
        f"up {duration(health.get('uptime_seconds'))}, db {health.get('db')}"
    )
    out()
    out(loops_table(loops))
    out()
    counts = ", ".join(f"{k} {v}" for k, v in sorted(hb.get("runs_by_outcome", {}).items()))
    due = hb.get("next_due")
    if not hb.get("running"):
        # A due time means nothing while the loop is stopped: say so, and how to start it.
        schedule = "the loop is stopped, no run is due (start it: `crt loops start heartbeat`)"
    elif due:
        schedule = f"next due: {due['thread_id']} {when(due.get('at'))}"
    else:
        schedule = "next due: none"
    out(
        f"Heartbeat  {'running' if hb.get('running') else 'stopped'}; "
        f"{hb.get('threads_enabled', 0)} thread(s) enabled; {schedule}"
        f"; runs: {counts or 'none yet'}"
    )
    llm = hb.get("llm", {})
    if llm.get("available"):
        out(f"LLM        {llm.get('model')} at {llm.get('host')}: available")
    elif llm.get("enabled") is False:
        out("LLM        disabled (CRT_LLM_ENABLED=false): heuristics only")
    else:
        out(
            f"LLM        {llm.get('model')} at {llm.get('host')}: UNAVAILABLE; loops use "
            "heuristics, heartbeats skip (start Ollama, then `ollama pull llama3.2`)"
        )
    if "url" in ledger:
        kind = "embedded" if ledger.get("embedded") else "external"
        state = "reachable" if ledger.get("reachable") else f"UNREACHABLE ({ledger.get('error')})"
        out(f"Ledger     {ledger['url']} ({kind}), agent {ledger.get('agent_name')}: {state}")
    else:
        out(f"Ledger     unavailable: {ledger.get('error')}")
    return EXIT_OK


def loops_table(loops: Sequence[dict[str, Any]]) -> str:
    rows = [
        [
            loop["name"],
            loop.get("state"),
            duration(loop.get("interval_seconds")),
            loop.get("ticks"),
            loop.get("failures"),
            when(loop.get("last_tick_at")),
            when(loop.get("next_wake_at")),
            loop.get("last_error"),
        ]
        for loop in loops
    ]
    headers = ["loop", "state", "every", "ticks", "failures", "last tick", "next", "last error"]
    return table(headers, rows)


def cmd_loops(api: Api, args: argparse.Namespace) -> int:
    action = args.action or "list"
    if action == "list":
        loops = api.get("/api/loops")["loops"]
        if args.json:
            dump_json(loops)
        else:
            out(loops_table(loops))
        return EXIT_OK
    with progress(f"{action}ing the {args.name} loop"):
        result = api.post(f"/api/loops/{args.name}/{action}", timeout=RUN_TIMEOUT)
    if args.json:
        dump_json(result)
    if action == "start":
        if not args.json:
            out(f"{args.name}: {'started' if result['started'] else 'already running'}")
        return EXIT_OK
    if not result["stopped"]:
        err(f"{args.name}: still stopping (its current pass has not finished); it stops after it")
        return EXIT_FAILED
    if not args.json:
        out(f"{args.name}: stopped")
    return EXIT_OK


def config_patch(args: argparse.Namespace) -> dict[str, Any]:
    patch: dict[str, Any] = {}
    if args.enabled is not None:
        patch["enabled"] = args.enabled
    if args.every is not None:
        patch["every"] = int(args.every) if args.every.isdigit() else args.every
    names = ("target", "max_actions", "max_tokens", "temperature", "dry_run", "submolt")
    for name in (*names, "approval", "approval_ttl"):
        value = getattr(args, name)
        if value is not None:
            patch[name] = value
    if args.skip_when_unchanged is not None:
        patch["skip_when_unchanged"] = args.skip_when_unchanged
    for name in ("model", "timezone"):
        value = getattr(args, name)
        if value is not None:
            patch[name] = None if value.strip().lower() in ("", "none", "default") else value
    if args.active_hours is not None:
        patch["active_hours_start"], patch["active_hours_end"] = args.active_hours
    return patch


def print_config(view: dict[str, Any]) -> None:
    cfg = view["config"]
    hours = (
        f"{cfg.get('active_hours_start')}-{cfg.get('active_hours_end')}"
        if cfg.get("active_hours_start") is not None
        else "all day"
    )
    out(f"Heartbeat config of thread {view['thread_id']!r}")
    out(
        pairs(
            [
                ("enabled", cfg.get("enabled")),
                ("every", duration(cfg.get("every_seconds"))),
                ("target", cfg.get("target")),
                ("dry_run", cfg.get("dry_run")),
                ("active hours", hours),
                ("timezone", cfg.get("timezone") or "default (CRT_TIMEZONE / host)"),
                ("model", cfg.get("model") or "default (CRT_OLLAMA_MODEL)"),
                ("max_actions", cfg.get("max_actions")),
                ("max_tokens", cfg.get("max_tokens")),
                ("temperature", cfg.get("temperature")),
                ("skip_when_unchanged", cfg.get("skip_when_unchanged")),
                ("submolt", cfg.get("submolt")),
                ("approval", cfg.get("approval", "none")),
                (
                    "last run",
                    f"{when(view.get('last_run'))}: {view.get('last_outcome') or '-'}"
                    + (f"/{view['last_reason']}" if view.get("last_reason") else ""),
                ),
                ("last summary", view.get("last_summary")),
                ("next due", when(view.get("next_due_at")) if cfg.get("enabled") else "-"),
            ]
        )
    )


def cmd_hb_config(api: Api, args: argparse.Namespace) -> int:
    path = f"/api/threads/{args.thread}/heartbeat/config"
    patch = config_patch(args)
    view = api.post(path, patch) if patch else api.get(path)
    if args.json:
        dump_json(view)
    else:
        print_config(view)
    return EXIT_OK


def cmd_hb_run(api: Api, args: argparse.Namespace) -> int:
    run = run_heartbeat(api, args.thread, dry_run=args.dry_run)
    if args.json:
        dump_json(run)
    else:
        print_run(run)
    return EXIT_FAILED if run.get("outcome") == RunOutcome.FAILED else EXIT_OK


def md_note(doc: dict[str, Any]) -> str:
    empty = " EFFECTIVELY EMPTY: heartbeats are skipped" if doc.get("effectively_empty") else ""
    return f"# {doc.get('path')} sha256 {str(doc.get('sha256'))[:12]}{empty}"


def cmd_md_show(api: Api, args: argparse.Namespace) -> int:
    doc = api.get(MD_PATH)
    if args.json:
        dump_json(doc)
        return EXIT_OK
    sys.stdout.write(doc["content"])
    if doc["content"] and not doc["content"].endswith("\n"):
        sys.stdout.write("\n")
    err(md_note(doc))
    return EXIT_OK


def save_md(api: Api, args: argparse.Namespace, content: str, expected: str | None) -> int:
    body: dict[str, Any] = {"content": content}
    if expected:
        body["expected_sha256"] = expected
    doc = api.post(MD_PATH, body)
    if args.json:
        dump_json(doc)
    else:
        out(f"saved HEARTBEAT.md ({len(content.encode())} bytes)")
        out(md_note(doc))
    return EXIT_OK


def cmd_md_set(api: Api, args: argparse.Namespace) -> int:
    try:
        content = sys.stdin.read() if args.file == "-" else Path(args.file).read_text("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CLIError(f"cannot read {args.file}: {exc}", EXIT_USAGE) from exc
    return save_md(api, args, content, args.expected_sha256)


def cmd_md_edit(api: Api, args: argparse.Namespace) -> int:
    doc = api.get(MD_PATH)
    editor = os.environ.get("VISUAL") or os.environ.get("EDITOR") or "vi"
    fd, name = tempfile.mkstemp(prefix="HEARTBEAT-", suffix=".md")
    path = Path(name)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(doc["content"])
    try:
        result = subprocess.run([*shlex.split(editor), str(path)], check=False)  # noqa: S603
    except OSError as exc:
        path.unlink(missing_ok=True)
        raise CLIError(
            f"cannot start the editor {editor!r} (set EDITOR): {exc}", EXIT_USAGE
        ) from exc
    if result.returncode != 0:
        path.unlink(missing_ok=True)
        raise CLIError(f"the editor exited with {result.returncode}; nothing saved", EXIT_FAILED)
    content = path.read_text(encoding="utf-8")
    if content == doc["content"]:
        path.unlink(missing_ok=True)
        out("no changes; HEARTBEAT.md left as it was")
        return EXIT_OK
    try:
        code = save_md(api, args, content, doc["sha256"])
    except CLIError as exc:
        if exc.code == EXIT_CONFLICT:
            raise CLIError(
                f"{exc}\nHEARTBEAT.md was changed by someone else while you edited it; nothing "
                f"was overwritten. Your version is kept at {path}: merge it and save with "
                f"`crt heartbeat-md set {path}`",
                EXIT_CONFLICT,
            ) from exc
        raise
    path.unlink(missing_ok=True)
    return code


def cmd_ledger_feed(api: Api, args: argparse.Namespace) -> int:
    feed = api.get("/api/ledger/feed", sort=args.sort, limit=args.limit)
    if args.json:
        dump_json(feed)
        return EXIT_OK
    posts = feed["posts"]
    if not posts:
        out("the Ledger has no posts yet")
        return EXIT_OK
    rows = [
        [
            p.get("score"),
            p.get("comment_count"),
            p.get("submolt"),
            p.get("author"),
            p["title"],
            p.get("url") or p["id"],
        ]
        for p in posts
    ]
    out(table(["score", "comments", "submolt", "author", "title", "page"], rows))
    return EXIT_OK


def cmd_serve(args: argparse.Namespace) -> int:
    from crt_loops.cli.serve import exit_now, serve  # only this command needs the server

    code = serve(host=args.host, port=args.port, workers=args.workers, log_level=args.log_level)
    exit_now(code)


# -- demo ------------------------------------------------------------------------------------


# -- arguments -------------------------------------------------------------------------------


def active_hours(value: str) -> tuple[str | int | None, str | int | None]:
    """``09:00-17:00`` or ``9-17``; ``none`` clears the window (all day)."""
    if value.strip().lower() in ("", "none", "off", "all"):
        return None, None
    start, sep, end = value.partition("-")
    if not sep or not start.strip() or not end.strip():
        raise argparse.ArgumentTypeError(
            f"expected START-END such as 09:00-17:00 or 9-17 (or 'none'), got {value!r}"
        )

    def one(part: str) -> str | int:
        part = part.strip()
        return int(part) if part.isdigit() else part

    return one(start), one(end)


def build_parser() -> argparse.ArgumentParser:
    codes = "\n".join(
        textwrap.fill(text, 92, initial_indent=f"  {code}  ", subsequent_indent="     ")
        for code, text in EXIT_CODES.items()
    )
    common = CrtParser(add_help=False)
    common.add_argument(
        "--url",
        default=argparse.SUPPRESS,
        help=f"the service's base URL (default: $CRT_URL, else {DEFAULT_URL})",
    )
    common.add_argument(
        "--json", action="store_true", default=argparse.SUPPRESS, help="print the raw JSON"
    )
    common.add_argument(
        "--timeout",
        type=positive_seconds,
        default=argparse.SUPPRESS,
        help=f"seconds to wait for an answer (default {DEFAULT_TIMEOUT:.0f}; runs wait longer)",
    )
    parser = CrtParser(
        prog="crt",
        parents=[common],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Drive a running CRT Loops service: its loops, heartbeats, HEARTBEAT.md "
        "and the Ledger.",
        epilog="environment:\n"
        "  CRT_URL        the service's base URL (default http://$HOST:$PORT, as make run)\n"
        "  CRT_API_TOKEN  sent as 'Authorization: Bearer <token>' when set\n"
        "  EDITOR/VISUAL  the editor of `crt heartbeat-md edit`\n\n"
        f"exit codes:\n{codes}",
    )
    parser.add_argument("--version", action="version", version=f"crt {package_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    def add(
        parent: Any, name: str, handler: Callable[..., int], help_text: str
    ) -> argparse.ArgumentParser:
        p: argparse.ArgumentParser = parent.add_parser(
            name, parents=[common], help=help_text, description=help_text
        )
        p.set_defaults(handler=handler)
        return p

    serve = add(sub, "serve", cmd_serve, "run the service (uvicorn crt_api:app)")
    serve.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"))
    serve.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
    serve.add_argument("--workers", type=int, default=1)
    serve.add_argument(
        "--log-level",
        default=None,
        choices=["critical", "error", "warning", "info", "debug"],
        help="default: CRT_LOG_LEVEL",
    )

    add(sub, "status", cmd_status, "the loops, the heartbeat, the LLM and the Ledger")
    chat_commands.add_commands(sub, add)

    loops = add(sub, "loops", cmd_loops, "list the loops, or start/stop one at run time")
    loop_sub = loops.add_subparsers(dest="action", metavar="ACTION")
    add(loop_sub, "list", cmd_loops, "status of every loop")
    for action in ("start", "stop"):
        p = add(loop_sub, action, cmd_loops, f"{action} a loop")
        p.add_argument("name", choices=LOOP_NAMES, metavar="NAME", help=", ".join(LOOP_NAMES))

    hb = add(sub, "heartbeat", _missing_action, "a thread's heartbeat: config, run, history")
    hb_sub = hb.add_subparsers(dest="action", metavar="ACTION")
    config = add(
        hb_sub,
        "config",
        cmd_hb_config,
        "show a thread's heartbeat config, or change the given fields (a partial update)",
    )
    config.add_argument("thread", metavar="THREAD")
    onoff = config.add_mutually_exclusive_group()
    onoff.add_argument("--enable", dest="enabled", action="store_const", const=True)
    onoff.add_argument("--disable", dest="enabled", action="store_const", const=False)
    config.set_defaults(enabled=None)
    config.add_argument("--every", help="interval: seconds, or 30m, 1h, 1h30m (10 s to 7 days)")
    config.add_argument(
        "--target", help="any, none, post, comment, vote, or a list such as comment,vote"
    )
    config.add_argument(
        "--dry-run", action=argparse.BooleanOptionalAction, default=None, help="send nothing"
    )
    config.add_argument(
        "--active-hours",
        type=active_hours,
        metavar="START-END",
        help="e.g. 09:00-17:00 or 22-6 (wraps past midnight); 'none': all day",
    )
    config.add_argument("--timezone", help="IANA zone, e.g. Europe/Berlin; 'none': the default")
    config.add_argument("--model", help="Ollama model; 'default': CRT_OLLAMA_MODEL")
    config.add_argument("--max-actions", type=int, help="1 to 5 actions per run")
    config.add_argument("--max-tokens", type=int, help="1 to 8192")
    config.add_argument("--temperature", type=float, help="0 to 2")
    config.add_argument(
        "--skip-when-unchanged",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="no LLM call when nothing changed since the last run",
    )
    config.add_argument("--submolt", help="default submolt for posts")
    config.add_argument(
        "--approval",
        choices=["none", "posts", "all"],
        help="posts or all: actions wait for `crt approvals approve`",
    )
    config.add_argument("--approval-ttl", help="an unanswered proposal expires after (24h)")

    run = add(hb_sub, "run", cmd_hb_run, "run one heartbeat now and show the run")
    run.add_argument("thread", metavar="THREAD")
    run.add_argument("--dry-run", action="store_true", help="decide and record, send nothing")

    history = add(hb_sub, "history", cmd_hb_history, "a thread's heartbeat runs, newest first")
    history.add_argument("thread", metavar="THREAD")
    history.add_argument("--limit", type=int, default=20)
    prompt = add(hb_sub, "prompt", cmd_hb_prompt, "what a run sent the model (secrets masked)")
    prompt.add_argument("thread", metavar="THREAD")
    prompt.add_argument("run", metavar="RUN_ID", nargs="?", help="default: the latest with one")

    md = add(sub, "heartbeat-md", _missing_action, "show or change HEARTBEAT.md")
    md_sub = md.add_subparsers(dest="action", metavar="ACTION")
    add(md_sub, "show", cmd_md_show, "print HEARTBEAT.md (its path and sha256 go to stderr)")
    add(
        md_sub,
        "edit",
        cmd_md_edit,
        "edit HEARTBEAT.md in $EDITOR; refuses to overwrite a version saved meanwhile",
    )
    md_set = add(md_sub, "set", cmd_md_set, "replace HEARTBEAT.md with FILE ('-': stdin)")
    md_set.add_argument("file", metavar="FILE")
    md_set.add_argument(
        "--expected-sha256", help="only replace the version with this sha256 (else exit 5)"
    )

    approvals_cli.add_parsers(sub, add)
    db_cli.add_parsers(sub, add)

    ledger = add(sub, "ledger", _missing_action, "the Ledger as the service sees it")
    ledger_sub = ledger.add_subparsers(dest="action", metavar="ACTION")
    feed = add(ledger_sub, "feed", cmd_ledger_feed, "the Ledger's feed")
    feed.add_argument("--sort", choices=["hot", "new", "top"], default="hot")
    feed.add_argument("--limit", type=int, default=25)

    add(
        sub,
        "demo",
        cmd_demo,
        "seed a 'demo' thread and neighbour posts, then run a dry run and a real heartbeat",
    )
    return parser


def _missing_action(api: Api, args: argparse.Namespace) -> int:
    raise CLIError(f"`crt {args.command}` needs an action; see `crt {args.command} --help`", 2)


def report_error(message: str, code: int, *, as_json: bool) -> None:
    if as_json:
        err(json.dumps({"error": message, "exit_code": code}))
    else:
        err(f"crt: error: {message}")


def main(argv: Sequence[str] | None = None) -> int:
    """Run one ``crt`` command; returns its exit code (see ``EXIT_CODES``)."""
    try:
        code = _main(argv)
        sys.stdout.flush()  # here, where a closed pipe can still be caught
        return code
    except BrokenPipeError:
        # `crt ... | head` closed our stdout: stop quietly, and keep Python's final flush from
        # printing the same error again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_BROKEN_PIPE


def _main(argv: Sequence[str] | None) -> int:
    parser = build_parser()
    wants_json = "--json" in (sys.argv[1:] if argv is None else list(argv))
    CrtParser.json_errors = wants_json
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse: --help (0) or a usage error (2)
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    args.json = getattr(args, "json", False) or wants_json
    if args.command == "serve":
        return cmd_serve(args)
    url = getattr(args, "url", None) or service_url()
    token = os.environ.get("CRT_API_TOKEN") or None
    api = Api(url, token, getattr(args, "timeout", DEFAULT_TIMEOUT))
    try:
        code: int = args.handler(api, args)
        return code
    except CLIError as exc:
        report_error(str(exc), exc.code, as_json=args.json)
        return exc.code
    except KeyboardInterrupt:
        report_error("interrupted", 130, as_json=args.json)
        return 130
    finally:
        api.close()


if __name__ == "__main__":
    sys.exit(main())
