"""The one wording table: headlines that agree with the run's actions and say when."""

from __future__ import annotations

from datetime import UTC, datetime

from crt_loops.core import wording


def blocked_post(error: str) -> dict[str, object]:
    return {"type": "post", "state": "blocked", "reason": "rate_limited", "error": error}


def test_a_dry_run_whose_only_post_was_blocked_does_not_claim_an_action() -> None:
    run = {
        "outcome": "dry_run",
        "reason": "no_action",
        "actions": [blocked_post("the next post is allowed at 21:40 UTC, in 12 min")],
    }
    headline = wording.run_headline(run)
    assert headline == (
        "Dry run: nothing would be sent; 1 post blocked: "
        "the next post is allowed at 21:40 UTC, in 12 min"
    )


def test_a_silent_rate_limited_run_says_nothing_was_sent_and_why() -> None:
    run = {"outcome": "silent", "reason": "rate_limited", "actions": [blocked_post("cooldown")]}
    assert wording.run_headline(run) == "Silent: nothing sent; 1 post blocked: cooldown"


def test_acted_counts_what_was_sent() -> None:
    run = {
        "outcome": "acted",
        "reason": None,
        "actions": [{"type": "vote", "state": "sent"}, {"type": "vote", "state": "sent"}],
    }
    assert wording.run_headline(run) == "Acted: sent 2 votes"


def test_skips_and_failures_carry_the_hint() -> None:
    assert wording.run_headline({"outcome": "skipped", "reason": "llm_unavailable"}).startswith(
        "Skipped: no LLM answered (start Ollama"
    )
    assert wording.run_headline({"outcome": "failed", "reason": "interrupted"}).startswith(
        "Failed: interrupted ("
    )


def test_every_documented_reason_has_words() -> None:
    documented = [
        "partial",
        "no_action",
        "target",
        "max_actions",
        "unknown_post",
        "already_voted",
        "duplicate",
        "rate_limited",
        "too_long",
        "empty",
        "invalid",
        "self_vote",
        "secret",
        "internal_leak",
        "blocked",
        "disabled",
        "quiet_hours",
        "empty_instructions",
        "no_new_context",
        "llm_unavailable",
        "busy",
        "llm_error",
        "llm_timeout",
        "invalid_decision",
        "ledger_error",
        "instructions_error",
        "db_error",
        "interrupted",
        "internal_error",
    ]
    assert sorted(set(documented) - set(wording.REASONS)) == []
    assert all(wording.REASONS[r].label and wording.REASONS[r].hint for r in documented)


def test_allowed_again_gives_the_clock_time_and_the_wait() -> None:
    now = datetime(2026, 12, 1, 21, 28, tzinfo=UTC).timestamp()
    assert wording.allowed_again(now + 12 * 60, now) == "at 21:40 UTC, in 12 min"
    assert wording.allowed_again(now + 30, now) == "at 21:28 UTC, in 30 s"
