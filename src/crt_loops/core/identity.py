"""Who this process is, for leases: ``host:pid:nonce``, and whether such an owner still runs.

A lease row names its holder with ``PROCESS_OWNER``. Recovery releases the leases of holders
that ``owner_is_dead`` says are gone; a holder on another host is never presumed dead here.
"""

from __future__ import annotations

import os
import socket
import uuid

HOSTNAME = socket.gethostname()
PROCESS_OWNER = f"{HOSTNAME}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def owner_is_dead(owner: str) -> bool:
    """True when ``owner`` (host:pid:nonce) names a process on this host that no longer runs."""
    parts = owner.split(":")
    if len(parts) < 3 or parts[0] != HOSTNAME:
        return False
    try:
        pid = int(parts[1])
    except ValueError:
        return False
    if pid == os.getpid():
        # Our pid with another nonce: an earlier process that had the same pid, which is what
        # a restarted container's PID 1 looks like. This process's own owner is PROCESS_OWNER.
        return owner != PROCESS_OWNER
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False
