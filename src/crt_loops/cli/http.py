"""The CLI's side of HTTP: one client for the service, its errors, and exit codes."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx

from crt_loops.cli.output import progress
from crt_loops.core.http_client import new_client

DEFAULT_URL = "http://127.0.0.1:8000"


MD_PATH = "/api/heartbeat/heartbeat.md"


DEFAULT_TIMEOUT = 30.0


# A heartbeat run waits on the LLM (CRT_LLM_TIMEOUT_SECONDS, 120 s by default) and the Ledger.
RUN_TIMEOUT = 900.0


EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_UNREACHABLE, EXIT_AUTH, EXIT_CONFLICT = range(6)


EXIT_CODES = {
    EXIT_OK: "ok",
    EXIT_FAILED: "the operation ran but failed (e.g. a heartbeat run's outcome is 'failed', "
    "or the service answered 5xx)",
    EXIT_USAGE: "usage error, or the service refused the request (4xx: validation, unknown "
    "thread); its detail is printed",
    EXIT_UNREACHABLE: "the service is unreachable (not running, wrong --url / CRT_URL, timeout)",
    EXIT_AUTH: "authentication refused (401/403): set CRT_API_TOKEN to the service's token",
    EXIT_CONFLICT: "conflict (409): a heartbeat is already running, or HEARTBEAT.md changed "
    "since it was read",
}


class CLIError(Exception):
    """Raised to end a command: ``message`` goes to stderr, ``code`` is the exit code."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


class Api:
    """The service's HTTP API; every failure becomes a CLIError with its exit code."""

    def __init__(self, url: str, token: str | None, timeout: float) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout
        headers = {"Accept": "application/json", "User-Agent": "crt-cli"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self._http = new_client(base_url=self.url, headers=headers, timeout=timeout)

    def close(self) -> None:
        self._http.close()

    def get(self, path: str, **params: Any) -> Any:
        return self.request("GET", path, params=params or None)

    def post(
        self,
        path: str,
        body: Any = None,
        *,
        params: dict[str, Any] | None = None,
        timeout: float | None = None,
    ) -> Any:
        return self.request("POST", path, body=body, params=params, timeout=timeout)

    def stream_lines(
        self, path: str, body: Any, *, timeout: float | None = None
    ) -> Iterator[dict[str, Any]]:
        """POST ``body`` and yield each NDJSON line of the answer as it arrives."""
        wait = timeout or self.timeout
        with (
            self._transport_errors(wait),
            self._http.stream(
                "POST",
                path,
                json=body,
                timeout=wait,
                headers={"Accept": "application/x-ndjson, application/json"},
            ) as response,
        ):
            if response.status_code >= 400:
                response.read()
                raise _http_error("POST", path, response)
            if not response.headers.get("content-type", "").startswith("application/x-ndjson"):
                # An older service answers in one piece: that is one "done" event.
                response.read()
                yield {"event": "done", **response.json()}
                return
            for line in response.iter_lines():
                if not line.strip():
                    continue
                try:
                    event = json.loads(line)
                except ValueError as exc:
                    raise CLIError(
                        f"POST {path}: a line of the answer is not JSON", EXIT_FAILED
                    ) from exc
                if isinstance(event, dict):
                    yield event

    @contextmanager
    def _transport_errors(self, wait: float) -> Iterator[None]:
        try:
            yield
        except httpx.TimeoutException as exc:
            raise CLIError(
                f"no answer from the CRT service at {self.url} within {wait:.0f} s "
                f"({type(exc).__name__})",
                EXIT_UNREACHABLE,
            ) from exc
        except httpx.TransportError as exc:
            raise CLIError(
                f"cannot reach the CRT service at {self.url} ({exc}); is it running? Start it "
                "with `crt serve` (or `make run`), or point --url / CRT_URL at it",
                EXIT_UNREACHABLE,
            ) from exc

    def request(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        params: dict[str, Any] | None = None,
        timeout: float | None = None,
    ) -> Any:
        wait = timeout or self.timeout
        with self._transport_errors(wait):
            response = self._http.request(method, path, json=body, params=params, timeout=wait)
        if response.status_code >= 400:
            raise _http_error(method, path, response)
        if response.status_code == 204 or not response.content:
            return None
        try:
            return response.json()
        except ValueError as exc:
            raise CLIError(f"{method} {path}: the answer is not JSON", EXIT_FAILED) from exc


def _http_error(method: str, path: str, response: httpx.Response) -> CLIError:
    status = response.status_code
    try:
        body = response.json()
    except ValueError:
        body = None
    detail = body.get("detail", body) if isinstance(body, dict) else response.text.strip()
    return status_error(status, f"{method} {path}: HTTP {status}: {format_detail(detail)}")


def status_error(status: int, message: str) -> CLIError:
    """``message`` as a CLIError whose exit code follows the HTTP ``status``."""
    if status in (401, 403):
        return CLIError(message, EXIT_AUTH)
    if status == 409:
        return CLIError(message, EXIT_CONFLICT)
    if 400 <= status < 500:
        return CLIError(message, EXIT_USAGE)
    return CLIError(message, EXIT_FAILED)


def format_detail(detail: Any) -> str:
    """A FastAPI ``detail`` as text: validation errors become ``field: message`` lines."""
    if isinstance(detail, list):
        lines = []
        for item in detail:
            if isinstance(item, dict):
                loc = [str(p) for p in item.get("loc", ()) if p not in ("body", "query", "path")]
                where = ".".join(loc)
                msg = str(item.get("msg", item))
                lines.append(f"{where}: {msg}" if where else msg)
            else:
                lines.append(str(item))
        return "\n  ".join(lines) if len(lines) < 2 else "\n  " + "\n  ".join(lines)
    if isinstance(detail, str):
        return detail
    return json.dumps(detail)


def run_heartbeat(api: Api, thread: str, *, dry_run: bool) -> dict[str, Any]:
    what = "dry run" if dry_run else "heartbeat"
    with progress(f"running a {what} for thread {thread} (waits for the LLM)"):
        run: dict[str, Any] = api.post(
            f"/api/threads/{thread}/heartbeat/run-now",
            params={"dry_run": "true"} if dry_run else None,
            timeout=RUN_TIMEOUT,
        )
    return run
