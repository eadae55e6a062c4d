"""Keep the objects built at startup out of the garbage collector's full passes.

Everything the service builds before it serves (FastAPI, pydantic's schemas, the loops, some
100,000 container objects) lives as long as the process, yet every full collection walked all of
it: under the 20-dashboard load of bench/scale.py a generation-2 pass took 75-90 ms with the
GIL held, every request in flight waited for it, and those stalls were the top of its p99.
``gc.freeze()`` after startup moves them to the permanent generation, which collections skip
(the same pass then takes well under 1 ms); objects made later are collected as before.
"""

from __future__ import annotations

import gc
import logging

logger = logging.getLogger(__name__)


def freeze_startup_objects() -> int:
    """Freeze every object tracked now; returns how many that is.

    No ``gc.collect()`` first: in a test process that starts hundreds of apps it cost a full
    pass each time. Startup's own garbage (a few cycles) is then kept until :func:`unfreeze`.
    """
    gc.freeze()
    frozen = gc.get_freeze_count()
    logger.info("heap: %d startup objects frozen out of garbage collection", frozen)
    return frozen


def unfreeze() -> None:
    """Give the frozen objects back to the collector (at shutdown: an app stopped in a test
    process must not keep what it built out of collection for the rest of the run)."""
    gc.unfreeze()
