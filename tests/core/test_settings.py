"""Settings: typed, validated at startup with messages that name the variable; documented."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from crt_loops.settings import Settings, SettingsError, documented_settings, env_name, load_settings

README = Path(__file__).resolve().parents[2] / "README.md"


def test_defaults_match_the_design(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in list(__import__("os").environ):
        if key.startswith("CRT_") or key in {"OLLAMA_HOST", "HOST", "PORT"}:
            monkeypatch.delenv(key)
    s = load_settings()
    assert s.reflection_loop_seconds == 900 and s.reflection_loop_enabled
    assert s.personality_loop_seconds == 1200
    assert s.journal_self_reply_loop_seconds == 1800
    assert s.journal_self_reply_chance == 0.25
    assert s.heartbeat_loop_enabled is False and s.heartbeat_loop_seconds == 1800
    assert s.loop_window == 20 and s.reflection_threshold == 40
    assert s.ollama_host == "http://127.0.0.1:11434"
    assert s.ollama_model == "llama3.2:latest"
    assert s.ledger_port == 8787 and s.agent_name == "crt"
    assert (s.host, s.port) == ("127.0.0.1", 8000)


@pytest.mark.parametrize("raw", ["true", "1", "yes", "on", "TRUE"])
def test_booleans_accept_the_usual_spellings(monkeypatch: pytest.MonkeyPatch, raw: str) -> None:
    monkeypatch.setenv("CRT_HEARTBEAT_LOOP_ENABLED", raw)
    assert load_settings().heartbeat_loop_enabled is True


@pytest.mark.parametrize(
    ("var", "value", "expected"),
    [
        ("CRT_REFLECTION_LOOP_SECONDS", "abc", "CRT_REFLECTION_LOOP_SECONDS"),
        ("CRT_REFLECTION_LOOP_SECONDS", "0", "greater than or equal to 1"),
        ("CRT_HEARTBEAT_LOOP_ENABLED", "maybe", "CRT_HEARTBEAT_LOOP_ENABLED"),
        ("CRT_JOURNAL_SELF_REPLY_CHANCE", "1.5", "CRT_JOURNAL_SELF_REPLY_CHANCE"),
        ("CRT_TIMEZONE", "Mars/Olympus", "unknown IANA time zone"),
        ("CRT_LEDGER_URL", "ftp://x", "CRT_LEDGER_URL"),
        ("PORT", "http", "PORT"),
    ],
)
def test_bad_values_name_the_variable(
    monkeypatch: pytest.MonkeyPatch, var: str, value: str, expected: str
) -> None:
    monkeypatch.setenv(var, value)
    with pytest.raises(SettingsError, match=re.escape(expected)) as info:
        load_settings()
    assert var in str(info.value)


def test_ollama_host_falls_back_to_ollama_host(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CRT_OLLAMA_HOST", raising=False)
    monkeypatch.setenv("OLLAMA_HOST", "10.1.2.3:11434")
    assert load_settings().ollama_host == "http://10.1.2.3:11434"
    monkeypatch.setenv("CRT_OLLAMA_HOST", "http://box:1/")
    assert load_settings().ollama_host == "http://box:1"


def test_secrets_are_not_shown(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CRT_API_TOKEN", "hunter2")
    s = load_settings()
    assert "hunter2" not in repr(s)
    assert s.api_token is not None and s.api_token.get_secret_value() == "hunter2"


def test_every_setting_is_in_the_readme() -> None:
    text = README.read_text(encoding="utf-8")
    missing = [var for var, _, _ in documented_settings() if f"`{var}`" not in text]
    assert missing == [], f"settings missing from README.md: {missing}"
    assert env_name("host") == "HOST"
    assert len(Settings.model_fields) == len(documented_settings())
