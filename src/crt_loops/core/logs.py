"""One log format for everything the process prints, uvicorn's lines included.

- Every logger goes through one root handler (``LOG_FORMAT``, thread names included): uvicorn's
  own handlers are removed, so its lines no longer interleave in a second format.
- Access lines follow ``CRT_ACCESS_LOG``: ``changes`` (the default) keeps requests that change
  something or fail and drops successful reads, which are the dashboard's polling (65-70% of
  all lines before); ``all`` keeps every request; ``off`` none.
- The embedded Ledger is a second uvicorn server in the same process: its start and stop lines
  repeated the service's own, so they are dropped (its own "listening on" line says it).
- A request still running when a server's stop runs out of patience is cancelled, and uvicorn
  logs that cancel as a traceback. It is what the stop asked for, so it becomes one line.
"""

from __future__ import annotations

import asyncio
import logging

LOG_FORMAT = "%(asctime)s %(levelname)s [%(threadName)s] %(name)s: %(message)s"
ACCESS_LOG_MODES = ("changes", "all", "off")
_UVICORN_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access")
_READS = frozenset({"GET", "HEAD", "OPTIONS"})
#: Threads running a second uvicorn server (``ServerThread`` names them ``<name>-server``).
_EMBEDDED_SERVER_SUFFIX = "-server"


class AccessFilter(logging.Filter):
    """Keeps the access lines ``mode`` asks for (uvicorn's args: client, method, path, version,
    status)."""

    def __init__(self, mode: str) -> None:
        super().__init__()
        if mode not in ACCESS_LOG_MODES:
            raise ValueError(f"access log mode must be one of {ACCESS_LOG_MODES}, got {mode!r}")
        self.mode = mode

    def filter(self, record: logging.LogRecord) -> bool:
        if self.mode == "all":
            return True
        if self.mode == "off":
            return False
        args = record.args
        if not isinstance(args, tuple) or len(args) < 5:
            return True
        method, status = str(args[1]), args[4]
        failed = isinstance(status, int) and status >= 400
        return failed or method not in _READS


class EmbeddedServerFilter(logging.Filter):
    """Drops uvicorn's INFO lifecycle lines when they come from an embedded server's thread."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (
            record.name.startswith("uvicorn")
            and record.levelno < logging.WARNING
            and record.threadName is not None
            and record.threadName.endswith(_EMBEDDED_SERVER_SUFFIX)
        )


class CancelledAtStopFilter(logging.Filter):
    """Turns uvicorn's traceback for a request cancelled by a stop into one warning line."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if record.name.startswith("uvicorn") and isinstance(exc, asyncio.CancelledError):
            record.msg = "a request still running at shutdown was cancelled (%s)"
            record.args = (exc.args[0] if exc.args else "stopping",)
            record.exc_info = None
            record.exc_text = None
            record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


def _crt_handler(root: logging.Logger) -> logging.Handler | None:
    for handler in root.handlers:
        if getattr(handler, "_crt", False):
            return handler
    return None


def configure_logging(level: str, access_log: str = "changes") -> None:
    """Root logging in ``LOG_FORMAT`` with uvicorn routed through it; idempotent."""
    root = logging.getLogger()
    handler = _crt_handler(root)
    if handler is None:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter(LOG_FORMAT))
        handler._crt = True  # type: ignore[attr-defined]
        handler.addFilter(EmbeddedServerFilter())
        handler.addFilter(CancelledAtStopFilter())
        root.addHandler(handler)
    root.setLevel(level)
    for name in _UVICORN_LOGGERS:
        log = logging.getLogger(name)
        for own in list(log.handlers):
            log.removeHandler(own)
        log.propagate = True
        log.setLevel(logging.NOTSET)
    access = logging.getLogger("uvicorn.access")
    for old in [f for f in access.filters if isinstance(f, AccessFilter)]:
        access.removeFilter(old)
    access.addFilter(AccessFilter(access_log))
    # httpx logs every request at INFO: the Ledger and Ollama calls would drown the loops' lines.
    logging.getLogger("httpx").setLevel(max(logging.WARNING, root.level))
