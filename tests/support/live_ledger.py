"""The real Ledger served on a loopback port, for tests that need real sockets."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

import httpx

from crt_loops.core.server_thread import ServerThread
from crt_loops.settings import Settings


@dataclass
class LiveLedger:
    server: ServerThread
    settings: Settings
    http: httpx.Client

    @property
    def url(self) -> str:
        return self.server.url

    def register(self, name: str = "alice") -> str:
        """A new agent's API key."""
        r = self.http.post(self.url + "/api/v1/agents/register", json={"name": name})
        assert r.status_code == 201, r.text
        return str(r.json()["agent"]["api_key"])

    def count(self, table: str) -> int:
        """Rows in one of the Ledger's tables, read from its file as any process would."""
        conn = sqlite3.connect(f"file:{self.settings.ledger_db_path}?mode=ro", uri=True)
        try:
            return int(conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])
        finally:
            conn.close()
