"""What a heartbeat runner is built from: its collaborators and its settings, as two typed
objects instead of fourteen keyword arguments.

:class:`RunnerDeps` holds the things that do work (the session DB, the LLM, the Ledger client,
HEARTBEAT.md's path, the clock); :class:`RunnerOptions` holds plain values. ``from_settings``
builds both from the service's Settings, as the app's composition root does.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from crt_loops.core.identity import PROCESS_OWNER
from crt_loops.db.session import SessionDB
from crt_loops.ledger.client import LedgerClient
from crt_loops.llm.client import LLM

if TYPE_CHECKING:
    from crt_loops.ledger.embed import EmbeddedLedger
    from crt_loops.settings import Settings

# Moltbook's published limits, used ahead of a 429 when the Ledger is not our embedded one.
DEFAULT_POST_COOLDOWN = 1800.0
DEFAULT_COMMENT_COOLDOWN = 20.0
DEFAULT_COMMENTS_PER_DAY = 50
# A claim must outlive the LLM call plus the Ledger calls; a dead holder's expires.
LEASE_MARGIN_SECONDS = 120.0


@dataclass(frozen=True)
class LedgerLimits:
    """The Ledger's rate limits, checked before sending so that a run does not earn a 429."""

    post_cooldown: float = DEFAULT_POST_COOLDOWN
    comment_cooldown: float = DEFAULT_COMMENT_COOLDOWN
    comments_per_day: int = DEFAULT_COMMENTS_PER_DAY


@dataclass(frozen=True, kw_only=True)
class RunnerDeps:
    """The runner's collaborators. ``ledger`` is None when the Ledger did not start."""

    db: SessionDB
    llm: LLM
    ledger: LedgerClient | None
    heartbeat_md: Path | str
    clock: Callable[[], float] = time.time


@dataclass(frozen=True, kw_only=True)
class RunnerOptions:
    """The runner's settings.

    ``window``: recent messages in the context. ``prompt_tokens``: the prompt's budget in
    tokens. ``secrets``: strings that must never leave in an action (redacted from what is
    stored). ``ledger_error``: why the Ledger is missing, for the runs that fail on it.
    ``owner``: the lease holder's identity (this process).
    """

    agent_name: str
    default_model: str
    default_timezone: str | None
    window: int
    llm_timeout: float
    prompt_tokens: int = 3000
    max_concurrency: int = 1
    limits: LedgerLimits = field(default_factory=LedgerLimits)
    secrets: tuple[str, ...] = ()
    ledger_error: str | None = None
    owner: str = PROCESS_OWNER
    owner_quiet_seconds: float = 0.0  # 0: never defer to the owner talking in the thread
    #: A run's lease outlives its LLM deadline by this much (the Ledger sends, the record);
    #: when its holder dies, another process or host recovers the run after the lease expires.
    lease_margin: float = LEASE_MARGIN_SECONDS

    def __post_init__(self) -> None:
        # Empty strings would "match" everywhere in redaction.
        object.__setattr__(self, "secrets", tuple(s for s in self.secrets if s))

    @property
    def lease_ttl(self) -> float:
        return self.llm_timeout + self.lease_margin


def from_settings(
    settings: Settings,
    *,
    db: SessionDB,
    llm: LLM,
    ledger: EmbeddedLedger | None,
    ledger_error: str | None = None,
) -> tuple[RunnerDeps, RunnerOptions]:
    """The runner's deps and options for the service: the embedded Ledger's client and key,
    the API token and Ledger key as secrets, the embedded Ledger's limits when it is ours."""
    client = ledger.client() if ledger is not None else None
    secrets = [ledger.api_key] if ledger is not None and ledger.api_key else []
    if settings.api_token:
        secrets.append(settings.api_token.get_secret_value())
    if settings.ledger_api_key:
        secrets.append(settings.ledger_api_key.get_secret_value())
    # Another Ledger's limits are Moltbook's unless they were set: several hosts sharing one
    # of our own Ledgers (README, "Scaling out") set the limits it was started with.
    limit_fields = {
        "ledger_post_cooldown_seconds",
        "ledger_comment_cooldown_seconds",
        "ledger_comments_per_day",
    }
    limits = (
        LedgerLimits(
            settings.ledger_post_cooldown_seconds,
            settings.ledger_comment_cooldown_seconds,
            settings.ledger_comments_per_day,
        )
        if settings.ledger_embedded or limit_fields & settings.model_fields_set
        else LedgerLimits()
    )
    deps = RunnerDeps(db=db, llm=llm, ledger=client, heartbeat_md=settings.heartbeat_md_path)
    options = RunnerOptions(
        agent_name=settings.agent_name,
        default_model=settings.ollama_model,
        default_timezone=settings.timezone,
        window=settings.loop_window,
        llm_timeout=settings.llm_timeout_seconds,
        prompt_tokens=settings.heartbeat_prompt_tokens,
        max_concurrency=settings.heartbeat_max_concurrency,
        limits=limits,
        secrets=tuple(secrets),
        ledger_error=None
        if client
        else f"the Ledger did not start: {ledger_error or 'see the startup log'}",
        owner_quiet_seconds=settings.heartbeat_owner_quiet_seconds,
        lease_margin=settings.heartbeat_lease_margin_seconds,
    )
    return deps, options
