"""The Ledger's storage beyond :mod:`crt_loops.ledger.store`: one module per Moltbook feature,
each a set of functions over the caller's SQLite connection (see each module's docstring)."""
