"""The startup banner names the dashboard, the docs, the LLM, the Ledger and the loops."""

from __future__ import annotations

from crt_loops.api.banner import banner_lines


def lines(**llm: object) -> str:
    return "\n".join(
        banner_lines(
            url="http://127.0.0.1:8123",
            llm={"host": "http://127.0.0.1:11434", "model": "llama3.2:latest", **llm},
            ledger={"url": "http://127.0.0.1:8787/api/v1", "embedded": True, "agent": "crt"},
            loops=[("reflection", True), ("heartbeat", False)],
        )
    )


def test_banner_says_where_to_go_and_what_runs() -> None:
    text = lines(available=True, enabled=True)
    assert "dashboard  http://127.0.0.1:8123/" in text
    assert "API docs   http://127.0.0.1:8123/docs" in text
    assert "ollama at http://127.0.0.1:11434, model llama3.2:latest: reachable" in text
    assert "Ledger     embedded at http://127.0.0.1:8787/api/v1, agent crt" in text
    assert "loops      reflection (not running: heartbeat" in text


def test_banner_says_what_to_do_when_no_model_answers() -> None:
    text = lines(available=False, enabled=True)
    assert "NOT reachable; start it with `ollama serve` and `ollama pull llama3.2:latest`" in text
    assert "off (CRT_LLM_ENABLED=false)" in lines(available=False, enabled=False)
