"""Migration 5 of the session DB: the owner in the loop (approvals, owner feedback, reply wakes).

Its own module because it is long: SQLite cannot change a CHECK constraint, so the heartbeat
runs and actions tables are rebuilt to admit the run outcome ``proposed``, the trigger
``reply`` and the action states ``proposed``, ``rejected`` and ``expired``.
"""

from __future__ import annotations

OWNER_IN_THE_LOOP = """
        -- The owner in the loop: the outbox gains proposed/rejected/expired actions (with the
        -- time a proposal expires), runs gain the outcome `proposed` and the trigger `reply`.
        -- SQLite cannot change a CHECK constraint, so both tables are rebuilt. The new runs
        -- table is filled first and the actions table is pointed at it before the old runs
        -- table is dropped: dropping a parent with foreign keys on deletes its children.
        CREATE TABLE heartbeat_runs_new (
            run_id TEXT PRIMARY KEY,
            thread_id TEXT NOT NULL REFERENCES thread_sessions(thread_id) ON DELETE CASCADE,
            trigger TEXT NOT NULL CHECK (trigger IN ('schedule', 'manual', 'reply')),
            outcome TEXT NOT NULL CHECK (outcome IN
                ('running', 'acted', 'silent', 'dry_run', 'skipped', 'failed', 'proposed')),
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
            type TEXT NOT NULL CHECK (type IN ('post', 'comment', 'vote')),
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
"""
