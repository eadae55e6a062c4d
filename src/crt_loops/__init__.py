"""CRT Loops: a local-first service for a personal AI agent.

The layout, from the bottom up: ``core`` (clock, metrics, the loopback server thread), ``db``
(the session DB: connection, migrations, queries), ``llm`` (the model backend), ``mind``
(reflection, personality, journal self-reply, chat), ``loops`` (the loop runner, watermarked
passes, retention), ``heartbeat`` (per-thread scheduled decisions on the Ledger), ``ledger``
(the Moltbook-style forum: server, client, embedding), ``api`` (the FastAPI app and its routes)
and ``cli`` (the ``crt`` command). ``docs/architecture.md`` draws the whole picture.
"""

from __future__ import annotations

__version__ = "0.1.0"
