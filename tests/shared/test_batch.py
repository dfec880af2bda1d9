"""The batch format: canonical bytes, detached Ed25519 signature, hash chain, errors that name the field."""

from __future__ import annotations

import json

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.batch import (
    GENESIS_HASH,
    BatchError,
    batch_hash,
    canonical_bytes,
    load_public_key,
    parse_batch,
    public_key_pem,
    seal_batch,
    verify_signature,
)

KEY = Ed25519PrivateKey.generate()


def sample(seq=1, prev=GENESIS_HASH):
    return seal_batch(
        KEY, gateway="gw-1", seq=seq, prev=prev, created="2026-10-01T00:15:00Z",
        readings=[{"m": "M01001", "t": "2026-10-01T00:15:00Z", "q": {"import_kwh": "24757.118"}}],
        intervals=[{"m": "M01001", "t": "2026-10-01T00:00:00Z", "imp": "0.118", "exp": "0.000", "f": "measured"}],
    )


def test_sealed_bytes_are_canonical_and_verify():
    batch = sample()
    document = json.loads(batch.body)
    assert canonical_bytes(document) == batch.body
    assert parse_batch(batch.body)["seq"] == 1
    verify_signature(KEY.public_key(), batch.body, batch.signature)


def test_the_chain_links_each_batch_to_the_hash_of_the_one_before():
    first = sample()
    second = sample(seq=2, prev=first.hash)
    assert second.document()["prev"] == batch_hash(first.body)


@settings(max_examples=200)
@given(data=st.data())
def test_any_changed_byte_fails_verification(data):
    batch = sample()
    position = data.draw(st.integers(0, len(batch.body) - 1))
    flip = data.draw(st.integers(1, 255))
    altered = bytearray(batch.body)
    altered[position] ^= flip
    with pytest.raises(BatchError):
        verify_signature(KEY.public_key(), bytes(altered), batch.signature)


def test_another_key_does_not_verify():
    with pytest.raises(BatchError) as error:
        verify_signature(Ed25519PrivateKey.generate().public_key(), sample().body, sample().signature)
    assert error.value.code == "bad_signature"


def test_floats_are_refused_when_sealing():
    with pytest.raises(BatchError) as error:
        seal_batch(KEY, gateway="g", seq=1, prev=GENESIS_HASH, created="x",
                   readings=[{"m": "A", "t": "x", "q": {"import_kwh": 1.5}}])
    assert error.value.field == "readings[0].q.import_kwh"


@pytest.mark.parametrize(("mutate", "field"), [
    (lambda d: d.pop("seq"), "seq"),
    (lambda d: d.update(seq="1"), "seq"),
    (lambda d: d.update(prev="abc"), "prev"),
    (lambda d: d["intervals"][0].pop("imp"), "intervals[0].imp"),
    (lambda d: d["readings"][0]["q"].update(import_kwh=5), "readings[0].q.import_kwh"),
    (lambda d: d.update(v=2), "v"),
])
def test_a_malformed_batch_names_the_field(mutate, field):
    document = sample().document()
    mutate(document)
    with pytest.raises(BatchError) as error:
        parse_batch(canonical_bytes(document))
    assert error.value.field == field


def test_non_canonical_bytes_are_refused():
    spaced = json.dumps(sample().document(), indent=1).encode()
    with pytest.raises(BatchError, match="canonical"):
        parse_batch(spaced)


def test_public_keys_round_trip_through_pem():
    pem = public_key_pem(KEY.public_key())
    assert pem.startswith("-----BEGIN PUBLIC KEY-----")
    verify_signature(load_public_key(pem), sample().body, sample().signature)
