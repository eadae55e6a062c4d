"""The identity secret and its challenge: only a holder of the data dir's secret answers."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from crt_loops.ledger.identity import (
    LedgerIdentityError,
    identity_path,
    load_or_create_secret,
    new_nonce,
    prove,
    read_secret,
    verify,
)


def test_created_once_private_and_shared(tmp_path: Path) -> None:
    first = load_or_create_secret(tmp_path / "data")
    second = load_or_create_secret(tmp_path / "data")
    assert first == second == read_secret(tmp_path / "data")
    mode = stat.S_IMODE(identity_path(tmp_path / "data").stat().st_mode)
    assert mode == 0o600


def test_a_proof_answers_only_its_nonce(tmp_path: Path) -> None:
    secret = load_or_create_secret(tmp_path)
    other = load_or_create_secret(tmp_path / "elsewhere")
    nonce = new_nonce()
    proof = prove(secret, nonce)
    assert verify(secret, nonce, proof)
    assert not verify(secret, new_nonce(), proof)  # a recorded answer does not replay
    assert not verify(other, nonce, proof)  # another data dir's Ledger
    assert not verify(secret, nonce, None)
    assert not verify(secret, nonce, proof.upper())


@pytest.mark.parametrize("nonce", ["", "abc", "g" * 32, "A" * 32, "0" * 129])
def test_bad_nonces_are_refused(tmp_path: Path, nonce: str) -> None:
    with pytest.raises(ValueError, match="hex"):
        prove(load_or_create_secret(tmp_path), nonce)


def test_missing_or_damaged_file_is_a_named_error(tmp_path: Path) -> None:
    with pytest.raises(LedgerIdentityError, match="does not exist"):
        read_secret(tmp_path)
    identity_path(tmp_path).write_text("not hex\n")
    with pytest.raises(LedgerIdentityError, match="delete it"):
        read_secret(tmp_path, attempts=1)
