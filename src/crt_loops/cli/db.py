"""``crt db``: the session DB itself, without the service running.

    crt db copy [--from PATH] [--to URL]    copy a SQLite session DB into an empty PostgreSQL one

``--from`` defaults to ``$CRT_DATA_DIR/crt.db`` and ``--to`` to ``CRT_DATABASE_URL``: stop the
service, copy, then start every host with ``CRT_DATABASE_URL`` (README, "Scaling out").
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from crt_loops.cli.http import EXIT_CONFLICT, EXIT_OK, Api, CLIError
from crt_loops.cli.output import dump_json, out

Add = Callable[[Any, str, Callable[..., int], str], argparse.ArgumentParser]


def cmd_copy(api: Api, args: argparse.Namespace) -> int:
    from crt_loops.db.backends import MissingDriver
    from crt_loops.db.copy import CopyError, copy_sqlite_to
    from crt_loops.db.errors import DatabaseError
    from crt_loops.db.session import SessionDB

    source = Path(args.source or Path(os.environ.get("CRT_DATA_DIR", "./data")) / "crt.db")
    url = args.target or os.environ.get("CRT_DATABASE_URL")
    if not url or not url.startswith(("postgresql://", "postgres://")):
        raise CLIError("--to postgresql://user@host:port/db is needed (or CRT_DATABASE_URL)", 2)
    try:
        target = SessionDB(url)
    except (DatabaseError, MissingDriver) as exc:
        raise CLIError(f"cannot open {url.split('@')[-1]}: {exc}", EXIT_CONFLICT) from exc
    try:
        report = copy_sqlite_to(source, target)
    except (CopyError, DatabaseError) as exc:
        raise CLIError(str(exc), EXIT_CONFLICT) from exc
    finally:
        target.close()
    if args.json:
        dump_json({"copied": report.rows, "total": report.total})
    else:
        for table, n in report.rows.items():
            out(f"{table:26} {n:>8}")
        out(f"copied {report.total} rows from {source} to {target.path}")
    return EXIT_OK


def add_parsers(sub: Any, add: Add) -> None:
    db = add(sub, "db", cmd_copy, "the session DB: copy a SQLite file into PostgreSQL")
    db_sub = db.add_subparsers(dest="action", metavar="ACTION", required=True)
    copy = add(db_sub, "copy", cmd_copy, "copy a SQLite session DB into an empty PostgreSQL one")
    copy.add_argument("--from", dest="source", help="default: $CRT_DATA_DIR/crt.db")
    copy.add_argument("--to", dest="target", help="postgresql://...; default: CRT_DATABASE_URL")
