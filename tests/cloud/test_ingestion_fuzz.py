"""Hypothesis against ingestion: random bytes and mutated batches never cause a 5xx or a partial write."""

from __future__ import annotations

import gzip

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from cloud.models import Batch, IntervalEnergy, Reading
from shared.batch import b64
from tests.cloud.test_ingestion import make_batch

FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def stored(db):
    with db() as session:
        return tuple(session.scalar(select(func.count()).select_from(t)) for t in (Batch, Reading, IntervalEnergy))


@FUZZ
@given(body=st.binary(max_size=2048), signature=st.binary(min_size=0, max_size=80), gz=st.booleans())
def test_random_bytes_never_cause_a_5xx(client, db, gateway, body, signature, gz):
    response = client.post("/api/v1/batches", data=gzip.compress(body) if gz else body, headers={
        "X-Balans-Gateway": "gw-tp118", "X-Balans-Signature": b64(signature),
        **({"Content-Encoding": "gzip"} if gz else {})})
    assert 400 <= response.status_code < 500
    assert response.get_json()["error"]
    assert stored(db) == (0, 0, 0)


@FUZZ
@given(data=st.data())
def test_a_mutated_batch_is_refused_whole(client, db, gateway, data):
    batch = make_batch(gateway.key)
    body = bytearray(batch.body)
    for _ in range(data.draw(st.integers(1, 4))):
        position = data.draw(st.integers(0, len(body) - 1))
        body[position] = data.draw(st.integers(0, 255).filter(lambda b, p=position: b != body[p]))
    response = client.post("/api/v1/batches", data=bytes(body), headers={
        "X-Balans-Gateway": "gw-tp118", "X-Balans-Signature": b64(batch.signature)})
    assert response.status_code in (400, 401, 422, 429)  # 429: the sender has been refused too often (refusals.py)
    assert stored(db) == (0, 0, 0)
