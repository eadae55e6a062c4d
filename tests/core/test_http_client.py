from __future__ import annotations

import ssl

import httpx

from crt_loops.core.http_client import new_client, shared_tls_context
from crt_loops.ledger.client import LedgerClient


def _context(client: httpx.Client) -> ssl.SSLContext:
    # httpcore keeps the context its connections are wrapped with on the pool.
    context: ssl.SSLContext = client._transport._pool._ssl_context  # type: ignore[attr-defined]
    return context


def test_clients_share_one_context_that_still_verifies() -> None:
    context = shared_tls_context()
    assert context.verify_mode is ssl.CERT_REQUIRED and context.check_hostname
    assert context.cert_store_stats()["x509_ca"] > 0  # a CA bundle is loaded
    with new_client() as first, new_client(timeout=1.0) as second:
        assert _context(first) is context and _context(second) is context
    ledger = LedgerClient("http://127.0.0.1:9/api/v1", None)
    try:
        assert _context(ledger._http) is context
    finally:
        ledger.close()


def test_a_caller_can_still_choose_its_own_verification() -> None:
    with new_client(verify=False) as client:
        assert _context(client) is not shared_tls_context()
        assert _context(client).verify_mode is ssl.CERT_NONE
