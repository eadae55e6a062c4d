"""heartbeat.deps: the runner's deps and options built from Settings, as the service builds them."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from crt_loops.db.session import SessionDB
from crt_loops.heartbeat.deps import (
    DEFAULT_COMMENTS_PER_DAY,
    DEFAULT_POST_COOLDOWN,
    LEASE_MARGIN_SECONDS,
    LedgerLimits,
    RunnerOptions,
    from_settings,
)
from crt_loops.llm.client import DisabledLLM
from crt_loops.settings import Settings


def test_options_from_settings_without_a_ledger(
    make_settings: Callable[..., Settings], db: SessionDB, tmp_path: Path
) -> None:
    settings = make_settings(
        api_token="crt-token-0123456789abcdef",
        ledger_post_cooldown_seconds=60,
        heartbeat_max_concurrency=3,
    )
    llm = DisabledLLM("http://127.0.0.1:9", "m")
    deps, options = from_settings(settings, db=db, llm=llm, ledger=None, ledger_error="port busy")
    assert deps.ledger is None and deps.db is db and deps.llm is llm
    assert deps.heartbeat_md == tmp_path / "HEARTBEAT.md"
    assert options.ledger_error == "the Ledger did not start: port busy"
    assert options.secrets == ("crt-token-0123456789abcdef",)
    # The embedded Ledger's limits, because no other Ledger is configured.
    assert options.limits == LedgerLimits(60, 20, 50)
    assert options.max_concurrency == 3
    assert options.lease_ttl == settings.llm_timeout_seconds + LEASE_MARGIN_SECONDS


def test_another_ledger_gets_moltbooks_published_limits(
    make_settings: Callable[..., Settings], db: SessionDB
) -> None:
    settings = make_settings(ledger_url="http://127.0.0.1:9/api/v1", ledger_api_key="moltbook_k1")
    llm = DisabledLLM("http://127.0.0.1:9", "m")
    _deps, options = from_settings(settings, db=db, llm=llm, ledger=None)
    assert options.limits.post_cooldown == DEFAULT_POST_COOLDOWN
    assert options.limits.comments_per_day == DEFAULT_COMMENTS_PER_DAY
    assert options.secrets == ("moltbook_k1",)
    assert options.ledger_error == "the Ledger did not start: see the startup log"


def test_empty_secrets_are_dropped() -> None:
    # An empty string would "match" every text in redaction.
    options = RunnerOptions(
        agent_name="crt",
        default_model="m",
        default_timezone=None,
        window=5,
        llm_timeout=10,
        secrets=("", "k"),
    )
    assert options.secrets == ("k",)
