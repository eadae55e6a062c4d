"""A throwaway PostgreSQL cluster for the tests and the benchmarks.

Debian's ``postgresql`` package (scripts/ensure-postgres.sh installs it) provides ``initdb`` and
``pg_ctl``; they refuse to run as root, so the cluster runs as the ``postgres`` user, in a temp
dir it owns, on a free loopback port, with durability off (a test's data never outlives the
run). :meth:`PgCluster.fresh_database` hands each test a database of its own, as it was when new:
cloned from a template that already holds the session DB's migrations (or empty), and, once a
test is done with it, put back as it was (rows deleted, the template's rows and sequences
restored, or the schema dropped) for the next test of this process. That reset costs about
2 ms where a clone cost 0.2-1 s: ``CREATE DATABASE`` checkpoints, and checkpoints queue up
behind each other across the workers. A database whose structure the test changed (a digest
of its catalogs differs) is dropped instead.

:class:`SharedCluster` gives every process of one test run (the xdist workers) the same
cluster: the first process that needs one starts it, the others attach to it, and the run's
controller stops it at the end. A cluster per worker cost each worker an ``initdb``.
"""

from __future__ import annotations

import fcntl
import glob
import json
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

__all__ = ["PgCluster", "PgUnavailable", "SharedCluster", "postgres_bin"]

TEMPLATE = "crt_template"

# Everything a test could have added to, changed in or left behind in its database, as one
# digest; rows are not in it (they are put back whatever they are).
_FINGERPRINT = """
SELECT md5(coalesce(string_agg(item, E'\\n' ORDER BY item), '')) FROM (
    SELECT 'rel ' || n.nspname || '.' || c.relname || ' ' || c.relkind::text AS item
      FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%%'
    UNION ALL
    SELECT 'col ' || c.oid::regclass::text || '.' || a.attname || ' '
           || format_type(a.atttypid, a.atttypmod) || ' ' || a.attnotnull::text || ' '
           || coalesce(pg_get_expr(d.adbin, d.adrelid), '')
      FROM pg_attribute a
      JOIN pg_class c ON c.oid = a.attrelid
      JOIN pg_namespace n ON n.oid = c.relnamespace
      LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
     WHERE n.nspname = 'public' AND a.attnum > 0 AND NOT a.attisdropped
    UNION ALL
    SELECT 'idx ' || indexdef FROM pg_indexes WHERE schemaname = 'public'
    UNION ALL
    SELECT 'con ' || conrelid::regclass::text || ' ' || conname || ' ' || pg_get_constraintdef(oid)
      FROM pg_constraint WHERE connamespace = 'public'::regnamespace
    UNION ALL
    SELECT 'trg ' || tgrelid::regclass::text || ' ' || tgname FROM pg_trigger WHERE NOT tgisinternal
    UNION ALL
    SELECT 'fn ' || oid::regprocedure::text FROM pg_proc WHERE pronamespace = 'public'::regnamespace
    UNION ALL
    SELECT 'nsp ' || nspname FROM pg_namespace
    UNION ALL
    SELECT 'set ' || array_to_string(setconfig, ',') FROM pg_db_role_setting
     WHERE setdatabase = (SELECT oid FROM pg_database WHERE datname = current_database())
    UNION ALL
    SELECT 'xact ' || gid FROM pg_prepared_xacts WHERE database = current_database()
) AS catalog
"""
_TABLES = "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename"
_SEQUENCES = (
    "SELECT sequencename, start_value, last_value FROM pg_sequences WHERE schemaname = 'public'"
)


@dataclass(frozen=True)
class _Pristine:
    """A pooled database as it was when new: its catalog digest, rows and sequences."""

    fingerprint: str
    rows: dict[str, list[tuple[Any, ...]]]
    sequences: list[tuple[str, int, int | None]]

    @classmethod
    def of(cls, conn: psycopg.Connection[Any]) -> _Pristine:
        tables = [name for (name,) in conn.execute(_TABLES)]
        rows = {t: conn.execute(sql.SQL("SELECT * FROM {}").format(sql.Identifier(t))).fetchall()
                for t in tables}  # fmt: skip
        return cls(_fingerprint(conn), rows, list(conn.execute(_SEQUENCES)))


def _fingerprint(conn: psycopg.Connection[Any]) -> str:
    row = conn.execute(_FINGERPRINT).fetchone()
    assert row is not None
    return str(row[0])


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

    def __init__(self, *, root: Path | None = None, port: int | None = None) -> None:
        """A new cluster in a new temp dir; or, given ``root`` and ``port``, a handle on a
        running one that another process started (see :class:`SharedCluster`)."""
        self.bin = postgres_bin()
        try:
            self._user = pwd.getpwnam("postgres")
        except KeyError as exc:
            raise PgUnavailable("no 'postgres' user: reinstall the postgresql package") from exc
        if root is None:
            root = Path(tempfile.mkdtemp(prefix="crt-pg-"))
            os.chown(root, self._user.pw_uid, self._user.pw_gid)
        self.root = root
        self.data = self.root / "data"
        self.port = port if port is not None else _free_port()
        self.started = port is not None
        # Per process: databases ready for the next test, and how each kind looks when new.
        self._pool: dict[bool, list[str]] = {True: [], False: []}
        self._pristine: dict[bool, _Pristine] = {}

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
        """A database as new (migrated from the template, or empty) for the caller alone; its
        URL. Afterwards it is reset for the next caller, or dropped."""
        pool = self._pool[migrated]
        if pool:
            name = pool.pop()
        else:
            name = f"t_{uuid.uuid4().hex[:12]}"
            self.create_database(name, TEMPLATE if migrated else "template0")
            if migrated not in self._pristine:
                with psycopg.connect(self.url(name), autocommit=True) as conn:
                    self._pristine[migrated] = _Pristine.of(conn)
        try:
            yield self.url(name)
        finally:
            if self._reset(name, migrated):
                pool.append(name)
            else:
                self.drop_database(name)

    def _reset(self, name: str, migrated: bool) -> bool:
        """Put database ``name`` back as it was when new; False when that is not possible."""
        pristine = self._pristine[migrated]
        with psycopg.connect(self.url(), autocommit=True) as admin:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = %s AND pid <> pg_backend_pid()",
                (name,),
            )
        with psycopg.connect(self.url(name), autocommit=True) as conn:
            if not migrated:
                for (schema,) in conn.execute(
                    "SELECT nspname FROM pg_namespace WHERE nspname NOT LIKE 'pg\\_%%' "
                    "AND nspname <> 'information_schema'"
                ).fetchall():
                    conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))
                conn.execute("CREATE SCHEMA public")
                return _fingerprint(conn) == pristine.fingerprint
            if _fingerprint(conn) != pristine.fingerprint:
                return False
            with conn.transaction():
                # Foreign keys are not checked while rows go and come back in any order.
                conn.execute("SET LOCAL session_replication_role = replica")
                for table, rows in pristine.rows.items():
                    ident = sql.Identifier(table)
                    conn.execute(sql.SQL("DELETE FROM {}").format(ident))
                    if rows:
                        marks = sql.SQL(", ").join(sql.Placeholder() * len(rows[0]))
                        insert = sql.SQL("INSERT INTO {} VALUES ({})").format(ident, marks)
                        conn.cursor().executemany(insert, rows)
                for sequence, start, last in pristine.sequences:
                    conn.execute(
                        "SELECT setval(%s::regclass, %s, %s)",
                        (f"public.{sequence}", start if last is None else last, last is not None),
                    )
        return True

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


class SharedCluster:
    """One :class:`PgCluster` for every process of a test run, coordinated through ``share``, a
    directory the run's controller made: a lock file and ``cluster.json`` (root and port)."""

    def __init__(self, share: Path) -> None:
        self.share = share
        self._info = share / "cluster.json"

    def get(self) -> PgCluster:
        """The run's cluster, started (with its template) by whichever process asks first."""
        with (self.share / "lock").open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if self._info.exists():
                info = json.loads(self._info.read_text(encoding="utf-8"))
                return PgCluster(root=Path(info["root"]), port=int(info["port"]))
            cluster = PgCluster()
            try:
                cluster.start()
                cluster.prepare_template()
            except BaseException:
                cluster.stop()
                raise
            info = {"root": str(cluster.root), "port": cluster.port}
            self._info.write_text(json.dumps(info), encoding="utf-8")
            return cluster

    def stop(self) -> None:
        """Stop the run's cluster if any process started one; remove ``share``."""
        try:
            if self._info.exists():
                info = json.loads(self._info.read_text(encoding="utf-8"))
                PgCluster(root=Path(info["root"]), port=int(info["port"])).stop()
        finally:
            shutil.rmtree(self.share, ignore_errors=True)
