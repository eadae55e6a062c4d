"""Bad input: schemathesis over the whole OpenAPI schema, then a table of
hostile inputs.

The server is the real app (``crt_api.create_app``) served by real uvicorn in a thread
(``server_thread.ServerThread``) on a loopback port, with a fake Ollama (so chat answers 200 and
the loops' LLM paths run) and the embedded Ledger on its own port.

Schemathesis checks, for every generated case, positive and negative:

- ``not_a_server_error``: no 5xx, ever;
- ``status_code_conformance``: the status is one the schema documents;
- ``content_type_conformance`` and ``response_schema_conformance``: the body matches the schema
  documented for that status;
- ``negative_data_rejection``: a request the schema says is invalid gets a 4xx.

Disabled: ``positive_data_acceptance`` (a schema-valid request may still be refused for a reason a
schema cannot express: a thread that does not exist is a 404, deleting ``default`` is a 409, a
run already in progress is a 409) and ``max_response_time`` (timing is not what this measures).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import hypothesis
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    negative_data_rejection,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)
from support import heartbeat_scripts, llm_scripts
from support.fake_ollama import FakeOllama

from crt_loops.api import app as crt_api
from crt_loops.core.server_thread import ServerThread
from crt_loops.settings import Settings

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
EXAMPLES_PER_OPERATION = {GenerationMode.POSITIVE: 70, GenerationMode.NEGATIVE: 35}
HEARTBEAT_MD = "# HEARTBEAT.md\n\n## Checklist\n- Review recent posts\n"


@dataclass
class Server:
    url: str
    app: Any
    settings: Settings
    fake: FakeOllama
    tmp: Path
    client: httpx.Client = field(init=False)

    def __post_init__(self) -> None:
        self.client = httpx.Client(base_url=self.url, timeout=30)

    @property
    def db_path(self) -> Path:
        return self.settings.session_db_path

    @property
    def md_path(self) -> Path:
        return self.settings.heartbeat_md_path


def make_settings(tmp: Path, fake: FakeOllama) -> Settings:
    return Settings(  # type: ignore[call-arg]
        _env_file=None,
        data_dir=tmp / "data",
        workspace=tmp,
        ollama_host=fake.url,
        ledger_port=0,
        llm_timeout_seconds=10,
        reflection_loop_enabled=False,
        personality_loop_enabled=False,
        journal_self_reply_loop_enabled=False,
        heartbeat_loop_enabled=False,
        ledger_post_cooldown_seconds=0,
        ledger_requests_per_minute=100_000,
    )


def serve(tmp: Path, fake: FakeOllama) -> Iterator[Server]:
    llm_scripts.install_thinking_routes(fake)
    heartbeat_scripts.install(fake, heartbeat_scripts.silent)
    fake.set_responder(lambda request: "A short, friendly reply.")
    (tmp / "HEARTBEAT.md").write_text(HEARTBEAT_MD, encoding="utf-8")
    settings = make_settings(tmp, fake)
    app = crt_api.create_app(settings)
    server = ServerThread(app, name="crt-under-test")
    server.start()
    srv = Server(server.url, app, settings, fake, tmp)
    try:
        yield srv
    finally:
        srv.client.close()
        server.stop(timeout=30)


@pytest.fixture
def server(tmp_path: Path, fake_ollama: FakeOllama) -> Iterator[Server]:
    yield from serve(tmp_path, fake_ollama)


# -- schemathesis ---------------------------------------------------------------------------


@dataclass
class FuzzTally:
    cases: int = 0
    statuses: dict[int, int] = field(default_factory=dict)
    failures: dict[str, str] = field(default_factory=dict)  # distinct failure -> one example


def fuzz(
    op: schemathesis.APIOperation,
    mode: GenerationMode,
    url: str,
    session: requests.Session,
    tally: FuzzTally,
) -> None:
    """Up to EXAMPLES_PER_OPERATION[mode] cases of ``op``, each validated by the checks."""
    checks = [*CHECKS, negative_data_rejection] if mode is GenerationMode.NEGATIVE else CHECKS

    @given(case=op.as_strategy(generation_mode=mode))
    @hypothesis.settings(
        max_examples=EXAMPLES_PER_OPERATION[mode],
        deadline=None,
        database=None,
        derandomize=True,  # the same cases on every run: CI failures reproduce
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    def run(case: schemathesis.Case) -> None:
        tally.cases += 1
        response = case.call(base_url=url, session=session, timeout=30)
        tally.statuses[response.status_code] = tally.statuses.get(response.status_code, 0) + 1
        try:
            case.validate_response(response, checks=checks)
        except BaseExceptionGroup as group:  # collect every failure, report them together
            for exc in group.exceptions:
                title = str(exc).splitlines()[0]
                key = f"{op.label} [{mode.value}] -> {response.status_code}: {title}"
                tally.failures.setdefault(
                    key, f"{str(exc)[:500]}\n  {case.as_curl_command()[:300]}"
                )

    try:
        run()
    except hypothesis.errors.Unsatisfiable:
        # Nothing to make invalid (no parameters, no body): no negative cases exist.
        assert mode is GenerationMode.NEGATIVE, op.label


#: The operations are fuzzed in this many shards, each with its own server, so the suite's
#: workers share the fuzzing instead of one of them carrying all of it.
SHARDS = 4


@pytest.mark.slow
@pytest.mark.parametrize("shard", range(SHARDS))
def test_schemathesis_whole_api(server: Server, shard: int) -> None:
    schema = schemathesis.openapi.from_url(f"{server.url}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 30, [op.label for op in operations]
    mine = operations[shard::SHARDS]
    tally = FuzzTally()
    with requests.Session() as session:
        for op in mine:
            for mode in EXAMPLES_PER_OPERATION:
                fuzz(op, mode, server.url, session, tally)
    five_xx = sum(n for status, n in tally.statuses.items() if status >= 500)
    print(
        f"\nschemathesis shard {shard}: {len(mine)} of {len(operations)} operations, "
        f"{tally.cases} cases, statuses {dict(sorted(tally.statuses.items()))}, 5xx {five_xx}, "
        f"failures {len(tally.failures)}"
    )
    assert not tally.failures, f"{len(tally.failures)} distinct failure(s):\n" + "\n".join(
        f"{key}\n  {detail}" for key, detail in list(tally.failures.items())[:30]
    )
    assert five_xx == 0
    # Positive cases alone: every operation has at least a few (negative ones may not exist).
    assert tally.cases >= 20 * len(mine)


# -- hostile inputs ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One server for the whole table (a fake Ollama answers; no refused request reaches it)."""
    tmp = tmp_path_factory.mktemp("hostile")
    with FakeOllama() as fake:
        yield from serve(tmp, fake)


def snapshot(server: Server) -> dict[str, Any]:
    """Everything a refused request must leave untouched."""
    conn = sqlite3.connect(f"file:{server.db_path}?mode=ro", uri=True)
    try:
        counts = {
            table: conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
            for table in (
                "thread_sessions",
                "messages",
                "journal_entries",
                "heartbeat_runs",
                "heartbeat_actions",
                "personality_profiles",
                "kv",
            )
        }
        configs = conn.execute(
            "SELECT thread_id, heartbeat_config_json, journal_self_reply FROM thread_sessions "
            "ORDER BY thread_id"
        ).fetchall()
    finally:
        conn.close()
    md = server.md_path
    return {
        "counts": counts,
        "configs": configs,
        "heartbeat_md": md.read_bytes() if md.exists() else None,
    }


@dataclass(frozen=True)
class Hostile:
    name: str
    method: str
    path: str
    json: Any = None
    content: bytes | None = None
    headers: dict[str, str] | None = None
    status: tuple[int, ...] = (422,)
    names: tuple[str, ...] = ()  # what the detail must mention (case-insensitive)

    def __str__(self) -> str:
        return self.name


CONFIG = "/api/threads/default/heartbeat/config"
MESSAGES = "/api/threads/default/messages"
MD = "/api/heartbeat/heartbeat.md"
ID_RULE = "^[a-za-z0-9_-]{1,64}$"
LONG_ID = "a" * 65

HOSTILE = [
    # -- ids: path traversal, too long, unicode: never rewritten, always refused
    Hostile(
        "traversal-encoded-dots",
        "GET",
        "/api/threads/%2E%2E/heartbeat/config",
        names=("thread_id", ID_RULE),
    ),
    Hostile(
        "traversal-encoded-slash",
        "POST",
        "/api/threads/..%2F..%2Fetc/messages",
        json={"content": "hi"},
        status=(404, 422),
        names=("not found",),
    ),
    Hostile(
        "traversal-config-post",
        "POST",
        "/api/threads/..%2F..%2Fetc%2Fpasswd/heartbeat/config",
        json={"enabled": True},
        status=(404, 422),
        names=("not found",),
    ),
    Hostile(
        "traversal-in-body",
        "POST",
        "/api/threads",
        json={"thread_id": "../../etc/passwd"},
        names=("thread_id", "pattern"),
    ),
    Hostile(
        "traversal-loops-run",
        "POST",
        "/api/loops/run",
        json={"thread_id": "../default", "loops": ["reflection"]},
        names=("thread_id",),
    ),
    Hostile(
        "65-char-id-get",
        "GET",
        f"/api/threads/{LONG_ID}/heartbeat/config",
        names=("thread_id", "1-64"),
    ),
    Hostile(
        "65-char-id-config",
        "POST",
        f"/api/threads/{LONG_ID}/heartbeat/config",
        json={"enabled": True},
        names=("thread_id", "1-64"),
    ),
    Hostile(
        "65-char-id-message",
        "POST",
        f"/api/threads/{LONG_ID}/messages",
        json={"content": "hi"},
        names=("thread_id", "1-64"),
    ),
    Hostile(
        "65-char-id-create",
        "POST",
        "/api/threads",
        json={"thread_id": LONG_ID},
        names=("thread_id",),
    ),
    Hostile(
        "unicode-id-accent",
        "POST",
        "/api/threads/caf%C3%A9/messages",
        json={"content": "hi"},
        names=("thread_id", ID_RULE),
    ),
    Hostile(
        "unicode-id-fullwidth",
        "POST",
        "/api/threads/%EF%BD%84%EF%BD%85%EF%BD%86/heartbeat/config",
        json={"enabled": True},
        names=("thread_id", ID_RULE),
    ),
    Hostile(
        "unicode-id-zero-width",
        "POST",
        "/api/threads/de%E2%80%8Bfault/messages",
        json={"content": "hi"},
        names=("thread_id",),
    ),
    Hostile(
        "unicode-id-emoji-create",
        "POST",
        "/api/threads",
        json={"thread_id": "\U0001f916"},
        names=("thread_id",),
    ),
    Hostile(
        "nul-in-id",
        "POST",
        "/api/threads/de%00fault/messages",
        json={"content": "hi"},
        names=("thread_id",),
    ),
    # -- huge bodies
    Hostile(
        "10mb-message",
        "POST",
        MESSAGES,
        json={"content": "x" * 10_000_000},
        status=(413,),
        names=("too large", "bytes"),
    ),
    Hostile(
        "1mb-heartbeat-md",
        "POST",
        MD,
        json={"content": "- item\n" * 150_000},
        status=(413,),
        names=("too large", "bytes"),
    ),
    Hostile(
        "300kb-heartbeat-md",
        "POST",
        MD,
        json={"content": "x" * 300_000},
        status=(413,),
        names=("bytes",),
    ),
    Hostile(
        "70kb-heartbeat-md",
        "POST",
        MD,
        json={"content": "x" * 70_000},
        status=(413,),
        names=("65536",),
    ),
    Hostile(
        "huge-config-body",
        "POST",
        CONFIG,
        json={"summary": "x" * 2_000_000},
        status=(413,),
        names=("too large",),
    ),
    Hostile(
        "40kb-message", "POST", MESSAGES, json={"content": "x" * 40_000}, names=("content", "32000")
    ),
    Hostile("deep-json", "POST", CONFIG, content=b"[" * 100_000 + b"]" * 100_000, names=("json",)),
    Hostile(
        "deep-json-message",
        "POST",
        MESSAGES,
        content=b"[" * 100_000 + b"]" * 100_000,
        headers={"Content-Type": "application/json"},
        status=(400, 422),
        names=("parsing the body",),
    ),
    Hostile(
        "deep-json-md",
        "POST",
        MD,
        content=b'{"content": ' + b"[" * 50_000 + b"]" * 50_000 + b"}",
        names=("json",),
    ),
    # -- wrong types
    Hostile(
        "message-content-number",
        "POST",
        MESSAGES,
        json={"content": 123},
        names=("content", "string"),
    ),
    Hostile(
        "message-role-system",
        "POST",
        MESSAGES,
        json={"role": "system", "content": "x"},
        names=("role",),
    ),
    Hostile("message-empty", "POST", MESSAGES, json={"content": ""}, names=("content",)),
    Hostile("config-enabled-string", "POST", CONFIG, json={"enabled": "maybe"}, names=("enabled",)),
    Hostile(
        "config-every-list",
        "POST",
        CONFIG,
        json={"every_seconds": [1800]},
        names=("every_seconds",),
    ),
    Hostile("config-body-array", "POST", CONFIG, json=[{"enabled": True}], names=("json object",)),
    Hostile("md-content-number", "POST", MD, json={"content": 5}, names=("content", "string")),
    Hostile(
        "md-unknown-field",
        "POST",
        MD,
        json={"content": "x", "path": "/etc/passwd"},
        names=("unknown", "path"),
    ),
    Hostile(
        "journal-settings-bool",
        "POST",
        "/api/threads/default/journal/settings",
        json={"self_reply": True},
        names=("self_reply",),
    ),
    Hostile(
        "loops-run-unknown-loop",
        "POST",
        "/api/loops/run",
        json={"thread_id": "default", "loops": ["rm -rf"]},
        names=("loops",),
    ),
    # -- invalid JSON
    Hostile(
        "message-invalid-json",
        "POST",
        MESSAGES,
        content=b'{"content": ',
        headers={"Content-Type": "application/json"},
        names=("json",),
    ),
    Hostile(
        "config-invalid-json",
        "POST",
        CONFIG,
        content=b"{enabled: true}",
        headers={"Content-Type": "application/json"},
        names=("json",),
    ),
    Hostile("md-invalid-json", "POST", MD, content=b'{"content": "unterminated}', names=("json",)),
    Hostile(
        "config-invalid-utf8",
        "POST",
        CONFIG,
        content=b'{"model": "\xff\xfe"}',
        headers={"Content-Type": "application/json"},
        names=("json",),
    ),
    Hostile("config-empty-body", "POST", CONFIG, content=b"", names=("empty",)),
    # -- out-of-range config
    Hostile("config-every-5", "POST", CONFIG, json={"every": 5}, names=("every",)),
    Hostile("config-every-8-days", "POST", CONFIG, json={"every": "8d"}, names=("every",)),
    Hostile(
        "config-max-actions-9", "POST", CONFIG, json={"max_actions": 9}, names=("max_actions",)
    ),
    Hostile(
        "config-max-actions-0", "POST", CONFIG, json={"max_actions": 0}, names=("max_actions",)
    ),
    Hostile(
        "config-temperature-3", "POST", CONFIG, json={"temperature": 3}, names=("temperature",)
    ),
    Hostile(
        "config-temperature-nan",
        "POST",
        CONFIG,
        content=b'{"temperature": NaN}',
        names=("temperature",),
    ),
    Hostile("config-max-tokens-0", "POST", CONFIG, json={"max_tokens": 0}, names=("max_tokens",)),
    Hostile(
        "config-active-hours-equal",
        "POST",
        CONFIG,
        json={"active_hours_start": 9, "active_hours_end": "09:00"},
        names=("active_hours",),
    ),
    Hostile(
        "config-active-hours-25",
        "POST",
        CONFIG,
        json={"active_hours_start": 25},
        names=("active_hours_start",),
    ),
    Hostile(
        "config-bad-timezone",
        "POST",
        CONFIG,
        json={"timezone": "Mars/Olympus_Mons"},
        names=("timezone",),
    ),
    Hostile(
        "config-timezone-traversal",
        "POST",
        CONFIG,
        json={"timezone": "../../etc/passwd"},
        names=("timezone",),
    ),
    Hostile(
        "config-unknown-field",
        "POST",
        CONFIG,
        json={"enabled": True, "evry": 60},
        names=("evry", "every"),
    ),
    Hostile("config-bad-target", "POST", CONFIG, json={"target": "everything"}, names=("target",)),
    Hostile(
        "config-bad-submolt", "POST", CONFIG, json={"submolt": "../General"}, names=("submolt",)
    ),
    Hostile(
        "config-every-disagree",
        "POST",
        CONFIG,
        json={"every": 60, "every_seconds": 120},
        names=("every",),
    ),
    Hostile(
        "history-limit-0", "GET", "/api/threads/default/heartbeat/history?limit=0", names=("limit",)
    ),
    Hostile("messages-after-id-huge", "GET", f"{MESSAGES}?after_id={2**80}", names=("after_id",)),
    Hostile("threads-offset-negative", "GET", "/api/threads?offset=-1", names=("offset",)),
]


def detail_text(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text
    assert isinstance(body, dict) and "detail" in body, body
    return json.dumps(body["detail"], ensure_ascii=False).lower().replace("\\\\", "\\")


@pytest.mark.parametrize("case", HOSTILE, ids=str)
def test_hostile_input_is_refused_by_name_and_writes_nothing(
    hostile: Server, case: Hostile
) -> None:
    before = snapshot(hostile)
    response = hostile.client.request(
        case.method, case.path, json=case.json, content=case.content, headers=case.headers
    )
    assert response.status_code in case.status, (response.status_code, response.text[:500])
    text = detail_text(response)
    for name in case.names:
        assert name.lower() in text, f"detail does not name {name!r}: {text[:500]}"
    assert snapshot(hostile) == before, "a refused request wrote something"


def test_hostile_table_leaves_the_service_healthy(hostile: Server) -> None:
    assert hostile.client.get("/health").json()["status"] == "ok"
    r = hostile.client.post(MESSAGES, json={"content": "still here"})
    assert r.status_code == 201, r.text
    r = hostile.client.get(CONFIG)
    assert r.status_code == 200 and r.json()["config"]["enabled"] is False


def test_chunked_oversize_body_is_refused(hostile: Server) -> None:
    """No Content-Length to check up front: the limit applies while the body streams in."""
    before = snapshot(hostile)

    def chunks() -> Iterator[bytes]:
        yield b'{"content": "'
        for _ in range(40):
            yield b"x" * 65536
        yield b'"}'

    response = hostile.client.post(
        MESSAGES, content=chunks(), headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 413, response.text[:300]
    assert "too large" in response.json()["detail"]
    assert snapshot(hostile) == before


def test_chat_with_a_model_ollama_does_not_have_is_the_clients_error(hostile: Server) -> None:
    """Found by the fuzzer: any unknown ``model`` override was a 503 "LLM unavailable"."""
    r = hostile.client.post(
        "/api/threads/default/chat", json={"message": "hello", "model": "no-such-model:1b"}
    )
    assert r.status_code == 422, r.text
    detail = r.json()["detail"]
    assert "no-such-model:1b" in detail and "ollama pull" in detail
    assert "your message was saved" in detail  # as with a 503: nothing the person wrote is lost
