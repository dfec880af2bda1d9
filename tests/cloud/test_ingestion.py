"""Ingestion: a batch is stored once, whole or not at all; forged, altered or replayed ones are refused."""

from __future__ import annotations

import gzip

import orjson
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import func, select

from cloud.ingest.chain import missing_ranges
from cloud.ingest.rate_limit import RateLimiter
from cloud.models import Batch, Event, Gateway, IntervalEnergy, Reading
from shared.batch import GENESIS_HASH, b64, canonical_bytes, seal_batch
from tests.cloud.conftest import enrol


def make_batch(key, seq=1, prev=GENESIS_HASH, meter="TP118-IN", t="2026-10-01T00:00:00Z", imp="18.434"):
    return seal_batch(
        key, gateway="gw-tp118", seq=seq, prev=prev, created="2026-10-01T00:15:00Z",
        readings=[{"m": meter, "t": t, "q": {"import_kwh": "17919.000", "voltage_l1": "229.400"}}],
        intervals=[{"m": meter, "t": t, "imp": imp, "exp": "0.000", "f": "measured"}],
        events=[{"t": t, "kind": "meter_online", "m": meter, "detail": {}}],
    )


def post(client, batch, gateway="gw-tp118", body=None, signature=None, headers=None):
    return client.post("/api/v1/batches", data=body if body is not None else batch.body, headers={
        "X-Balans-Gateway": gateway, "X-Balans-Signature": b64(signature or batch.signature),
        "Content-Type": "application/json", **(headers or {})})


def counts(db):
    with db() as session:
        return tuple(session.scalar(select(func.count()).select_from(t)) for t in (Batch, Reading, IntervalEnergy))


def test_a_batch_is_stored_and_a_replay_changes_nothing(client, db, gateway):
    batch = make_batch(gateway.key)
    first = post(client, batch)
    assert first.status_code == 201
    assert first.get_json()["status"] == "stored"
    assert counts(db) == (1, 1, 1)
    again = post(client, batch)
    assert again.status_code == 200
    assert again.get_json() == {"status": "duplicate", "seq": 1, "hash": batch.hash, "gap_before": False}
    assert counts(db) == (1, 1, 1)


def test_the_raw_bytes_and_signature_are_kept_as_evidence(client, db, gateway):
    batch = make_batch(gateway.key)
    post(client, batch)
    with db() as session:
        stored = session.scalar(select(Batch))
        assert stored.body == batch.body
        assert stored.signature == batch.signature
        assert stored.hash == batch.hash


@pytest.mark.parametrize("position", [0, 10, 57, 120, -3, -1])
def test_any_changed_byte_is_refused_and_nothing_is_written(client, db, gateway, position):
    batch = make_batch(gateway.key)
    altered = bytearray(batch.body)
    altered[position] ^= 0x01
    response = post(client, batch, body=bytes(altered))
    assert response.status_code == 401
    assert response.get_json()["error"] == "bad_signature"
    assert counts(db) == (0, 0, 0)


def test_an_unknown_gateway_is_refused(client, db, gateway):
    batch = make_batch(Ed25519PrivateKey.generate())
    response = post(client, batch, gateway="gw-stranger")
    assert response.status_code == 401
    assert response.get_json()["error"] == "unknown_gateway"


def test_a_forged_batch_is_refused_and_shown_to_the_org_admin(client, db, gateway):
    forger = Ed25519PrivateKey.generate()
    response = post(client, make_batch(forger))
    assert response.status_code == 401
    with db() as session:
        kinds = session.scalars(select(Event.kind)).all()
    assert "security:bad_signature" in kinds
    assert counts(db) == (0, 0, 0)


def test_same_seq_with_other_content_is_a_security_alert(client, db, gateway):
    assert post(client, make_batch(gateway.key)).status_code == 201
    other = make_batch(gateway.key, imp="99.000")
    response = post(client, other)
    assert response.status_code == 409
    assert response.get_json()["field"] == "seq"
    with db() as session:
        assert "security:seq_conflict" in session.scalars(select(Event.kind)).all()


def test_a_broken_chain_is_refused(client, gateway):
    first = make_batch(gateway.key)
    assert post(client, first).status_code == 201
    wrong_prev = make_batch(gateway.key, seq=2, prev="f" * 64, t="2026-10-01T00:15:00Z")
    response = post(client, wrong_prev)
    assert response.status_code == 409
    assert response.get_json()["error"] == "chain_break"


def test_a_gap_is_accepted_recorded_and_filled_later(client, db, gateway):
    one = make_batch(gateway.key)
    two = make_batch(gateway.key, seq=2, prev=one.hash, t="2026-10-01T00:15:00Z")
    three = make_batch(gateway.key, seq=3, prev=two.hash, t="2026-10-01T00:30:00Z")
    assert post(client, one).status_code == 201
    answer = post(client, three)
    assert answer.status_code == 201 and answer.get_json()["gap_before"] is True
    with db() as session:
        assert missing_ranges(session, session.scalar(select(Gateway))) == [(2, 2)]
    assert post(client, two).status_code == 201
    with db() as session:
        assert missing_ranges(session, session.scalar(select(Gateway))) == []


def test_gzip_is_accepted_and_bad_gzip_named(client, db, gateway):
    batch = make_batch(gateway.key)
    response = post(client, batch, body=gzip.compress(batch.body), headers={"Content-Encoding": "gzip"})
    assert response.status_code == 201
    broken = post(client, make_batch(gateway.key, seq=2, prev=batch.hash), body=b"\x1f\x8bnot gzip",
                  headers={"Content-Encoding": "gzip"})
    assert broken.status_code == 400
    assert broken.get_json()["error"] == "bad_encoding"


def test_an_unknown_meter_names_the_field_and_nothing_is_half_applied(client, db, gateway):
    batch = seal_batch(
        gateway.key, gateway="gw-tp118", seq=1, prev=GENESIS_HASH, created="2026-10-01T00:15:00Z",
        readings=[{"m": "TP118-IN", "t": "2026-10-01T00:00:00Z", "q": {"import_kwh": "1.000"}}],
        intervals=[{"m": "NO-SUCH-METER", "t": "2026-10-01T00:00:00Z", "imp": "1.000", "exp": "0.000",
                    "f": "measured"}],
    )
    response = post(client, batch)
    assert response.status_code == 422
    assert response.get_json()["field"] == "intervals[0].m"
    assert counts(db) == (0, 0, 0)


def test_a_revoked_gateway_is_refused(client, db, gateway):
    with db() as session:
        session.scalar(select(Gateway)).status = "revoked"
    response = post(client, make_batch(gateway.key))
    assert response.status_code == 403
    assert response.get_json()["error"] == "revoked_gateway"


def test_openapi_document_lists_the_routes(client):
    document = client.get("/api/v1/openapi.json").get_json()
    assert set(document["paths"]) == {"/api/v1/batches", "/api/v1/enrol", "/api/v1/gateways/{code}/key",
                                      "/api/v1/gateways/{code}/heartbeat", "/api/v1/gateways/{code}/config",
                                      "/api/v1/gateways/{code}/results", "/api/v1/payments/liqpay",
                                      "/api/v1/updates/metadata/{name}", "/api/v1/updates/targets/{name}"}


def test_an_enrolment_token_works_once(client, db, seed_scenario, gateway):
    with pytest.raises(AssertionError):
        enrol(client, db, seed_scenario, gateway.site, "gw-tp118")  # the same gateway id again: 409


def test_a_runaway_gateway_gets_429_with_retry_after(app, client, gateway):
    app.extensions["balans_rate_limiter"] = RateLimiter(per_minute=60, burst=2)
    batch = make_batch(gateway.key)
    assert post(client, batch).status_code == 201
    assert post(client, batch).status_code == 200
    refused = post(client, batch)
    assert refused.status_code == 429
    assert refused.headers["Retry-After"] == "1"
    assert refused.get_json()["error"] == "rate_limited"


def test_a_reading_sent_again_in_another_batch_is_stored_once(client, db, gateway):
    # A gateway restored from an old backup may resend rows under new sequence numbers.
    first = make_batch(gateway.key)
    second = seal_batch(
        gateway.key, gateway="gw-tp118", seq=2, prev=first.hash, created="2026-10-01T00:30:00Z",
        readings=[{"m": "TP118-IN", "t": "2026-10-01T00:00:00Z", "q": {"import_kwh": "17919.000"}},
                  {"m": "TP118-IN", "t": "2026-10-01T00:15:00Z", "q": {"import_kwh": "17937.434"}}],
        intervals=[{"m": "TP118-IN", "t": "2026-10-01T00:00:00Z", "imp": "18.434", "exp": "0.000", "f": "measured"}],
    )
    assert post(client, first).status_code == 201
    assert post(client, second).status_code == 201
    assert counts(db) == (2, 2, 1)


def test_the_configuration_version_in_force_is_stored_with_its_batch_and_checked(client, db, gateway):
    first = seal_batch(gateway.key, gateway="gw-tp118", seq=1, prev=GENESIS_HASH, created="2026-10-01T00:15:00Z",
                       config_version=7)
    assert b'"config":7' in first.body
    assert post(client, first).status_code == 201
    second = seal_batch(gateway.key, gateway="gw-tp118", seq=2, prev=first.hash, created="2026-10-01T00:30:00Z")
    assert post(client, second).status_code == 201  # a gateway that does not say it: None, as before
    with db() as session:
        assert session.scalars(select(Batch.config_version).order_by(Batch.seq)).all() == [7, None]
    for bad in (-1, "7", 2**31, True):
        body = canonical_bytes({**orjson.loads(second.body), "seq": 3, "prev": second.hash, "config": bad})
        answer = post(client, None, body=body, signature=gateway.key.sign(body))
        assert answer.status_code == 422 and answer.get_json()["field"] == "config", bad


@pytest.mark.parametrize(("imp", "exp", "stored"), [("18.434", "0.000", (18434, 0)), ("7", "0.5", (7000, 500)),
                                                     ("0.05", "0.05", (50, 50))])
def test_interval_kwh_become_exact_whole_wh(client, db, gateway, imp, exp, stored):
    batch = seal_batch(gateway.key, gateway="gw-tp118", seq=1, prev=GENESIS_HASH, created="2026-10-01T00:15:00Z",
                       intervals=[{"m": "TP118-IN", "t": "2026-10-01T00:00:00Z", "imp": imp, "exp": exp,
                                   "f": "measured"}])
    assert post(client, batch).status_code == 201
    with db() as session:
        assert session.execute(select(IntervalEnergy.imp_wh, IntervalEnergy.exp_wh)).one() == stored


@pytest.mark.parametrize(("imp", "exp", "field"), [
    ("1.0005", "0.000", "intervals[1].imp"),  # a fourth decimal
    ("1.000", "\u0663.000", "intervals[1].exp"),  # an Arabic-Indic three: a digit to Python, not to us
    ("1.000", "-1.000", "intervals[1].exp"),
])
def test_a_bad_interval_kwh_is_named_and_nothing_is_stored(client, db, gateway, imp, exp, field):
    rows = [{"m": "TP118-IN", "t": "2026-10-01T00:00:00Z", "imp": "1.000", "exp": "0.000", "f": "measured"},
            {"m": "TP118-IN", "t": "2026-10-01T00:15:00Z", "imp": imp, "exp": exp, "f": "measured"}]
    batch = seal_batch(gateway.key, gateway="gw-tp118", seq=1, prev=GENESIS_HASH, created="2026-10-01T00:15:00Z",
                       intervals=rows)
    response = post(client, batch)
    assert response.status_code == 422 and response.get_json()["field"] == field
    assert counts(db) == (0, 0, 0)
