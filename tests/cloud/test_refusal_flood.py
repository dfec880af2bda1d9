"""A flood of forged batches (or key rotations) in a gateway's name cannot silence it nor bury the org admin's
other alerts (issue 16, item 3): the signature is checked before the gateway's rate bucket is touched, refusals
have their own budget per address, and repeated refusals are one security event with a count."""

from __future__ import annotations

import http.client
import json
import math
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import select
from werkzeug.serving import make_server

from cloud.accounts.organisations import create_user
from cloud.clock import utcnow
from cloud.ingest.refusals import RefusalLedger, add_refusal
from cloud.models import Event, Gateway, Organisation
from provisioning.ports import free_port
from shared.batch import b64, public_key_pem
from tests.cloud.test_ingestion import make_batch

FLOOD = 700
ROTATIONS = 200
PASSWORD = "admin-password-1"


@pytest.fixture
def server(app):
    app.config.update(GATEWAY_REFUSALS_PER_MINUTE=60, REFUSAL_EVENTS_PER_MINUTE=6, GATEWAY_RATE_PER_MINUTE=20)
    running = make_server("127.0.0.1", free_port(), app, threaded=True)
    threading.Thread(target=running.serve_forever, daemon=True).start()
    yield running.server_port
    running.shutdown()


def gateway_id(session) -> int:
    return session.scalar(select(Gateway.id).where(Gateway.code == "gw-tp118"))


def post(port: int, batch, signature: bytes | None = None) -> int:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request("POST", "/api/v1/batches", body=batch.body, headers={
            "X-Balans-Gateway": "gw-tp118", "X-Balans-Signature": b64(signature or batch.signature),
            "Content-Type": "application/json"})
        return connection.getresponse().status
    finally:
        connection.close()


def rotate(port: int, public_key: str, signature: bytes) -> int:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request("POST", "/api/v1/gateways/gw-tp118/key", headers={"Content-Type": "application/json"},
                           body=json.dumps({"public_key": public_key, "signature": b64(signature)}))
        return connection.getresponse().status
    finally:
        connection.close()


def test_a_flood_of_forged_batches_leaves_the_gateway_heard_and_one_counted_alert(app, db, gateway, server):
    real = make_batch(gateway.key)
    forged = make_batch(Ed25519PrivateKey.generate(), seq=2, prev=real.hash)
    assert post(server, real) == 201
    assert post(server, make_batch(gateway.key, imp="99.000")) == 409  # a real alert, from before the flood

    started = time.monotonic()
    with ThreadPoolExecutor(16) as pool:
        statuses = list(pool.map(lambda _: post(server, forged), range(FLOOD)))
    refilled = math.ceil(time.monotonic() - started)  # 60 a minute: one more answer for each second it ran
    assert set(statuses) <= {401, 429}, sorted(set(statuses))
    assert statuses.count(401) <= 31 + refilled + 1  # the address's burst and what refilled while the flood ran

    # The gateway's own budget (20 a minute: a burst of 10) was never touched by the forgeries.
    two = make_batch(gateway.key, seq=2, prev=real.hash, t="2026-10-01T00:15:00Z")
    assert post(server, two) == 201

    ledger = app.extensions["balans_refusals"]
    with db() as session:
        kinds = [e.kind for e in session.scalars(select(Event).order_by(Event.id))]
        forged_events = session.scalars(select(Event).where(Event.kind == "security:bad_signature")).all()
    assert kinds.count("security:seq_conflict") == 1
    assert len(forged_events) == 1, "repeated refusals are one event"
    assert forged_events[0].count + ledger.unwritten() == FLOOD, "every refusal is counted, written or not yet"
    assert forged_events[0].count >= 1


def test_the_admin_page_shows_the_count_and_the_other_alerts(app, db, gateway, server, client):
    with db() as session:
        create_user(session, "admin@coop.ua", PASSWORD, "org_admin", session.get(Organisation, gateway.org_id))
    real = make_batch(gateway.key)
    assert post(server, real) == 201
    assert post(server, make_batch(gateway.key, imp="99.000")) == 409
    forged = make_batch(Ed25519PrivateKey.generate(), seq=2, prev=real.hash)
    for _ in range(5):
        assert post(server, forged) == 401
    client.post("/login", data={"email": "admin@coop.ua", "password": PASSWORD})
    page = client.get("/admin/gateways").get_data(as_text=True)
    assert "× 5" in page and "seq_conflict" in page


def test_a_refusal_past_the_write_budget_is_added_to_the_next_write(app, db, gateway):
    now = [0.0]
    ledger = RefusalLedger(per_address_per_minute=60, events_per_minute=1, clock=lambda: now[0])
    with db() as session:
        event = {"org_id": gateway.org_id, "gateway_id": gateway_id(session), "kind": "security:bad_signature",
                 "detail": {}}
        for _ in range(4):
            ledger.record(session, {**event, "ts": utcnow()})
        assert ledger.unwritten() == 3
        now[0] += 61  # a minute later the budget has refilled
        ledger.record(session, {**event, "ts": utcnow()})
        assert ledger.unwritten() == 0
        assert session.scalars(select(Event.count).where(Event.kind == event["kind"])).all() == [5]


def test_an_old_event_is_not_reopened(app, db, gateway):
    with db() as session:
        first = {"org_id": gateway.org_id, "gateway_id": gateway_id(session), "kind": "security:bad_signature", "detail": {},
                 "ts": utcnow() - timedelta(hours=1)}
        add_refusal(session.connection(), first)
        add_refusal(session.connection(), {**first, "ts": utcnow()})
        add_refusal(session.connection(), {**first, "ts": utcnow()}, count=2)
        session.commit()
        assert session.scalars(select(Event.count).order_by(Event.id)).all() == [1, 3]


def test_a_flood_of_forged_key_rotations_is_one_counted_alert_and_the_real_rotation_still_works(app, db, gateway,
                                                                                                 server):
    thief = Ed25519PrivateKey.generate()
    thiefs_key = public_key_pem(thief.public_key())
    with ThreadPoolExecutor(16) as pool:
        statuses = list(pool.map(lambda _: rotate(server, thiefs_key, thief.sign(thiefs_key.encode())),
                                 range(ROTATIONS)))
    assert set(statuses) <= {401, 429}, sorted(set(statuses))
    assert statuses.count(401) <= 31 + 2  # the address's burst (and what refills while the flood runs)

    ledger = app.extensions["balans_refusals"]
    with db() as session:
        refused = session.scalars(select(Event).where(Event.kind == "security:key_rotation_refused")).all()
    assert len(refused) == 1, "repeated refusals are one event"
    assert refused[0].count + ledger.unwritten() == ROTATIONS, "every refusal is counted, written or not yet"

    # The gateway itself, signing its new key with the old one, still rotates (and then signs batches with it).
    new_key = Ed25519PrivateKey.generate()
    new_pem = public_key_pem(new_key.public_key())
    assert rotate(server, new_pem, gateway.key.sign(new_pem.encode())) == 200
    with db() as session:
        assert session.scalar(select(Gateway.public_key).where(Gateway.code == "gw-tp118")) == new_pem
    assert post(server, make_batch(new_key)) == 201
