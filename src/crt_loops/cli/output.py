"""The CLI's output: plain tables, relative times, a spinner on a terminal, runs."""

from __future__ import annotations

import itertools
import json
import sys
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, TextIO

from crt_loops.core import wording

CLIP = 60


def out(text: str = "") -> None:
    print(text, file=sys.stdout)


def write(text: str) -> None:
    """``text`` on stdout at once, without a newline (a reply arriving piece by piece)."""
    sys.stdout.write(text)
    sys.stdout.flush()


def err(text: str) -> None:
    print(text, file=sys.stderr)


def dump_json(data: Any) -> None:
    out(json.dumps(data, indent=2, sort_keys=False))


def clip(value: Any, limit: int = CLIP) -> str:
    text = "-" if value is None or value == "" else " ".join(str(value).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    cells = [[clip(c) for c in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in cells:
        widths = [max(w, len(c)) for w, c in zip(widths, row, strict=True)]
    lines = ["  ".join(h.upper().ljust(w) for h, w in zip(headers, widths, strict=True))]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in cells]
    return "\n".join(line.rstrip() for line in lines)


def pairs(items: Sequence[tuple[str, Any]]) -> str:
    width = max(len(k) for k, _ in items)
    return "\n".join(f"{k.ljust(width)}  {clip(v, 200)}" for k, v in items)


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    s = round(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m" + (f"{s % 60}s" if s % 60 else "")
    if s < 86400:
        return f"{s // 3600}h" + (f"{s % 3600 // 60}m" if s % 3600 // 60 else "")
    return f"{s // 86400}d" + (f"{s % 86400 // 3600}h" if s % 86400 // 3600 else "")


def when(iso: str | None, now: datetime | None = None) -> str:
    """An ISO-8601 UTC time as "3m ago" / "in 25m" (the service's clock and ours agree enough)."""
    if not iso:
        return "-"
    try:
        at = datetime.fromisoformat(iso.replace("Z", "+00:00"))
    except ValueError:
        return iso
    delta = (at - (now or datetime.now(UTC))).total_seconds()
    if abs(delta) < 1:
        return "now"
    return f"in {duration(delta)}" if delta > 0 else f"{duration(-delta)} ago"


class Spinner:
    """A spinner on stderr; :meth:`stop` clears it (early, e.g. when the answer starts)."""

    def __init__(self, message: str, stream: TextIO) -> None:
        self.message = message
        self.stream = stream
        self._done = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._spin, name="crt-progress", daemon=True)
        self._thread.start()

    def _spin(self) -> None:
        for frame in itertools.cycle("|/-\\"):
            self.stream.write(f"\r{frame} {self.message} ")
            self.stream.flush()
            if self._done.wait(0.1):
                break
        self.stream.write("\r" + " " * (len(self.message) + 3) + "\r")
        self.stream.flush()

    def stop(self) -> None:
        self._done.set()
        if self._thread is not None:
            self._thread.join(1.0)


@contextmanager
def progress(message: str) -> Iterator[Spinner]:
    """A spinner on stderr while waiting, only when stderr is a terminal."""
    spinner = Spinner(message, sys.stderr)
    if sys.stderr.isatty():
        spinner.start()
    try:
        yield spinner
    finally:
        spinner.stop()


def print_run(run: dict[str, Any]) -> None:
    tags = [run.get("trigger") or "?"] + (["dry run"] if run.get("dry_run") else [])
    reason = f" ({run['reason']})" if run.get("reason") else ""
    out(f"Heartbeat {run['thread_id']} [{', '.join(tags)}]: {run['outcome']}{reason}")
    out(run.get("headline") or wording.run_headline(run))
    details: list[tuple[str, Any]] = [("model said", run.get("summary"))]
    if run.get("error"):
        details.append(("error", run["error"]))
    took = run.get("duration_ms")
    details.append(("took", "-" if took is None else f"{took / 1000:.2f}s"))
    if run.get("model"):
        details.append(("model", run["model"]))
    out(pairs(details))
    actions = run.get("actions") or []
    if actions:
        rows = [
            [
                a.get("type"),
                a.get("state"),
                a.get("title") or a.get("content") or a.get("direction") or "",
                a.get("post_id") or a.get("submolt"),
                a.get("url") or a.get("ledger_id") or a.get("error"),
            ]
            for a in actions
        ]
        out(table(["action", "state", "what", "on", "page / error"], rows))
