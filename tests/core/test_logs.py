"""One log format; access lines for changes and failures only by default."""

from __future__ import annotations

import logging

import pytest

from crt_loops.core.logs import AccessFilter, EmbeddedServerFilter


def access(method: str, path: str, status: int) -> logging.LogRecord:
    return logging.LogRecord(
        "uvicorn.access",
        logging.INFO,
        __file__,
        1,
        '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5000", method, path, "1.1", status),
        None,
    )


@pytest.mark.parametrize(
    ("mode", "method", "status", "kept"),
    [
        ("changes", "GET", 200, False),  # the dashboard's polling
        ("changes", "GET", 304, False),
        ("changes", "GET", 404, True),
        ("changes", "POST", 200, True),
        ("changes", "DELETE", 204, True),
        ("all", "GET", 200, True),
        ("off", "POST", 500, False),
    ],
)
def test_access_filter(mode: str, method: str, status: int, kept: bool) -> None:
    assert AccessFilter(mode).filter(access(method, "/api/x", status)) is kept


def test_unknown_access_mode_is_refused() -> None:
    with pytest.raises(ValueError, match="changes"):
        AccessFilter("some")


def test_the_embedded_servers_lifecycle_lines_are_dropped() -> None:
    record = logging.LogRecord(
        "uvicorn.error", logging.INFO, __file__, 1, "Application startup complete.", (), None
    )
    record.threadName = "ledger-server"
    assert EmbeddedServerFilter().filter(record) is False
    record.threadName = "MainThread"
    assert EmbeddedServerFilter().filter(record) is True
    record.threadName, record.levelno = "ledger-server", logging.ERROR
    assert EmbeddedServerFilter().filter(record) is True
