"""A stopping service walks away from Ledger calls in flight (``LedgerClient.abort``)."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest
from support.waiting import wait_for

from crt_loops.ledger.client import LedgerClient, LedgerInterrupted, LedgerUnavailable


@pytest.fixture
def silent_ledger() -> Iterator[tuple[str, list[socket.socket]]]:
    """A loopback port that accepts connections and never answers; the connections it holds."""
    server = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.05)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            held.append(conn)

    acceptor = threading.Thread(target=accept, name="silent-ledger", daemon=True)
    acceptor.start()
    yield f"http://127.0.0.1:{server.getsockname()[1]}/api/v1", held
    stop.set()
    acceptor.join(5)
    for conn in held:
        conn.close()
    server.close()


def test_abort_releases_a_call_waiting_on_the_ledger_and_refuses_new_ones(
    silent_ledger: tuple[str, list[socket.socket]],
) -> None:
    url, held = silent_ledger
    client = LedgerClient(url, "key", timeout=60)
    outcome: list[BaseException] = []

    def post() -> None:
        try:
            client.create_post(submolt="general", title="t", content="c", idempotency_key="k1")
        except BaseException as exc:  # the test reads what the caller got
            outcome.append(exc)

    caller = threading.Thread(target=post, name="caller")
    caller.start()
    wait_for(lambda: len(held) == 1)  # the request is out; its answer will never come
    assert client.abort() == 1
    caller.join(5)
    assert not caller.is_alive()
    assert len(outcome) == 1 and isinstance(outcome[0], LedgerInterrupted)
    # LedgerInterrupted is a LedgerUnavailable: code that handles the Ledger being away copes.
    assert isinstance(outcome[0], LedgerUnavailable)
    with pytest.raises(LedgerInterrupted, match="no Ledger call made"):
        client.get_post("p1")
    client.close()


def test_no_retry_once_the_service_is_stopping() -> None:
    # Nothing listens on port 9: every attempt fails to connect, which is normally retried.
    sleeps: list[float] = []
    clients: list[LedgerClient] = []

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        clients[0].abort()  # the stop lands during the back-off

    client = LedgerClient("http://127.0.0.1:9/api/v1", None, max_retries=5, sleep=sleep)
    clients.append(client)
    with pytest.raises(LedgerInterrupted, match="not retried"):
        client.get_post("p1")
    assert sleeps == [0.25]
    client.close()
