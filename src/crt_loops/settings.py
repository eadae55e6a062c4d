"""One typed Settings object for every environment variable the service reads.

Everything configurable lives here, with its default and a one-line help text; the README's
settings table is checked against this module by a test. Loops and routes receive values from
a ``Settings`` instance, never from ``os.environ``.
"""

from __future__ import annotations

import os
import zoneinfo
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AliasChoices, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

ENV_PREFIX = "CRT_"


class SettingsError(ValueError):
    """Raised when an environment variable holds a value the service cannot use.

    The message names each offending variable and what it expected, so startup fails with a
    sentence a person can act on instead of a traceback.
    """


class Settings(BaseSettings):
    """Every setting of docs/architecture.md §8. Field ``foo_bar`` is read from ``CRT_FOO_BAR``
    unless noted."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        populate_by_name=True,
        extra="ignore",
        frozen=True,
        validate_default=True,
    )

    data_dir: Path = Field(Path("./data"), description="session DB crt.db and Ledger DB ledger.db")
    workspace: Path = Field(
        default_factory=Path.cwd, description="HEARTBEAT.md lives at its root (default: cwd)"
    )
    database_url: str | None = Field(
        None,
        description="postgresql://user@host:port/db: the session DB on PostgreSQL, shared by "
        "every host (unset: $CRT_DATA_DIR/crt.db)",
    )
    ledger_database_url: str | None = Field(
        None,
        description="postgresql://...: the embedded Ledger's DB on PostgreSQL (unset: "
        "$CRT_DATA_DIR/ledger.db)",
    )

    reflection_loop_enabled: bool = Field(True, description="run the reflection loop")
    reflection_loop_seconds: float = Field(900, ge=1, description="reflection loop interval")
    personality_loop_enabled: bool = Field(True, description="run the personality loop")
    personality_loop_seconds: float = Field(1200, ge=1, description="personality loop interval")
    journal_self_reply_loop_enabled: bool = Field(True, description="run the self-reply loop")
    journal_self_reply_loop_seconds: float = Field(
        1800, ge=1, description="self-reply loop interval"
    )
    journal_self_reply_chance: float = Field(
        0.25, ge=0, le=1, description="chance per pass that the agent answers its own entry"
    )
    journal_self_reply_min_seconds: float = Field(
        1800, ge=0, description="minimum gap between self-replies in one thread"
    )
    heartbeat_loop_enabled: bool = Field(False, description="run the heartbeat loop at startup")
    heartbeat_loop_seconds: float = Field(
        1800, ge=1, description="longest sleep between heartbeat checks"
    )
    heartbeat_lease_margin_seconds: float = Field(
        120,
        ge=1,
        description="a heartbeat's lease lasts the LLM timeout plus this; a dead holder's run "
        "is recovered by another process or host once it expires",
    )
    heartbeat_max_concurrency: int = Field(
        1, ge=1, le=64, description="heartbeat runs (LLM calls) in flight at once, per process"
    )
    heartbeat_owner_quiet_seconds: float = Field(
        120,
        ge=0,
        le=86_400,
        description="a scheduled heartbeat waits while the owner wrote in the thread this "
        "recently (0: never waits)",
    )
    heartbeat_reply_wake_seconds: float = Field(
        120,
        ge=0,
        le=86_400,
        description="how often one Ledger read looks for replies that wake a thread's "
        "heartbeat early (0: off)",
    )
    loop_window: int = Field(20, ge=1, le=500, description="recent messages given to the LLM")
    reflection_threshold: int = Field(
        40, ge=1, description="summed importance of new messages that triggers a reflection"
    )

    llm_enabled: bool = Field(True, description="false: heuristics only, no LLM calls at all")
    ollama_host: str = Field(
        "http://127.0.0.1:11434",
        validation_alias=AliasChoices("CRT_OLLAMA_HOST", "OLLAMA_HOST", "ollama_host"),
        description="Ollama server URL (falls back to OLLAMA_HOST)",
    )
    ollama_model: str = Field(
        "llama3.2:latest", min_length=1, description="default model for every loop and chat"
    )
    llm_timeout_seconds: float = Field(
        120, gt=0, le=3600, description="total deadline of one LLM call (connect to last token)"
    )
    llm_backend: Literal["ollama", "openai"] = Field(
        "ollama", description="ollama, or openai for an OpenAI-compatible server (llama.cpp, vLLM)"
    )
    llm_base_url: str | None = Field(
        None, description="the LLM server's URL for either backend (default: CRT_OLLAMA_HOST)"
    )
    llm_api_key: SecretStr | None = Field(
        None, description="Bearer key for an OpenAI-compatible server that wants one"
    )
    heartbeat_prompt_tokens: int = Field(
        3000,
        ge=256,
        le=1_000_000,
        description="heartbeat prompt budget in tokens (3,000 leaves room in a 4,096 context)",
    )

    ledger_url: str | None = Field(None, description="base URL of another Ledger (.../api/v1)")
    ledger_api_key: SecretStr | None = Field(None, description="API key for that other Ledger")
    ledger_port: int = Field(
        8787, ge=0, le=65535, description="loopback port of the embedded Ledger"
    )
    ledger_post_cooldown_seconds: float = Field(
        1800, ge=0, description="embedded Ledger: one post per agent per this many seconds"
    )
    ledger_comment_cooldown_seconds: float = Field(
        20, ge=0, description="embedded Ledger: one comment per agent per this many seconds"
    )
    ledger_comments_per_day: int = Field(
        50, ge=0, description="embedded Ledger: comments per agent per day"
    )
    ledger_requests_per_minute: int = Field(
        100, ge=1, description="embedded Ledger: requests per agent per minute"
    )
    ledger_verification: bool = Field(
        False, description="embedded Ledger: new posts and comments wait for a solved challenge"
    )
    agent_name: str = Field(
        "crt", pattern=r"^[A-Za-z0-9_-]{2,32}$", description="the agent's name on the Ledger"
    )
    timezone: str | None = Field(None, description="default IANA zone for active hours")
    allowed_hosts: Annotated[tuple[str, ...], NoDecode] = Field(
        (),
        description="extra host names the API and the Ledger answer to, comma-separated "
        "(a reverse proxy's or a LAN name); localhost, 127.0.0.1, [::1] and HOST always work",
    )
    api_token: SecretStr | None = Field(
        None, description="when set, every /api request needs Authorization: Bearer <token>"
    )
    log_level: str = Field("INFO", description="DEBUG, INFO, WARNING or ERROR")
    access_log: Literal["changes", "all", "off"] = Field(
        "changes",
        description="access lines: changes (writes and errors, not the dashboard's polling), "
        "all, or off",
    )

    heartbeat_retention_days: float = Field(
        90,
        ge=0,
        description="heartbeat runs and their actions older than this are pruned "
        "(0 keeps them all)",
    )
    journal_retention_days: float = Field(
        0, ge=0, description="journal entries older than this are pruned (0 keeps them all)"
    )
    message_retention_days: float = Field(
        0, ge=0, description="messages older than this are pruned (0 keeps them all)"
    )

    host: str = Field(
        "127.0.0.1",
        validation_alias=AliasChoices("HOST", "host"),
        description="make run: bind address",
    )
    port: int = Field(
        8000,
        ge=0,
        le=65535,
        validation_alias=AliasChoices("PORT", "port"),
        description="make run: port",
    )

    @field_validator("ollama_host")
    @classmethod
    def _normalise_host(cls, value: str) -> str:
        value = value.strip().rstrip("/")
        if not value:
            raise ValueError("must not be empty")
        if "://" not in value:
            # OLLAMA_HOST is often given as "127.0.0.1:11434" or "0.0.0.0"; the client needs a URL.
            value = "http://" + value
        return value

    @field_validator("llm_base_url")
    @classmethod
    def _normalise_base_url(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        value = value.strip().rstrip("/")
        if not value.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL")
        return value

    @field_validator("ledger_url")
    @classmethod
    def _normalise_ledger_url(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        value = value.strip().rstrip("/")
        if not value.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL ending in /api/v1")
        return value

    @field_validator("timezone")
    @classmethod
    def _check_zone(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        try:
            zoneinfo.ZoneInfo(value.strip())
        except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown IANA time zone {value!r}") from exc
        return value.strip()

    @field_validator("log_level")
    @classmethod
    def _check_level(cls, value: str) -> str:
        level = value.strip().upper()
        if level not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
            raise ValueError("must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL")
        return level

    @field_validator("allowed_hosts", mode="before")
    @classmethod
    def _split_hosts(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = [part for part in value.replace(",", " ").split() if part]
        if not isinstance(value, list | tuple):
            return value
        names = []
        for raw in value:
            name = str(raw).strip().lower()
            if not name:
                continue
            if "/" in name or "@" in name or "*" in name:
                raise ValueError(
                    f"{raw!r} is not a host name: list names such as crt.lan or 192.168.1.5, "
                    "without a scheme, path or wildcard"
                )
            names.append(name)
        return tuple(names)

    @field_validator("database_url", "ledger_database_url")
    @classmethod
    def _postgres_url(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        if not value.startswith(("postgresql://", "postgres://")):
            raise ValueError(
                f"{value!r:.80} is not a PostgreSQL URL: write postgresql://user@host:port/db"
            )
        return value.strip()

    @field_validator("api_token", "ledger_api_key", "llm_api_key")
    @classmethod
    def _blank_secret_is_unset(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value().strip():
            return None
        return value

    @property
    def session_db_path(self) -> Path:
        return self.data_dir / "crt.db"

    @property
    def session_db_target(self) -> Path | str:
        """What SessionDB opens: CRT_DATABASE_URL, else the SQLite file in the data dir."""
        return self.database_url or self.session_db_path

    @property
    def ledger_db_path(self) -> Path:
        return self.data_dir / "ledger.db"

    @property
    def ledger_db_target(self) -> Path | str:
        """What the Ledger opens: CRT_LEDGER_DATABASE_URL, else ledger.db in the data dir."""
        return self.ledger_database_url or self.ledger_db_path

    @property
    def heartbeat_md_path(self) -> Path:
        return self.workspace / "HEARTBEAT.md"

    @property
    def host_names(self) -> tuple[str, ...]:
        """The names the edge accepts beside the loopback ones: HOST and CRT_ALLOWED_HOSTS."""
        return (self.host, *self.allowed_hosts)

    @property
    def llm_url(self) -> str:
        """Where the LLM server is: CRT_LLM_BASE_URL, else CRT_OLLAMA_HOST."""
        return self.llm_base_url or self.ollama_host

    @property
    def ledger_embedded(self) -> bool:
        return self.ledger_url is None


def env_name(field: str) -> str:
    """The environment variable a Settings field is read from."""
    info = Settings.model_fields[field]
    alias = info.validation_alias
    if isinstance(alias, AliasChoices):
        first = alias.choices[0]
        if isinstance(first, str):
            return first
    return ENV_PREFIX + field.upper()


def documented_settings() -> list[tuple[str, Any, str]]:
    """(variable, default, help) for every setting, in declaration order."""
    rows: list[tuple[str, Any, str]] = []
    for name, info in Settings.model_fields.items():
        default: Any = "(computed)" if info.default_factory is not None else info.default
        rows.append((env_name(name), default, info.description or ""))
    return rows


def load_settings(**overrides: Any) -> Settings:
    """Read the environment (plus ``overrides``); SettingsError names each bad variable."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            loc = err.get("loc") or ("?",)
            field = str(loc[0])
            var = env_name(field) if field in Settings.model_fields else field
            raw = err.get("input")
            shown = f" (got {raw!r})" if isinstance(raw, str | int | float) else ""
            problems.append(f"{var}: {err.get('msg', 'invalid value')}{shown}")
        raise SettingsError("invalid settings: " + "; ".join(problems)) from exc


def environment_snapshot() -> dict[str, str]:
    """The CRT_* variables currently set, with secrets masked (for startup logging)."""
    secret = {"CRT_API_TOKEN", "CRT_LEDGER_API_KEY", "CRT_LLM_API_KEY"}
    return {
        key: ("***" if key in secret else value)
        for key, value in sorted(os.environ.items())
        if key.startswith(ENV_PREFIX)
    }
