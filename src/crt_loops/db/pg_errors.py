"""psycopg's errors, translated onto the tree of :mod:`crt_loops.db.errors` (docs/storage.md).

Lock waits that gave up (``55P03``), deadlocks (``40P01``) and serialisation failures
(``40001``) are :class:`DatabaseBusy`; a full disk (``53100``) is :class:`DatabaseFull`;
integrity violations (class ``23``) are :class:`ConstraintViolation`; a server that cannot be
reached, a pool with no free connection in time, or any other operational failure is
:class:`DatabaseUnavailable`; a closed pool is :class:`DatabaseClosedError`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
import psycopg_pool

from crt_loops.db.errors import (
    ConstraintViolation,
    DatabaseBusy,
    DatabaseClosedError,
    DatabaseError,
    DatabaseFull,
    DatabaseUnavailable,
)

__all__ = ["DRIVER_ERRORS", "translate_pg", "translated_pg"]

DRIVER_ERRORS = (psycopg.Error, psycopg_pool.PoolTimeout, psycopg_pool.PoolClosed)
_BUSY = {"55P03", "40P01", "40001", "57014"}


def translate_pg(exc: BaseException) -> DatabaseError:
    """The project's exception for a psycopg (or pool) error; the caller raises it ``from``."""
    text = str(exc).strip() or type(exc).__name__
    if isinstance(exc, psycopg_pool.PoolClosed):
        return DatabaseClosedError(text)
    if isinstance(exc, psycopg_pool.PoolTimeout):
        return DatabaseBusy(f"no free database connection in time: {text}")
    state = getattr(exc, "sqlstate", None) or ""
    if state.startswith("23") or isinstance(exc, psycopg.IntegrityError):
        return ConstraintViolation(text)
    if state in _BUSY:
        return DatabaseBusy(text)
    if state == "53100":
        return DatabaseFull(text)
    if isinstance(exc, psycopg.OperationalError) or state.startswith(("08", "53", "57")):
        return DatabaseUnavailable(text)
    return DatabaseError(text)


@contextmanager
def translated_pg() -> Iterator[None]:
    """Run the block with psycopg's errors raised as the project's."""
    try:
        yield
    except DRIVER_ERRORS as exc:
        raise translate_pg(exc) from exc
