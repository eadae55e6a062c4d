"""The embedded Ledger proves who it is before a worker sends it the agent's key.

Whatever first answers ``GET /health`` on ``CRT_LEDGER_PORT`` used to be joined and handed the
agent's API key. Now the Ledger and every worker of the service share a random secret kept in
the data dir (``ledger.identity``, mode 0600, created once by whichever process starts first).
A worker that finds the port taken sends a fresh random nonce to ``GET /api/v1/identity``; only a
process that can read the secret answers with the right HMAC-SHA256 of that nonce. The answer
reveals nothing reusable: the next worker asks with another nonce.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import re
import secrets
import threading
import time
from pathlib import Path

import httpx

from crt_loops.core.http_client import new_client

logger = logging.getLogger(__name__)

IDENTITY_FILE = "ledger.identity"
NONCE_RE = re.compile(r"^[0-9a-f]{32,128}$")
_CONTEXT = b"crt-ledger-identity-v1:"
_SECRET_BYTES = 32
PROBE_TIMEOUT = httpx.Timeout(2.0, connect=1.0)


class LedgerIdentityError(RuntimeError):
    """Raised when the identity secret cannot be created or read (the data dir is not writable,
    or the file is not what this module wrote)."""


def identity_path(data_dir: Path) -> Path:
    return data_dir / IDENTITY_FILE


def load_or_create_secret(data_dir: Path) -> bytes:
    """The shared secret, created (O_EXCL, 0600) if no process has created it yet."""
    path = identity_path(data_dir)
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return read_secret(data_dir)
    except OSError as exc:
        raise LedgerIdentityError(f"cannot create the Ledger identity file {path}: {exc}") from exc
    value = secrets.token_hex(_SECRET_BYTES)
    try:
        with os.fdopen(fd, "w", encoding="ascii") as handle:
            handle.write(value + "\n")
            handle.flush()
            os.fsync(handle.fileno())
    except OSError as exc:
        raise LedgerIdentityError(f"cannot write the Ledger identity file {path}: {exc}") from exc
    logger.info("ledger: created the identity secret %s", path)
    return bytes.fromhex(value)


def read_secret(data_dir: Path, *, attempts: int = 50) -> bytes:
    """The existing secret. A file another process has just created may still be empty for a
    moment, hence the few short re-reads before it counts as broken."""
    path = identity_path(data_dir)
    text = ""
    for _ in range(attempts):
        try:
            text = path.read_text(encoding="ascii").strip()
        except FileNotFoundError as exc:
            raise LedgerIdentityError(f"the Ledger identity file {path} does not exist") from exc
        except (OSError, UnicodeDecodeError) as exc:
            raise LedgerIdentityError(
                f"cannot read the Ledger identity file {path}: {exc}"
            ) from exc
        if text:
            break
        _pause(0.02)
    try:
        secret = bytes.fromhex(text)
    except ValueError:
        secret = b""
    if len(secret) != _SECRET_BYTES:
        raise LedgerIdentityError(
            f"the Ledger identity file {path} is not {2 * _SECRET_BYTES} hex digits; "
            "delete it and restart the service"
        )
    return secret


def new_nonce() -> str:
    return secrets.token_hex(16)


def prove(secret: bytes, nonce: str) -> str:
    """The Ledger's answer to ``nonce``. Raises ValueError for a nonce that is not 32..128 hex
    digits (a short one would let an answer be replayed)."""
    if not NONCE_RE.fullmatch(nonce):
        raise ValueError("nonce must be 32 to 128 lowercase hex digits")
    return hmac.new(secret, _CONTEXT + nonce.encode("ascii"), hashlib.sha256).hexdigest()


def verify(secret: bytes, nonce: str, proof: object) -> bool:
    """Whether ``proof`` is the right answer to ``nonce``, in constant time."""
    if not isinstance(proof, str):
        return False
    return hmac.compare_digest(prove(secret, nonce), proof)


def refusal(
    root_url: str, data_dir: Path, *, wait: float = 0.0, http: httpx.Client | None = None
) -> str | None:
    """Challenge whatever answers at ``root_url``: None when it proves it holds ``data_dir``'s
    secret, else why not (a sentence for the startup error). No API key is ever sent here.

    ``wait``: how long to keep asking while it is still starting (not listening yet, or 503).
    ``http``: a client to send the challenge with (a new one is made and closed otherwise).
    """
    try:
        secret = read_secret(data_dir)
    except LedgerIdentityError as exc:
        return f"no identity secret to check it against ({exc})"
    if http is None:
        # One client for every retry of the wait (a new one each time cost ~30 ms of CPU).
        with new_client() as own:
            return _challenge(own, root_url, secret, wait)
    return _challenge(http, root_url, secret, wait)


def _challenge(http: httpx.Client, root_url: str, secret: bytes, wait: float) -> str | None:
    nonce = new_nonce()
    deadline = time.monotonic() + wait
    url = f"{root_url}/api/v1/identity"
    while True:
        try:
            response = http.get(url, params={"nonce": nonce}, timeout=PROBE_TIMEOUT)
        except httpx.HTTPError as exc:
            if time.monotonic() >= deadline:
                return f"it does not answer ({type(exc).__name__}: {exc})"
        else:
            if response.status_code != 503 or time.monotonic() >= deadline:
                break
        _pause(0.1)
    if response.status_code != 200:
        return f"it answered the identity challenge with HTTP {response.status_code}"
    try:
        proof = response.json().get("proof")
    except (ValueError, AttributeError):
        proof = None
    if not verify(secret, nonce, proof):
        return "its answer to the identity challenge is wrong"
    return None


def _pause(seconds: float) -> None:
    # A bounded re-read of a file another process is writing, not a wait on a thread.
    threading.Event().wait(seconds)
