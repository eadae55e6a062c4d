"""The session DB's schema: numbered migrations, applied in order by ``SQLiteStore.migrate``."""

from __future__ import annotations

# Numbered migrations. Append only: a released number is never edited.
MIGRATIONS: list[tuple[int, str]] = [
    (
        1,
        """
        CREATE TABLE thread_sessions (
            thread_id TEXT PRIMARY KEY,
            title TEXT NOT NULL DEFAULT '',
            created_at REAL NOT NULL,
            updated_at REAL NOT NULL,
            heartbeat_config_json TEXT,
            heartbeat_last_run REAL,
            heartbeat_last_summary TEXT,
            heartbeat_last_actions_json TEXT,
            heartbeat_last_outcome TEXT,
            heartbeat_last_reason TEXT,
            heartbeat_next_due REAL,
            heartbeat_failures INTEGER NOT NULL DEFAULT 0,
            heartbeat_context_hash TEXT,
            journal_self_reply TEXT NOT NULL DEFAULT 'default'
                CHECK (journal_self_reply IN ('default', 'on', 'off')),
            last_self_reply_at REAL
        );
        -- The heartbeat scheduler's only query: enabled threads ordered by due time.
        CREATE INDEX ix_threads_hb_due ON thread_sessions(heartbeat_next_due)
            WHERE heartbeat_next_due IS NOT NULL;

        CREATE TABLE messages (
            id INTEGER PRIMARY KEY AUTOINCREMENT,  -- never reused: loop watermarks rely on it
            thread_id TEXT NOT NULL REFERENCES thread_sessions(thread_id) ON DELETE CASCADE,
            role TEXT NOT NULL CHECK (role IN ('user', 'assistant')),
            content TEXT NOT NULL,
            created_at REAL NOT NULL,
            importance INTEGER CHECK (importance BETWEEN 1 AND 10),
            importance_reason TEXT,
            scored_by TEXT CHECK (scored_by IN ('llm', 'heuristic'))
        );
        CREATE INDEX ix_messages_thread ON messages(thread_id, id);

        CREATE TABLE journal_entries (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            thread_id TEXT NOT NULL REFERENCES thread_sessions(thread_id) ON DELETE CASCADE,
            entry_type TEXT NOT NULL
                CHECK (entry_type IN ('reflection', 'personality', 'self_reply', 'comment')),
            title TEXT NOT NULL DEFAULT '',
            body TEXT NOT NULL,
            created_at REAL NOT NULL,
            reply_to INTEGER REFERENCES journal_entries(id) ON DELETE SET NULL,
            meta_json TEXT NOT NULL DEFAULT '{}'
        );
        CREATE INDEX ix_journal_thread ON journal_entries(thread_id, id);
        CREATE INDEX ix_journal_reply_to ON journal_entries(reply_to);

        CREATE TABLE reflection_state (
            thread_id TEXT PRIMARY KEY REFERENCES thread_sessions(thread_id) ON DELETE CASCADE,
            last_reflection_message_id INTEGER NOT NULL DEFAULT 0,
            last_reflection_at REAL
        );

        CREATE TABLE personality_profiles (
            thread_id TEXT PRIMARY KEY REFERENCES thread_sessions(thread_id) ON DELETE CASCADE,
            profile_json TEXT NOT NULL,
            version INTEGER NOT NULL DEFAULT 1,
            updated_at REAL NOT NULL
        );
        CREATE TABLE personality_history (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            thread_id TEXT NOT NULL REFERENCES thread_sessions(thread_id) ON DELETE CASCADE,
            created_at REAL NOT NULL,
            changes_json TEXT NOT NULL,
            reason TEXT NOT NULL,
            profile_json TEXT NOT NULL
        );
        CREATE INDEX ix_personality_history_thread ON personality_history(thread_id, id);

        -- Per-loop progress: the global watermark below which every message is processed ...
        CREATE TABLE loop_state (
            loop TEXT PRIMARY KEY,
            watermark INTEGER NOT NULL DEFAULT 0,
            updated_at REAL NOT NULL
        );
        -- ... and per thread, so one failing thread never holds back or loses another's work.
        CREATE TABLE loop_watermarks (
            loop TEXT NOT NULL,
            thread_id TEXT NOT NULL REFERENCES thread_sessions(thread_id) ON DELETE CASCADE,
            message_id INTEGER NOT NULL,
            updated_at REAL NOT NULL,
            PRIMARY KEY (loop, thread_id)
        );

        CREATE TABLE leases (
            name TEXT PRIMARY KEY,
            owner TEXT NOT NULL,
            acquired_at REAL NOT NULL,
            expires_at REAL NOT NULL
        );

        CREATE TABLE heartbeat_runs (
            run_id TEXT PRIMARY KEY,
            thread_id TEXT NOT NULL REFERENCES thread_sessions(thread_id) ON DELETE CASCADE,
            trigger TEXT NOT NULL CHECK (trigger IN ('schedule', 'manual')),
            outcome TEXT NOT NULL
                CHECK (outcome IN ('running', 'acted', 'silent', 'dry_run', 'skipped', 'failed')),
            reason TEXT,
            dry_run INTEGER NOT NULL DEFAULT 0,
            summary TEXT NOT NULL DEFAULT '',
            started_at REAL NOT NULL,
            finished_at REAL,
            duration_ms REAL,
            error TEXT,
            prompt_chars INTEGER,
            llm_ms REAL,
            model TEXT,
            raw_decision TEXT
        );
        CREATE INDEX ix_hb_runs_thread ON heartbeat_runs(thread_id, started_at);
        CREATE INDEX ix_hb_runs_running ON heartbeat_runs(outcome) WHERE outcome = 'running';

        CREATE TABLE heartbeat_actions (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            run_id TEXT NOT NULL REFERENCES heartbeat_runs(run_id) ON DELETE CASCADE,
            thread_id TEXT NOT NULL,
            seq INTEGER NOT NULL,
            type TEXT NOT NULL CHECK (type IN ('post', 'comment', 'vote')),
            payload_json TEXT NOT NULL,
            state TEXT NOT NULL
                CHECK (state IN ('pending', 'sent', 'failed', 'blocked', 'dry_run')),
            ledger_id TEXT,
            error TEXT,
            idempotency_key TEXT NOT NULL UNIQUE,
            content_hash TEXT,
            created_at REAL NOT NULL,
            updated_at REAL NOT NULL
        );
        CREATE INDEX ix_hb_actions_run ON heartbeat_actions(run_id, seq);
        CREATE INDEX ix_hb_actions_pending ON heartbeat_actions(state) WHERE state = 'pending';
        CREATE INDEX ix_hb_actions_thread ON heartbeat_actions(thread_id, created_at);

        CREATE TABLE kv (
            key TEXT PRIMARY KEY,
            value TEXT NOT NULL,
            updated_at REAL NOT NULL
        );
        """,
    ),
    (
        2,
        """
        -- Retention prunes runs by age; the agent's recent actions are read by time.
        CREATE INDEX ix_hb_runs_started ON heartbeat_runs(started_at);
        CREATE INDEX ix_hb_actions_updated ON heartbeat_actions(updated_at);
        CREATE INDEX ix_journal_created ON journal_entries(created_at);
        """,
    ),
    (
        3,
        """
        -- db.agent_history.agent_history reads the agent's sent actions by type and time: with
        -- ledger_id and state in the index those reads never touch the table (bench/heartbeat.py:
        -- 20,000 past actions cost 28-35 ms per heartbeat before, ~2 ms after).
        CREATE INDEX ix_hb_actions_sent ON heartbeat_actions(type, updated_at, ledger_id, state)
            WHERE state = 'sent';
        """,
    ),
    (
        4,
        """
        -- Run counts by outcome for GET /api/heartbeat/status, kept by triggers (inserts, outcome
        -- changes, retention and cascade deletes): counting them scanned every run, 35 ms at
        -- 200,000 runs and growing (bench/api_load.py).
        CREATE TABLE heartbeat_run_counts (
            outcome TEXT PRIMARY KEY,
            n INTEGER NOT NULL
        );
        INSERT INTO heartbeat_run_counts (outcome, n)
            SELECT outcome, COUNT(*) FROM heartbeat_runs GROUP BY outcome;
        CREATE TRIGGER tr_hb_run_counts_insert AFTER INSERT ON heartbeat_runs BEGIN
            INSERT INTO heartbeat_run_counts (outcome, n) VALUES (NEW.outcome, 1)
                ON CONFLICT(outcome) DO UPDATE SET n = n + 1;
        END;
        CREATE TRIGGER tr_hb_run_counts_update AFTER UPDATE OF outcome ON heartbeat_runs
            WHEN OLD.outcome IS NOT NEW.outcome BEGIN
            UPDATE heartbeat_run_counts SET n = n - 1 WHERE outcome = OLD.outcome;
            INSERT INTO heartbeat_run_counts (outcome, n) VALUES (NEW.outcome, 1)
                ON CONFLICT(outcome) DO UPDATE SET n = n + 1;
        END;
        CREATE TRIGGER tr_hb_run_counts_delete AFTER DELETE ON heartbeat_runs BEGIN
            UPDATE heartbeat_run_counts SET n = n - 1 WHERE outcome = OLD.outcome;
        END;
        """,
    ),
    (
        5,
        """
        -- Each run's LLM call cost, as the server reported it (NULL: it did not say), so the
        -- history, /metrics and the dashboard show tokens and cache reuse, not characters.
        -- Follow and subscribe actions widen the outbox's types.
        -- The owner in the loop: the outbox gains proposed/rejected/expired actions (with the
        -- time a proposal expires), runs gain the outcome `proposed` and the trigger `reply`.
        -- SQLite cannot change a CHECK constraint, so both tables are rebuilt. The new runs
        -- table is filled first and the actions table is pointed at it before the old runs
        -- table is dropped: dropping a parent with foreign keys on deletes its children.
        CREATE TABLE heartbeat_runs_new (
            run_id TEXT PRIMARY KEY,
            thread_id TEXT NOT NULL REFERENCES thread_sessions(thread_id) ON DELETE CASCADE,
            trigger TEXT NOT NULL CHECK (trigger IN ('schedule', 'manual', 'reply')),
            outcome TEXT NOT NULL CHECK (outcome IN ('running', 'acted', 'silent', 'dry_run',
                'skipped', 'failed', 'proposed')),
            reason TEXT,
            dry_run INTEGER NOT NULL DEFAULT 0,
            summary TEXT NOT NULL DEFAULT '',
            started_at REAL NOT NULL,
            finished_at REAL,
            duration_ms REAL,
            error TEXT,
            prompt_chars INTEGER,
            llm_ms REAL,
            model TEXT,
            raw_decision TEXT,
            prompt_tokens INTEGER,
            prompt_eval_tokens INTEGER,
            cached_tokens INTEGER,
            completion_tokens INTEGER,
            prompt_ms REAL,
            generation_ms REAL,
            max_tokens INTEGER,
            retry_at REAL
        );
        INSERT INTO heartbeat_runs_new (run_id, thread_id, trigger, outcome, reason, dry_run,
            summary, started_at, finished_at, duration_ms, error, prompt_chars, llm_ms, model,
            raw_decision)
            SELECT run_id, thread_id, trigger, outcome, reason, dry_run, summary, started_at,
            finished_at, duration_ms, error, prompt_chars, llm_ms, model, raw_decision
            FROM heartbeat_runs;
        CREATE TABLE heartbeat_actions_new (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            run_id TEXT NOT NULL REFERENCES heartbeat_runs_new(run_id) ON DELETE CASCADE,
            thread_id TEXT NOT NULL,
            seq INTEGER NOT NULL,
            type TEXT NOT NULL
                CHECK (type IN ('post', 'comment', 'vote', 'follow', 'subscribe')),
            payload_json TEXT NOT NULL,
            state TEXT NOT NULL CHECK (state IN ('pending', 'sent', 'failed', 'blocked',
                'dry_run', 'proposed', 'rejected', 'expired')),
            ledger_id TEXT,
            error TEXT,
            idempotency_key TEXT NOT NULL UNIQUE,
            content_hash TEXT,
            created_at REAL NOT NULL,
            updated_at REAL NOT NULL,
            expires_at REAL
        );
        INSERT INTO heartbeat_actions_new (id, run_id, thread_id, seq, type, payload_json, state,
            ledger_id, error, idempotency_key, content_hash, created_at, updated_at)
            SELECT id, run_id, thread_id, seq, type, payload_json, state, ledger_id, error,
            idempotency_key, content_hash, created_at, updated_at FROM heartbeat_actions;
        DROP TABLE heartbeat_actions;
        DROP TABLE heartbeat_runs;
        ALTER TABLE heartbeat_runs_new RENAME TO heartbeat_runs;
        ALTER TABLE heartbeat_actions_new RENAME TO heartbeat_actions;
        CREATE INDEX ix_hb_runs_thread ON heartbeat_runs(thread_id, started_at);
        CREATE INDEX ix_hb_runs_running ON heartbeat_runs(outcome) WHERE outcome = 'running';
        CREATE INDEX ix_hb_runs_started ON heartbeat_runs(started_at);
        -- GET /api/heartbeat/status counts reply wakes and owner-active deferrals.
        CREATE INDEX ix_hb_runs_reply ON heartbeat_runs(trigger) WHERE trigger = 'reply';
        CREATE INDEX ix_hb_runs_owner_active ON heartbeat_runs(reason)
            WHERE reason = 'owner_active';
        CREATE INDEX ix_hb_actions_run ON heartbeat_actions(run_id, seq);
        CREATE INDEX ix_hb_actions_pending ON heartbeat_actions(state) WHERE state = 'pending';
        CREATE INDEX ix_hb_actions_thread ON heartbeat_actions(thread_id, created_at);
        CREATE INDEX ix_hb_actions_updated ON heartbeat_actions(updated_at);
        CREATE INDEX ix_hb_actions_sent ON heartbeat_actions(type, updated_at, ledger_id, state)
            WHERE state = 'sent';
        -- GET /api/approvals and the expiry read the proposals; status counts the owner states.
        CREATE INDEX ix_hb_actions_owner ON heartbeat_actions(state, expires_at)
            WHERE state IN ('proposed', 'rejected', 'expired');
        CREATE TRIGGER tr_hb_run_counts_insert AFTER INSERT ON heartbeat_runs BEGIN
            INSERT INTO heartbeat_run_counts (outcome, n) VALUES (NEW.outcome, 1)
                ON CONFLICT(outcome) DO UPDATE SET n = n + 1;
        END;
        CREATE TRIGGER tr_hb_run_counts_update AFTER UPDATE OF outcome ON heartbeat_runs
            WHEN OLD.outcome IS NOT NEW.outcome BEGIN
            UPDATE heartbeat_run_counts SET n = n - 1 WHERE outcome = OLD.outcome;
            INSERT INTO heartbeat_run_counts (outcome, n) VALUES (NEW.outcome, 1)
                ON CONFLICT(outcome) DO UPDATE SET n = n + 1;
        END;
        CREATE TRIGGER tr_hb_run_counts_delete AFTER DELETE ON heartbeat_runs BEGIN
            UPDATE heartbeat_run_counts SET n = n - 1 WHERE outcome = OLD.outcome;
        END;
        -- What the owner changed or declined, shown to the model in the thread's next prompts.
        CREATE TABLE heartbeat_owner_feedback (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            action_id INTEGER NOT NULL,
            thread_id TEXT NOT NULL REFERENCES thread_sessions(thread_id) ON DELETE CASCADE,
            type TEXT NOT NULL,
            verdict TEXT NOT NULL CHECK (verdict IN ('approved', 'edited', 'rejected')),
            original_json TEXT NOT NULL,
            final_json TEXT,
            reason TEXT,
            created_at REAL NOT NULL
        );
        CREATE INDEX ix_hb_feedback_thread ON heartbeat_owner_feedback(thread_id, created_at);
        -- A reply to the agent asks for its thread's heartbeat early (heartbeat.wake).
        CREATE TABLE heartbeat_wakes (
            thread_id TEXT PRIMARY KEY REFERENCES thread_sessions(thread_id) ON DELETE CASCADE,
            reason TEXT NOT NULL,
            comment_ids_json TEXT NOT NULL DEFAULT '[]',
            requested_at REAL NOT NULL
        );
        -- The prompt a heartbeat run sent (secrets masked, size-capped), kept for the latest
        -- runs of each thread, so a person can see what the agent saw (db/prompts.py).
        CREATE TABLE heartbeat_prompts (
            run_id TEXT PRIMARY KEY REFERENCES heartbeat_runs(run_id) ON DELETE CASCADE,
            thread_id TEXT NOT NULL,
            created_at REAL NOT NULL,
            chars INTEGER NOT NULL,
            truncated INTEGER NOT NULL DEFAULT 0,
            messages_json TEXT NOT NULL
        );
        CREATE INDEX ix_hb_prompts_thread ON heartbeat_prompts(thread_id, created_at);
        """,
    ),
    (
        6,
        """
        -- GET /api/threads (the dashboard's thread list, every poll of every tab) walks this
        -- in its ORDER BY instead of sorting every thread: at 10,000 threads the sort was
        -- two thirds of the request (bench/scale.py).
        CREATE INDEX ix_threads_updated ON thread_sessions(updated_at DESC, thread_id);
        """,
    ),
    (
        7,
        """
        -- db.agent_history reads what the agent did about the posts and comments a prompt
        -- shows: a lookup per id in these, where ix_hb_actions_sent's time range read every
        -- action of the last 30 days (with 20,000 past actions, 2.75 ms of each heartbeat
        -- against 0.27 ms; bench/heartbeat.py's aged DB).
        CREATE INDEX ix_hb_actions_sent_id ON heartbeat_actions(type, ledger_id, updated_at)
            WHERE state = 'sent';
        CREATE INDEX ix_hb_actions_comment_parent ON heartbeat_actions(
            (json_extract(payload_json, '$.parent_id'))
        ) WHERE type = 'comment';
        CREATE INDEX ix_hb_actions_comment_post ON heartbeat_actions(
            (json_extract(payload_json, '$.post_id'))
        ) WHERE type = 'comment' AND json_extract(payload_json, '$.parent_id') IS NULL;
        """,
    ),
]
