"""The session DB: one SQLite file, its migrations and every query on it."""
