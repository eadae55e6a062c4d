"""``crt threads`` and ``crt chat``: talking with the agent from a terminal.

``crt chat THREAD MESSAGE`` sends one message and prints the reply; without MESSAGE it is a
conversation (one line per message, an empty line or Ctrl-D ends it). The reply is printed as the
model writes it (the chat API's ``stream`` mode); until its first words arrive a terminal shows a
spinner. ``--json`` prints the whole answer as one object instead.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from crt_loops.cli.args import positive_int
from crt_loops.cli.http import EXIT_FAILED, EXIT_OK, Api, CLIError, status_error
from crt_loops.cli.output import clip, dump_json, out, pairs, progress, table, when, write

#: The LLM's own timeout is 120 s by default; the chat request waits a little longer.
CHAT_TIMEOUT = 300.0
PROMPT = "you> "


def _score(message: dict[str, Any]) -> str:
    score = message.get("importance")
    return "-" if score is None else str(score)


def cmd_threads_list(api: Api, args: argparse.Namespace) -> int:
    data = api.get("/api/threads", limit=args.limit)
    if args.json:
        dump_json(data)
        return EXIT_OK
    rows = [[t["thread_id"], t.get("title"), when(t.get("updated_at"))] for t in data["threads"]]
    out(table(["thread", "title", "updated"], rows) if rows else "No threads yet.")
    if data.get("total", 0) > len(rows):
        out(f"({len(rows)} of {data['total']}; --limit N for more)")
    return EXIT_OK


def cmd_threads_show(api: Api, args: argparse.Namespace) -> int:
    thread = api.get(f"/api/threads/{args.thread}")
    messages = api.get(f"/api/threads/{args.thread}/messages", limit=1, newest="true")
    if args.json:
        dump_json({"thread": thread, "latest_message": (messages["messages"] or [None])[-1]})
        return EXIT_OK
    latest = (messages["messages"] or [None])[-1]
    out(
        pairs(
            [
                ("thread", thread["thread_id"]),
                ("title", thread.get("title")),
                ("created", when(thread.get("created_at"))),
                ("updated", when(thread.get("updated_at"))),
                ("latest", f"{latest['role']}: {latest['content']}" if latest else None),
            ]
        )
    )
    return EXIT_OK


def cmd_threads_messages(api: Api, args: argparse.Namespace) -> int:
    data = api.get(f"/api/threads/{args.thread}/messages", limit=args.limit, newest="true")
    if args.json:
        dump_json(data)
        return EXIT_OK
    rows = [
        [m["id"], when(m.get("created_at")), m["role"], _score(m), clip(m["content"], 70)]
        for m in data["messages"]
    ]
    out(table(["id", "when", "role", "importance", "message"], rows) if rows else "No messages.")
    return EXIT_OK


def _send(api: Api, thread: str, message: str) -> dict[str, Any]:
    with progress("waiting for the agent's reply"):
        reply: dict[str, Any] = api.post(
            f"/api/threads/{thread}/chat", {"message": message}, timeout=CHAT_TIMEOUT
        )
    return reply


def _stream(api: Api, thread: str, message: str, prefix: str = "") -> dict[str, Any]:
    """Print the reply as it is written (after ``prefix``); the final answer is returned."""
    path = f"/api/threads/{thread}/chat"
    events = api.stream_lines(path, {"message": message, "stream": True}, timeout=CHAT_TIMEOUT)
    shown = ""
    with progress("waiting for the agent's reply") as spinner:
        for event in events:
            kind = event.get("event")
            if kind == "text":
                piece = str(event.get("text", ""))
                if not shown:
                    piece = piece.lstrip()
                    if not piece:
                        continue
                    spinner.stop()
                    write(prefix)
                write(piece)
                shown += piece
            elif kind == "done":
                reply = str(event.get("reply", ""))
                # The stored reply is the authority (a cut mark, an empty reply's note).
                if not shown:
                    spinner.stop()
                    write(prefix + reply)
                elif reply.startswith(shown):
                    write(reply[len(shown) :])
                else:
                    write("\n" + reply)
                write("\n")
                return event
            elif kind == "error":
                if shown:
                    write("\n")
                status = int(event.get("status") or 500)
                raise status_error(status, f"POST {path}: {event.get('detail')}")
    if shown:
        write("\n")
    raise CLIError(f"POST {path}: the answer ended before the reply did", EXIT_FAILED)


def cmd_chat(api: Api, args: argparse.Namespace) -> int:
    if args.message:
        if args.json:
            dump_json(_send(api, args.thread, " ".join(args.message)))
        else:
            _stream(api, args.thread, " ".join(args.message))
        return EXIT_OK
    interactive = sys.stdin.isatty()
    if interactive:
        out(f"Chatting in thread {args.thread!r}; an empty line or Ctrl-D ends.")
    while True:
        try:
            line = input(PROMPT if interactive else "")
        except EOFError:
            break
        if not line.strip():
            break
        try:
            if args.json:
                dump_json(_send(api, args.thread, line))
            else:
                _stream(api, args.thread, line, prefix="agent> " if interactive else "")
        except CLIError as exc:
            if not interactive:
                raise
            # In a conversation one failed message is said and the next one can be tried.
            out(f"(not answered: {exc})")
    return EXIT_OK


def add_commands(sub: Any, add: Any) -> None:
    """Register ``threads`` and ``chat`` on the CLI's subparsers (``add`` is its helper)."""
    threads = add(sub, "threads", cmd_threads_list, "list threads, show one, or read its messages")
    threads.set_defaults(limit=50)
    actions = threads.add_subparsers(dest="action", metavar="ACTION")
    listing = add(actions, "list", cmd_threads_list, "the threads, most recently active first")
    listing.add_argument("--limit", type=positive_int, default=50)
    show = add(actions, "show", cmd_threads_show, "one thread and its latest message")
    show.add_argument("thread", metavar="THREAD")
    msgs = add(actions, "messages", cmd_threads_messages, "a thread's latest messages, scored")
    msgs.add_argument("thread", metavar="THREAD")
    msgs.add_argument("--limit", type=positive_int, default=20)
    chat = add(
        sub, "chat", cmd_chat, "talk with the agent in THREAD (a conversation without MESSAGE)"
    )
    chat.add_argument("thread", metavar="THREAD")
    chat.add_argument("message", nargs="*", metavar="MESSAGE")
