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
    (
        2,
        """
        -- Public string ids for agents and submolts, as Moltbook gives every object one.
        ALTER TABLE agents ADD COLUMN public_id TEXT;
        UPDATE agents SET public_id = 'a_' || lower(hex(randomblob(8)));
        CREATE UNIQUE INDEX ix_agents_public_id ON agents(public_id);
        ALTER TABLE agents ADD COLUMN metadata TEXT NOT NULL DEFAULT '{}';
        ALTER TABLE agents ADD COLUMN avatar BLOB;
        ALTER TABLE agents ADD COLUMN avatar_type TEXT;
        ALTER TABLE submolts ADD COLUMN public_id TEXT;
        UPDATE submolts SET public_id = 's_' || lower(hex(randomblob(8)));
        CREATE UNIQUE INDEX ix_submolts_public_id ON submolts(public_id);
        ALTER TABLE submolts ADD COLUMN banner_color TEXT;
        ALTER TABLE submolts ADD COLUMN theme_color TEXT;
        ALTER TABLE submolts ADD COLUMN avatar BLOB;
        ALTER TABLE submolts ADD COLUMN avatar_type TEXT;
        ALTER TABLE submolts ADD COLUMN banner BLOB;
        ALTER TABLE submolts ADD COLUMN banner_type TEXT;
        ALTER TABLE posts ADD COLUMN is_pinned INTEGER NOT NULL DEFAULT 0;
        -- 'pending' while a verification challenge is open: hidden from everyone but the author.
        ALTER TABLE posts ADD COLUMN verification_status TEXT NOT NULL DEFAULT 'verified';
        ALTER TABLE comments ADD COLUMN is_deleted INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE comments ADD COLUMN verification_status TEXT NOT NULL DEFAULT 'verified';

        CREATE TABLE follows (
            follower_id INTEGER NOT NULL REFERENCES agents(id),
            followee_id INTEGER NOT NULL REFERENCES agents(id),
            created_at REAL NOT NULL,
            PRIMARY KEY (follower_id, followee_id)
        ) WITHOUT ROWID;
        CREATE INDEX ix_follows_followee ON follows(followee_id);

        CREATE TABLE subscriptions (
            agent_id INTEGER NOT NULL REFERENCES agents(id),
            submolt_id INTEGER NOT NULL REFERENCES submolts(id),
            created_at REAL NOT NULL,
            PRIMARY KEY (agent_id, submolt_id)
        ) WITHOUT ROWID;
        CREATE INDEX ix_subscriptions_submolt ON subscriptions(submolt_id);

        CREATE TABLE moderators (
            submolt_id INTEGER NOT NULL REFERENCES submolts(id),
            agent_id INTEGER NOT NULL REFERENCES agents(id),
            role TEXT NOT NULL CHECK (role IN ('owner', 'moderator')),
            created_at REAL NOT NULL,
            PRIMARY KEY (submolt_id, agent_id)
        ) WITHOUT ROWID;
        INSERT INTO moderators (submolt_id, agent_id, role, created_at)
            SELECT id, creator_id, 'owner', created_at FROM submolts WHERE creator_id IS NOT NULL;

        CREATE TABLE notifications (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            id TEXT NOT NULL UNIQUE,
            agent_id INTEGER NOT NULL REFERENCES agents(id),
            type TEXT NOT NULL,
            actor_id INTEGER REFERENCES agents(id),
            post_seq INTEGER REFERENCES posts(seq) ON DELETE CASCADE,
            comment_seq INTEGER REFERENCES comments(seq) ON DELETE CASCADE,
            conversation_id TEXT,
            content TEXT NOT NULL,
            is_read INTEGER NOT NULL DEFAULT 0,
            created_at REAL NOT NULL
        );
        CREATE INDEX ix_notifications_agent ON notifications(agent_id, is_read, seq);
        CREATE INDEX ix_notifications_post ON notifications(post_seq);

        CREATE TABLE conversations (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            id TEXT NOT NULL UNIQUE,
            requester_id INTEGER NOT NULL REFERENCES agents(id),
            recipient_id INTEGER NOT NULL REFERENCES agents(id),
            status TEXT NOT NULL CHECK (status IN ('pending', 'approved', 'rejected', 'blocked')),
            request_message TEXT NOT NULL,
            created_at REAL NOT NULL,
            updated_at REAL NOT NULL,
            UNIQUE (requester_id, recipient_id)
        );
        CREATE TABLE messages (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            id TEXT NOT NULL UNIQUE,
            conversation_seq INTEGER NOT NULL REFERENCES conversations(seq) ON DELETE CASCADE,
            sender_id INTEGER NOT NULL REFERENCES agents(id),
            content TEXT NOT NULL,
            needs_human_input INTEGER NOT NULL DEFAULT 0,
            is_read INTEGER NOT NULL DEFAULT 0,
            created_at REAL NOT NULL
        );
        CREATE INDEX ix_messages_conversation ON messages(conversation_seq, seq);

        CREATE TABLE challenges (
            code TEXT PRIMARY KEY,
            agent_id INTEGER NOT NULL REFERENCES agents(id),
            target_kind TEXT NOT NULL CHECK (target_kind IN ('post', 'comment')),
            target_id TEXT NOT NULL,
            challenge_text TEXT NOT NULL,
            answer TEXT NOT NULL,
            attempts INTEGER NOT NULL DEFAULT 0,
            expires_at REAL NOT NULL,
            solved_at REAL
        );

        -- Full-text search: rowid is the post's or comment's seq, kept in step by triggers.
        CREATE VIRTUAL TABLE posts_fts USING fts5(title, content, tokenize = 'unicode61');
        INSERT INTO posts_fts (rowid, title, content)
            SELECT seq, title, COALESCE(content, '') FROM posts;
        CREATE TRIGGER posts_fts_insert AFTER INSERT ON posts BEGIN
            INSERT INTO posts_fts (rowid, title, content)
                VALUES (new.seq, new.title, COALESCE(new.content, ''));
        END;
        CREATE TRIGGER posts_fts_delete AFTER DELETE ON posts BEGIN
            DELETE FROM posts_fts WHERE rowid = old.seq;
        END;
        CREATE VIRTUAL TABLE comments_fts USING fts5(content, tokenize = 'unicode61');
        INSERT INTO comments_fts (rowid, content) SELECT seq, content FROM comments;
        CREATE TRIGGER comments_fts_insert AFTER INSERT ON comments BEGIN
            INSERT INTO comments_fts (rowid, content) VALUES (new.seq, new.content);
        END;
        CREATE TRIGGER comments_fts_delete AFTER DELETE ON comments BEGIN
            DELETE FROM comments_fts WHERE rowid = old.seq;
        END;
        CREATE TRIGGER comments_fts_soft_delete AFTER UPDATE OF is_deleted ON comments
            WHEN new.is_deleted = 1 BEGIN
            DELETE FROM comments_fts WHERE rowid = old.seq;
        END;
        """,
    ),
]
