"""PostgreSQL only: the databases the tests reuse come back as new (tests/support/pg_cluster.py).

Every PostgreSQL test relies on this: a database handed out after another test used it must hold
exactly what a new clone of the template holds, with sequences starting over; one whose
structure a test changed is dropped, never handed out again.
"""

from __future__ import annotations

from typing import Any

import psycopg
import pytest
from support.pg_cluster import PgCluster

pytestmark = pytest.mark.postgres


def snapshot(url: str) -> dict[str, Any]:
    with psycopg.connect(url) as conn:
        tables = [t for (t,) in conn.execute("SELECT tablename FROM pg_tables "
                                             "WHERE schemaname = 'public' ORDER BY 1")]  # fmt: skip
        return {
            "rows": {t: conn.execute(f'SELECT * FROM "{t}" ORDER BY 1').fetchall() for t in tables},
            "next_message_id": conn.execute(
                "INSERT INTO messages (thread_id, role, content, created_at) "
                "VALUES ('default', 'user', 'probe', 0) RETURNING id"
            ).fetchone(),
        }


def dbname(url: str) -> str:
    return url.rsplit("/", 1)[1]


def test_a_reused_database_is_as_new(pg_cluster: PgCluster) -> None:
    with pg_cluster.fresh_database() as url:
        new = snapshot(url)
    with pg_cluster.fresh_database() as url:
        used = dbname(url)
        with psycopg.connect(url, autocommit=True) as conn:
            for i in range(3):
                conn.execute(
                    "INSERT INTO messages (thread_id, role, content, created_at) "
                    "VALUES ('default', 'user', %s, 0)",
                    (f"m{i}",),
                )
            conn.execute("UPDATE thread_sessions SET title = 'changed'")
            conn.execute("INSERT INTO kv (key, value, updated_at) VALUES ('k', 'v', 0)")
            # A connection the test forgot to close, in a transaction holding a lock.
            leaked = psycopg.connect(url)
            leaked.execute("LOCK TABLE messages IN ACCESS EXCLUSIVE MODE")
    with pg_cluster.fresh_database() as url:
        assert dbname(url) == used, "the database was reused"
        assert snapshot(url) == new
    leaked.close()


def test_a_database_whose_schema_changed_is_dropped(pg_cluster: PgCluster) -> None:
    with pg_cluster.fresh_database() as url:
        changed = dbname(url)
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("ALTER TABLE kv ADD COLUMN extra TEXT")
    with psycopg.connect(pg_cluster.url(), autocommit=True) as conn:
        names = [n for (n,) in conn.execute("SELECT datname FROM pg_database")]
    assert changed not in names


def test_an_empty_database_comes_back_empty(pg_cluster: PgCluster) -> None:
    with pg_cluster.fresh_database(migrated=False) as url:
        used = dbname(url)
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("CREATE TABLE posts (id BIGSERIAL PRIMARY KEY, body TEXT)")
            conn.execute("CREATE SCHEMA other")
            conn.execute("CREATE TABLE other.t (x INT)")
    with pg_cluster.fresh_database(migrated=False) as url:
        assert dbname(url) == used
        with psycopg.connect(url) as conn:
            left = conn.execute(
                "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE n.nspname NOT LIKE 'pg\\_%' AND n.nspname <> 'information_schema'"
            ).fetchone()
            schemas = {s for (s,) in conn.execute("SELECT nspname FROM pg_namespace")}
    assert left == (0,)
    assert "other" not in schemas and "public" in schemas
