"""Evidence for an inspector: re-verification, export checked with openssl, key rotation and revocation."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import select

from cloud.ingest.chain import MAX_SEQ_AHEAD
from cloud.ingest.evidence import export_evidence, find_line, verify_gateway
from cloud.ingest.gateways import revoke
from cloud.models import Batch, Event, Gateway
from shared.batch import GENESIS_HASH, b64, public_key_pem, seal_batch
from tests.cloud.test_ingestion import make_batch, post


def chain(key, count, start_seq=1, prev=GENESIS_HASH, meter="TP118-L4"):
    batches = []
    for seq in range(start_seq, start_seq + count):
        t = f"2026-10-01T{seq:02d}:00:00Z"
        batch = seal_batch(key, gateway="gw-tp118", seq=seq, prev=prev, created=t,
                           intervals=[{"m": meter, "t": t, "imp": "12.500", "exp": "0.000", "f": "measured"}])
        batches.append(batch)
        prev = batch.hash
    return batches


def test_every_stored_batch_reverifies_and_tampering_is_found(client, db, gateway):
    for batch in chain(gateway.key, 4):
        assert post(client, batch).status_code == 201
    with db() as session:
        assert verify_gateway(session, session.scalar(select(Gateway))).ok
    with db() as session:  # someone edits a stored batch behind the application's back
        stored = session.scalar(select(Batch).where(Batch.seq == 3))
        stored.body = stored.body.replace(b"12.500", b"2.500")
    with db() as session:
        report = verify_gateway(session, session.scalar(select(Gateway)))
    assert not report.ok
    assert any(problem.startswith("batch 3: signature") for problem in report.problems)


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl is not installed")
def test_an_exported_line_verifies_with_openssl(client, db, gateway, tmp_path):
    batches = chain(gateway.key, 3)
    for batch in batches:
        post(client, batch)
    with db() as session:
        site, line = find_line(session, "4")
        manifest = export_evidence(session, site, line, "2026-10", tmp_path)
    assert [b["seq"] for b in manifest["batches"]] == [1, 2, 3]
    assert "openssl pkeyutl -verify" in (tmp_path / "README.txt").read_text()
    key = tmp_path / manifest["batches"][1]["key"]
    body = tmp_path / "batches" / "gw-tp118" / "00000002.json"
    result = subprocess.run(["openssl", "pkeyutl", "-verify", "-pubin", "-inkey", str(key), "-rawin",
                             "-in", str(body), "-sigfile", str(body.with_suffix(".sig"))],
                            capture_output=True, text=True)
    assert "Signature Verified Successfully" in result.stdout
    assert body.read_bytes() == batches[1].body


def cli(app, *args):
    result = app.test_cli_runner().invoke(args=list(args))
    return result.exit_code, result.output


def test_batches_never_received_are_reported_as_ranges(app, client, db, gateway):
    first, second = chain(gateway.key, 2)
    for batch in (first, second, *chain(gateway.key, 1, start_seq=5), *chain(gateway.key, 1, start_seq=7)):
        assert post(client, batch).status_code == 201
    with db() as session:
        report = verify_gateway(session, session.scalar(select(Gateway)))
    assert report.ok and report.gaps == [(3, 4), (6, 6)]
    assert cli(app, "verify", "--gateway", "gw-tp118") == (0, "gw-tp118: 4 batches (1…7), all verify, gaps 3–4, 6\n")
    code, output = cli(app, "verify", "--gateway", "gw-tp118", "--json")
    assert code == 0 and json.loads(output)["gaps"] == [[3, 4], [6, 6]]


def test_a_gateway_that_jumped_a_hundred_thousand_batches_is_one_gap(app, client, db, gateway):
    assert post(client, make_batch(gateway.key)).status_code == 201
    far = 1 + MAX_SEQ_AHEAD
    assert post(client, make_batch(gateway.key, seq=far, t="2026-10-01T00:15:00Z")).status_code == 201
    with db() as session:
        assert verify_gateway(session, session.scalar(select(Gateway))).gaps == [(2, far - 1)]
    code, output = cli(app, "verify", "--gateway", "gw-tp118")
    assert code == 0 and output == f"gw-tp118: 2 batches (1…{far}), all verify, gaps 2–{far - 1}\n"
    code, output = cli(app, "verify", "--gateway", "gw-tp118", "--json")
    assert json.loads(output)["gaps"] == [[2, far - 1]] and len(output) < 1000


def test_the_manifest_lists_the_batches_never_received_as_ranges(client, db, gateway, tmp_path):
    batches = chain(gateway.key, 2)
    later = chain(gateway.key, 1, start_seq=6, prev=batches[-1].hash)
    for batch in batches + later:
        assert post(client, batch).status_code == 201
    with db() as session:
        site, line = find_line(session, "4")
        manifest = export_evidence(session, site, line, "2026-10", tmp_path)
    assert [b["seq"] for b in manifest["batches"]] == [1, 2, 6]
    assert manifest["gaps"] == {"gw-tp118": [[3, 5]]}
    assert json.loads((tmp_path / "manifest.json").read_text())["gaps"] == {"gw-tp118": [[3, 5]]}


def test_a_rotated_key_keeps_old_batches_verifiable(client, db, gateway):
    old_batches = chain(gateway.key, 2)
    for batch in old_batches:
        post(client, batch)
    new_key = Ed25519PrivateKey.generate()
    pem = public_key_pem(new_key.public_key())
    forged = client.post("/api/v1/gateways/gw-tp118/key",
                         json={"public_key": pem, "signature": b64(Ed25519PrivateKey.generate().sign(pem.encode()))})
    assert forged.status_code == 401
    rotated = client.post("/api/v1/gateways/gw-tp118/key",
                          json={"public_key": pem, "signature": b64(gateway.key.sign(pem.encode()))})
    assert rotated.status_code == 200, rotated.get_json()
    # The old key no longer signs for the gateway; the new one does.
    stale = chain(gateway.key, 1, start_seq=3, prev=old_batches[-1].hash)[0]
    assert post(client, stale).status_code == 401
    fresh = chain(new_key, 1, start_seq=3, prev=old_batches[-1].hash)[0]
    assert post(client, fresh).status_code == 201
    with db() as session:
        assert verify_gateway(session, session.scalar(select(Gateway))).ok


def test_a_revoked_gateway_is_refused_and_the_admin_sees_it(client, db, gateway):
    with db() as session:
        revoke(session, session.scalar(select(Gateway)), "admin@coop.ua", "stolen")
    response = post(client, chain(gateway.key, 1)[0])
    assert response.status_code == 403
    with db() as session:
        assert "security:revoked_gateway" in session.scalars(select(Event.kind)).all()


def test_a_refused_key_rotation_is_a_security_event_the_admin_sees(client, db, gateway):
    pem = public_key_pem(Ed25519PrivateKey.generate().public_key())
    forged = client.post("/api/v1/gateways/gw-tp118/key",
                         json={"public_key": pem, "signature": b64(Ed25519PrivateKey.generate().sign(pem.encode()))})
    assert forged.status_code == 401
    with db() as session:
        revoke(session, session.scalar(select(Gateway)), "admin@coop.ua", "stolen")
    after_revocation = client.post("/api/v1/gateways/gw-tp118/key",
                                   json={"public_key": pem, "signature": b64(gateway.key.sign(pem.encode()))})
    assert after_revocation.status_code == 403
    with db() as session:
        refused = session.scalars(select(Event).where(Event.kind == "security:key_rotation_refused")).all()
        # Anyone can cause these: one event per gateway and ten minutes, with a count (refusals.py AGGREGATED).
        assert [(event.count, event.detail["reason"]) for event in refused] == [(2, "signature does not match "
                                                                                    "the gateway's key")]
        assert session.scalar(select(Gateway)).public_key == public_key_pem(gateway.key.public_key())
