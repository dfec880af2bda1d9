"""The cloud's side of cloud → gateway (docs/remote.md), over HTTP and the command line, on SQLite and PostgreSQL:
signed heartbeats (forged, replayed and malformed ones refused, nothing written), diagnostic requests queued and
answered, site configuration versions signed with the organisation's key kept encrypted."""

from __future__ import annotations

import json

import orjson
import pytest
from cryptography.fernet import InvalidToken
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import func, select

from cloud.api.tokens import make_token
from cloud.ingest.enrolment import issue_token
from cloud.ingest.health import latest_health
from cloud.ingest.site_config import _fernet
from cloud.models import (
    AuditLog,
    Event,
    Gateway,
    GatewayHealth,
    GatewayRequest,
    Organisation,
    OrgSigningKey,
    Site,
    SiteConfigVersion,
)
from shared.batch import b64, canonical_bytes, load_public_key, public_key_pem, unb64, verify_signature
from tests.cloud.conftest import setup_cooperative

pytestmark = pytest.mark.timeout(60)


def signed(client, key, code: str, tail: str, document: dict, sender: str | None = None):
    body = canonical_bytes({"v": 1, "gateway": sender or code, "sent": "2026-10-05T10:00:00.000000Z", **document})
    return client.post(f"/api/v1/gateways/{code}/{tail}", data=body, content_type="application/json",
                       headers={"X-Balans-Signature": b64(key.sign(body))})


def beat(client, gateway, n: int, version: int = 0, **extra):
    document = {"n": n, "health": {"backlog": 3, "disk_free_bytes": 10**9, "meters_answering": 7,
                                   "meters_configured": 8, "software_version": "0.1.0", "uptime_s": 60},
                "config": {"version": version, "last": None}, **extra}
    return signed(client, gateway.key, gateway.code, "heartbeat", document)


AUTHORED = {"poll_seconds": 900, "thresholds": {"elevated_pct": "3", "theft_pct": "10"},
            "lines": {"1": "Лінія 1"},
            "meters": [{"id": "F-1", "bus": "station", "unit": 1, "profile": "eastron-sdm630", "role": "feeder",
                        "line": "1"},
                       {"id": "S-2", "bus": "station", "unit": 2, "profile": "eastron-sdm120", "role": "subscriber",
                        "line": "1", "account": "01001"}]}


def bearer(db, org_id: int, role: str = "org_admin") -> dict:
    with db() as session:
        _, token = make_token(session, session.get(Organisation, org_id), f"test {role}", role, "test")
    return {"Authorization": f"Bearer {token}"}


def count(db, model) -> int:
    with db() as session:
        return session.scalar(select(func.count()).select_from(model))


def test_a_signed_heartbeat_is_stored_and_exposed(client, db, gateway):
    answer = beat(client, gateway, 1)
    assert answer.status_code == 200, answer.get_json()
    assert answer.get_json()["requests"] == [] and answer.get_json()["config"] is None
    with db() as session:
        health = latest_health(session, session.scalar(select(Gateway).where(Gateway.code == gateway.code)))
    assert health["backlog"] == 3 and health["meters_answering"] == 7 and health["software_version"] == "0.1.0"
    assert health["config_version"] == 0 and isinstance(health["clock_offset_s"], int)


def test_forged_replayed_and_malformed_heartbeats_are_refused_and_nothing_is_written(client, db, gateway):
    assert beat(client, gateway, 5).status_code == 200
    forged = signed(client, Ed25519PrivateKey.generate(), gateway.code, "heartbeat",
                    {"n": 6, "health": {}, "config": {"version": 0}})
    assert forged.status_code == 401 and forged.get_json()["field"] == "X-Balans-Signature"
    replayed = beat(client, gateway, 5)
    assert replayed.status_code == 409 and replayed.get_json()["field"] == "n"
    bad = signed(client, gateway.key, gateway.code, "heartbeat", {"n": 7, "health": {}, "config": {"version": -1}})
    assert bad.status_code == 422 and bad.get_json()["field"] == "config.version"
    other = signed(client, gateway.key, gateway.code, "heartbeat", {"n": 8, "health": {}, "config": {"version": 0}},
                   sender="gw-someone-else")
    assert other.status_code == 400 and other.get_json()["field"] == "gateway"
    with db() as session:
        assert session.scalar(select(GatewayHealth)).document["n"] == 5


def test_requests_are_queued_handed_out_in_the_answer_and_answered_once(app, client, db, gateway):
    headers = bearer(db, gateway.org_id)
    queued = client.post(f"/api/v1/gateways/{gateway.code}/requests", json={"kind": "log", "lines": 20},
                         headers=headers)
    assert queued.status_code == 201 and queued.get_json()["status"] == "queued"
    for bad, field in (({"kind": "format"}, "kind"), ({"kind": "log", "lines": 0}, "lines"),
                       ({"kind": "log", "lines": "many"}, "lines")):
        answer = client.post(f"/api/v1/gateways/{gateway.code}/requests", json=bad, headers=headers)
        assert answer.status_code == 422 and answer.get_json()["field"] == field
    assert client.post(f"/api/v1/gateways/{gateway.code}/requests", json={"kind": "log"},
                       headers=bearer(db, gateway.org_id, "clerk")).status_code == 403
    result = app.test_cli_runner().invoke(args=["gateway-request", "--gateway", gateway.code, "--kind", "reread"])
    assert result.exit_code == 0, result.output
    assert count(db, GatewayRequest) == 2
    handed = beat(client, gateway, 1).get_json()["requests"]
    assert [(r["kind"], r["params"]) for r in handed] == [("log", {"lines": 20}), ("reread", {})]
    assert beat(client, gateway, 2).get_json()["requests"] == []  # handed out once
    done = signed(client, gateway.key, gateway.code, "results",
                  {"request": handed[0]["id"], "ok": True, "result": {"lines": ["a", "b"]}})
    assert done.status_code == 200 and done.get_json()["status"] == "done"
    again = signed(client, gateway.key, gateway.code, "results",
                   {"request": handed[0]["id"], "ok": True, "result": {"lines": []}})
    assert again.status_code == 409
    listed = app.test_cli_runner().invoke(args=["gateway-requests", "--gateway", gateway.code, "--json"])
    rows = {row["kind"]: row for row in json.loads(listed.output)}
    assert rows["log"]["status"] == "done" and rows["log"]["result"] == {"lines": ["a", "b"]}
    assert rows["reread"]["status"] == "sent"
    with db() as session:
        assert session.scalar(select(func.count()).select_from(AuditLog).where(
            AuditLog.action == "gateway.request")) == 2


def test_the_org_key_is_made_at_enrolment_kept_encrypted_and_signs_each_version(app, client, db, gateway):
    with db() as session:
        row = session.get(OrgSigningKey, gateway.org_id)
        assert row is not None and "PRIVATE KEY" not in row.private_key
        with pytest.raises(InvalidToken):
            _fernet("another secret").decrypt(row.private_key.encode())
        public = load_public_key(row.public_key)
    headers = bearer(db, gateway.org_id)
    early = client.post(f"/api/v1/sites/{gateway.site}/config", json={"set": {"poll_seconds": "60"}}, headers=headers)
    assert early.status_code == 422 and early.get_json()["field"] == "site"  # nothing reported yet
    assert beat(client, gateway, 1, authored=AUTHORED).status_code == 200
    shown = client.get(f"/api/v1/sites/{gateway.site}/config", headers=headers).get_json()
    assert shown["version"] == 0 and shown["document"]["meters"][1]["id"] == "S-2"
    result = app.test_cli_runner().invoke(args=["site-config", "--site", gateway.site, "--set", "poll_seconds=60",
                                                "--set", "meter.S-2.unit=9"])
    assert result.exit_code == 0, result.output
    shown = json.loads(app.test_cli_runner().invoke(args=["site-config", "--site", gateway.site, "--show"]).output)
    assert shown["version"] == 1 and shown["document"]["poll_seconds"] == 60
    assert shown["document"]["meters"][1]["unit"] == 9
    with db() as session:
        version = session.scalar(select(SiteConfigVersion))
        verify_signature(public, version.body, version.signature)
        assert orjson.loads(version.body)["site"] == gateway.site
    for change, field in (("poll_seconds=0", "poll_seconds"), ("meter.NOPE.unit=3", "meter.NOPE.unit"),
                          ("colour=red", "colour"), ("thresholds.theft_pct=-1", "thresholds.theft_pct")):
        result = app.test_cli_runner().invoke(args=["site-config", "--site", gateway.site, "--set", change])
        assert result.exit_code != 0 and field in result.output, result.output
    bad = client.post(f"/api/v1/sites/{gateway.site}/config", json={"set": {"meter.S-2.unit": "999"}},
                      headers=headers)
    assert bad.status_code == 422 and bad.get_json()["field"] == "meters[1].unit"
    assert count(db, SiteConfigVersion) == 1
    offered = beat(client, gateway, 2).get_json()["config"]
    assert offered == {"version": 1}
    fetched = signed(client, gateway.key, gateway.code, "config", {"version": 1}).get_json()
    verify_signature(public, unb64(fetched["body"]), unb64(fetched["signature"]))
    assert signed(client, gateway.key, gateway.code, "config", {"version": 7}).status_code == 404


def test_the_enrolment_answer_carries_the_organisations_public_key(client, db, seed_scenario):
    _, site_code = setup_cooperative(db, seed_scenario)
    with db() as session:
        token = issue_token(session, session.scalar(select(Site).where(Site.code == site_code)))
    key = Ed25519PrivateKey.generate()
    answer = client.post("/api/v1/enrol", json={"token": token, "gateway": "gw-new", "site": {
        "site": site_code, "lines": [], "meters": []}, "public_key": public_key_pem(key.public_key())})
    assert answer.status_code == 201, answer.get_json()
    with db() as session:
        assert answer.get_json()["org_public_key"] == session.scalar(select(OrgSigningKey)).public_key


def test_a_runaway_gateway_gets_429_and_a_forger_cannot_spend_its_budget(app, client, db, gateway):
    app.config.update(GATEWAY_REMOTE_PER_MINUTE=6)  # a burst of 3
    forger = Ed25519PrivateKey.generate()
    for n in range(20):  # forged heartbeats: refused by the signature, counted, the gateway's bucket untouched
        assert signed(client, forger, gateway.code, "heartbeat",
                      {"n": 100 + n, "health": {}, "config": {"version": 0}}).status_code in (401, 429)
    assert [beat(client, gateway, n).status_code for n in (1, 2, 3)] == [200, 200, 200]
    runaway = beat(client, gateway, 4)
    assert runaway.status_code == 429 and int(runaway.headers["Retry-After"]) >= 1
    with db() as session:
        assert session.scalar(select(GatewayHealth)).document["n"] == 3, "the refused heartbeat wrote nothing"
        events = session.scalars(select(Event).where(Event.kind == "security:bad_signature")).all()
    assert len(events) == 1 and events[0].count + app.extensions["balans_refusals"].unwritten() == 20
