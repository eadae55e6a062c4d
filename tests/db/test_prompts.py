"""Prompts kept for the latest runs: secrets masked, size capped, older ones dropped."""

from __future__ import annotations

from fastapi.testclient import TestClient

from crt_loops.db import prompts
from crt_loops.db.heartbeats import RunRecord
from crt_loops.db.session import SessionDB
from crt_loops.heartbeat.prompt import keep_prompt
from crt_loops.heartbeat.redaction import mask_secrets
from crt_loops.llm.client import ChatMessage

SECRET = "moltbook_sk_0123456789abcdef"


def begin_run(db: SessionDB, thread_id: str = "default") -> RunRecord:
    from crt_loops.db import heartbeats

    db.ensure_thread(thread_id)
    run = RunRecord.begin(thread_id, trigger="manual", dry_run=False, now=db.clock())
    heartbeats.start_run(
        db,
        run_id=run.run_id,
        thread_id=thread_id,
        trigger="manual",
        dry_run=False,
        now=run.started_at,
    )
    return run


def test_secrets_are_masked_in_a_kept_prompt(db: SessionDB) -> None:
    run = begin_run(db)
    messages = [ChatMessage("system", "rules"), ChatMessage("user", f"my key is {SECRET}!")]
    keep_prompt(db, run, messages, [SECRET], now=db.clock())
    stored = prompts.get_prompt(db, run.run_id)
    assert stored is not None
    assert stored.messages == [
        {"role": "system", "content": "rules"},
        {"role": "user", "content": "my key is [secret]!"},
    ]
    assert SECRET not in str(stored.as_api())
    # a disguised secret that a plain replacement misses blanks the whole message
    assert mask_secrets(SECRET.upper(), [SECRET]).startswith("[redacted")


def test_prompts_are_capped_and_only_the_latest_are_kept(db: SessionDB) -> None:
    runs = [begin_run(db) for _ in range(prompts.KEEP_PER_THREAD + 3)]
    for i, run in enumerate(runs):
        prompts.save_prompt(
            db, run_id=run.run_id, thread_id="default", messages=[("user", "x" * 10)], now=i
        )
    kept = db.read().execute("SELECT COUNT(*) FROM heartbeat_prompts").fetchone()[0]
    assert kept == prompts.KEEP_PER_THREAD
    assert prompts.get_prompt(db, runs[0].run_id) is None
    assert prompts.get_prompt(db, runs[-1].run_id) is not None
    big = begin_run(db)
    prompts.save_prompt(
        db,
        run_id=big.run_id,
        thread_id="default",
        messages=[("system", "s" * 10), ("user", "u" * (prompts.MAX_PROMPT_CHARS + 500))],
        now=100,
    )
    stored = prompts.get_prompt(db, big.run_id)
    assert stored is not None and stored.truncated
    assert stored.chars == prompts.MAX_PROMPT_CHARS + 510
    assert len(stored.messages[1]["content"]) < prompts.MAX_PROMPT_CHARS + 100


def test_a_runs_prompt_is_viewable_from_the_api(client: TestClient) -> None:
    run = client.post("/api/threads/default/heartbeat/run-now").json()
    response = client.get(f"/api/threads/default/heartbeat/runs/{run['run_id']}/prompt")
    assert response.status_code == 200, response.text
    body = response.json()
    assert [m["role"] for m in body["messages"]] == ["system", "user"]
    assert "Read the feed" in "".join(m["content"] for m in body["messages"])
    assert body["chars"] == run["prompt_chars"]
    missing = client.get("/api/threads/default/heartbeat/runs/00ff/prompt")
    assert missing.status_code == 404 and "only the latest" in missing.json()["detail"]
