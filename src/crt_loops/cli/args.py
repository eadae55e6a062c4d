"""The command line's argument types and parser: mistakes are usage errors, never tracebacks,
and under ``--json`` they are JSON too."""

from __future__ import annotations

import argparse
import json
import os
from importlib import metadata
from typing import NoReturn

from crt_loops.cli.http import DEFAULT_URL, EXIT_USAGE
from crt_loops.cli.output import err


class CrtParser(argparse.ArgumentParser):
    """argparse, with usage errors as one JSON line on stderr under ``--json``."""

    json_errors = False

    def error(self, message: str) -> NoReturn:
        if CrtParser.json_errors:
            err(json.dumps({"error": f"{self.prog}: {message}", "exit_code": EXIT_USAGE}))
            raise SystemExit(EXIT_USAGE)
        super().error(message)


def package_version() -> str:
    try:
        return metadata.version("crt-loops")
    except metadata.PackageNotFoundError:
        return "unknown (not installed)"


def positive_seconds(value: str) -> float:
    """An argparse type: ``--timeout -1`` is a usage error, not a ValueError traceback."""
    try:
        seconds = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number of seconds") from None
    if not seconds > 0 or seconds == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, got {value}")
    return seconds


def service_url() -> str:
    """``CRT_URL``, else the address ``make run`` serves on (``HOST``/``PORT``)."""
    if os.environ.get("CRT_URL"):
        return os.environ["CRT_URL"]
    host = os.environ.get("HOST") or "127.0.0.1"
    if host in ("0.0.0.0", "::", ""):  # noqa: S104 (a listen-on-all address: call loopback)
        host = "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    port = os.environ.get("PORT") or "8000"
    return f"http://{host}:{port}" if (host, port) != ("127.0.0.1", "8000") else DEFAULT_URL


def positive_int(value: str) -> int:
    """An argparse type: a usage error, not a traceback, for 0, -1 or "abc"."""
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a whole number") from None
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {number}")
    return number
