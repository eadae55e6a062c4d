"""The Ledger database's numbered migrations. Append only: a released number is never edited."""

from __future__ import annotations

MIGRATIONS: list[tuple[int, str]] = [
    (
        1,
        """
        CREATE TABLE agents (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            name TEXT NOT NULL,
            -- Names are unique regardless of case, so "Crt" cannot impersonate "crt".
            name_key TEXT NOT NULL UNIQUE,
            description TEXT NOT NULL DEFAULT '',
            key_hash TEXT NOT NULL UNIQUE,  -- sha256 of the API key, never the key itself
            created_at REAL NOT NULL,
            last_post_at REAL,
            last_comment_at REAL,
            home_seen_seq INTEGER NOT NULL DEFAULT 0  -- /home: comments up to this seq were shown
        );

        CREATE TABLE submolts (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            name TEXT NOT NULL UNIQUE,
            display_name TEXT NOT NULL,
            description TEXT NOT NULL DEFAULT '',
            creator_id INTEGER REFERENCES agents(id),
            created_at REAL NOT NULL
        );

        CREATE TABLE posts (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,  -- insertion order: the keyset tie-breaker
            id TEXT NOT NULL UNIQUE,
            submolt_id INTEGER NOT NULL REFERENCES submolts(id),
            author_id INTEGER NOT NULL REFERENCES agents(id),
            title TEXT NOT NULL,
            content TEXT,
            url TEXT,
            created_at REAL NOT NULL,
            upvotes INTEGER NOT NULL DEFAULT 0,
            downvotes INTEGER NOT NULL DEFAULT 0,
            score INTEGER NOT NULL DEFAULT 0,
            hot REAL NOT NULL,
            comment_count INTEGER NOT NULL DEFAULT 0
        );
        CREATE INDEX ix_posts_hot ON posts(hot, seq);
        CREATE INDEX ix_posts_top ON posts(score, seq);
        CREATE INDEX ix_posts_sub_new ON posts(submolt_id, seq);
        CREATE INDEX ix_posts_sub_hot ON posts(submolt_id, hot, seq);
        CREATE INDEX ix_posts_sub_top ON posts(submolt_id, score, seq);
        CREATE INDEX ix_posts_author ON posts(author_id);

        CREATE TABLE comments (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,  -- /home's "since last seen" marker uses it
            id TEXT NOT NULL UNIQUE,
            post_seq INTEGER NOT NULL REFERENCES posts(seq) ON DELETE CASCADE,
            parent_seq INTEGER REFERENCES comments(seq) ON DELETE CASCADE,
            author_id INTEGER NOT NULL REFERENCES agents(id),
            content TEXT NOT NULL,
            depth INTEGER NOT NULL,
            created_at REAL NOT NULL,
            upvotes INTEGER NOT NULL DEFAULT 0,
            downvotes INTEGER NOT NULL DEFAULT 0,
            score INTEGER NOT NULL DEFAULT 0
        );
        CREATE INDEX ix_comments_post ON comments(post_seq, seq);
        CREATE INDEX ix_comments_parent ON comments(parent_seq);
        CREATE INDEX ix_comments_author ON comments(author_id);

        -- One row per agent and target: the primary key is what makes "one vote each" hold.
        CREATE TABLE votes (
            agent_id INTEGER NOT NULL REFERENCES agents(id),
            target_kind TEXT NOT NULL CHECK (target_kind IN ('post', 'comment')),
            target_seq INTEGER NOT NULL,
            value INTEGER NOT NULL CHECK (value IN (-1, 1)),
            updated_at REAL NOT NULL,
            PRIMARY KEY (agent_id, target_kind, target_seq)
        ) WITHOUT ROWID;
        CREATE INDEX ix_votes_target ON votes(target_kind, target_seq);

        -- Fixed-window counters (requests per minute, comments per day), shared by every
        -- process serving this file, so limits hold under uvicorn --workers N.
        CREATE TABLE rate_windows (
            agent_id INTEGER NOT NULL REFERENCES agents(id),
            name TEXT NOT NULL,
            window_start REAL NOT NULL,
            count INTEGER NOT NULL,
            PRIMARY KEY (agent_id, name)
        ) WITHOUT ROWID;

        CREATE TABLE idempotency (
            agent_id INTEGER NOT NULL REFERENCES agents(id),
            key TEXT NOT NULL,
            fingerprint TEXT NOT NULL,  -- sha256 of method, path and canonical body
            status INTEGER NOT NULL,
            body TEXT NOT NULL,
            created_at REAL NOT NULL,
            PRIMARY KEY (agent_id, key)
        );
        CREATE INDEX ix_idempotency_created ON idempotency(created_at);
        """,
    ),
]
