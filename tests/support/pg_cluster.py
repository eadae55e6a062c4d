"""A throwaway PostgreSQL cluster for the tests and the benchmarks.

Debian's ``postgresql`` package (scripts/ensure-postgres.sh installs it) provides ``initdb`` and
``pg_ctl``; they refuse to run as root, so the cluster runs as the ``postgres`` user, in a temp
dir it owns, on a free loopback port, with durability off (a test's data never outlives the
run). :meth:`PgCluster.fresh_database` hands each test its own database, cloned from a template
that already holds the session DB's migrations, so a test pays a file copy, not a migration.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg

__all__ = ["PgCluster", "PgUnavailable", "postgres_bin"]

TEMPLATE = "crt_template"


class PgUnavailable(RuntimeError):
    """Raised when no PostgreSQL binaries (or no ``postgres`` user) exist on this machine."""


def postgres_bin() -> Path:
    """The newest installed ``/usr/lib/postgresql/<n>/bin``."""
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4])
    )
    if not found:
        raise PgUnavailable("PostgreSQL is not installed: run scripts/ensure-postgres.sh")
    return Path(found[-1]).parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PgCluster:
    """``initdb`` + ``pg_ctl start`` as ``postgres``; ``stop()`` removes everything."""

    def __init__(self) -> None:
        self.bin = postgres_bin()
        try:
            self._user = pwd.getpwnam("postgres")
        except KeyError as exc:
            raise PgUnavailable("no 'postgres' user: reinstall the postgresql package") from exc
        self.root = Path(tempfile.mkdtemp(prefix="crt-pg-"))
        os.chown(self.root, self._user.pw_uid, self._user.pw_gid)
        self.data = self.root / "data"
        self.port = _free_port()
        self.started = False

    def _as_postgres(self, *args: str) -> None:
        command = ["runuser", "-u", "postgres", "--", *args] if os.geteuid() == 0 else list(args)
        proc = subprocess.run(command, capture_output=True, text=True, check=False, timeout=120)
        if proc.returncode != 0:
            raise RuntimeError(f"{args[0]} failed ({proc.returncode}): {proc.stderr.strip()}")

    def start(self) -> PgCluster:
        self._as_postgres(
            str(self.bin / "initdb"), "-D", str(self.data), "-U", "postgres",
            "--auth=trust", "-E", "UTF8", "--locale=C", "--no-sync",
        )  # fmt: skip
        options = (
            f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off -c max_connections=300 "
            "-c shared_buffers=32MB"
        )
        self._as_postgres(
            str(self.bin / "pg_ctl"), "-D", str(self.data), "-o", options,
            "-l", str(self.root / "server.log"), "-w", "-t", "60", "start",
        )  # fmt: skip
        self.started = True
        return self

    def url(self, dbname: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{dbname}"

    def admin(self, sql: str) -> None:
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(sql)  # type: ignore[arg-type]

    def create_database(self, name: str, template: str = "template0") -> str:
        self.admin(f'CREATE DATABASE "{name}" TEMPLATE "{template}" STRATEGY FILE_COPY')
        return self.url(name)

    def drop_database(self, name: str) -> None:
        self.admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def prepare_template(self) -> None:
        """A database holding every session-DB migration, for :meth:`fresh_database`."""
        from crt_loops.db.session import SessionDB

        url = self.create_database(TEMPLATE)
        SessionDB(url).close()

    @contextmanager
    def fresh_database(self, *, migrated: bool = True) -> Iterator[str]:
        """A new database (dropped afterwards); its URL."""
        name = f"t_{uuid.uuid4().hex[:12]}"
        url = self.create_database(name, TEMPLATE if migrated else "template0")
        try:
            yield url
        finally:
            self.drop_database(name)

    def stop(self) -> None:
        try:
            if self.started:
                self._as_postgres(
                    str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop"
                )
                self.started = False
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> PgCluster:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc: object) -> None:
        self.stop()
