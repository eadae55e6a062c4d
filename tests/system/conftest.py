"""Fixtures of the system tests that run several hosts on one PostgreSQL cluster."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from support.pg_cluster import PgCluster


@pytest.fixture
def database(pg_cluster: PgCluster) -> Iterator[str]:
    """The hosts' shared session DB: a fresh, migrated database (dropped afterwards)."""
    with pg_cluster.fresh_database() as url:
        yield url


@pytest.fixture
def ledger_database(pg_cluster: PgCluster) -> Iterator[str]:
    """An empty database for the shared Ledger (it migrates its own schema)."""
    with pg_cluster.fresh_database(migrated=False) as url:
        yield url
