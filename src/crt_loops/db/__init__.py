"""The session DB: one SQLite file, its migrations and every query on it.

``SessionDB`` (``session.py``) holds threads and messages and is what every repository function
takes first; the repositories (``progress``, ``leases``, ``journal``, ``reflection``,
``personality``, ``heartbeats``, ``agent_history``, ``retention``) hold the rest of the SQL and
return dataclasses. Driver errors leave the package as ``errors``' exceptions.

Ids and watermarks: the loops' watermarks (``progress``) count row ids, so a row must never
become visible below a watermark already advanced past it. SQLite assigns ids and commits under
one write lock, which guarantees it; a backend whose writers commit concurrently implements
``progress.committed_high_id`` as the highest id below which no transaction is in flight.
Claims (``heartbeats.claim_due``) are decided by one conditional upsert on ``leases``, never
by the read before it. docs/storage.md has the transaction rules and what a second backend
implements.
"""
