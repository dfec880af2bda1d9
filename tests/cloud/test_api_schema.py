"""Schemathesis over the whole gateway and payment API, from the API's own OpenAPI document: whatever the
schema allows, never a 5xx, and a refused request writes nothing but its security event.

To reach past the signature check, batches are signed with the enrolled gateway's own key and sent under its
name, enrolments carry a real unused token and key rotations name the real gateway: what is fuzzed then is
the validation of each field, not only the lock on the door."""

from __future__ import annotations

import hashlib
import json

import pytest
import sqlalchemy
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from cloud import create_app
from cloud.ingest.enrolment import issue_token
from cloud.models import Base, EnrolmentToken, Site
from shared.batch import b64, public_key_pem

schemathesis = pytest.importorskip("schemathesis")
NOT_SET = schemathesis.core.NOT_SET

# What a refusal may write: its (aggregated) security event, the audit of a refusal, the throttles' counters.
MAY_CHANGE_ON_REFUSAL = {"events", "audit_log", "login_attempts", "refusal_counts"}


@pytest.fixture
def api_app(database_url, gateway):
    """A second app on the same database as the `gateway` fixture's, with a rate limit out of the way."""
    application = create_app({"DATABASE_URL": database_url, "SECRET_KEY": "schema", "TESTING": True,
                              "GATEWAY_RATE_PER_MINUTE": 10**6, "GATEWAY_REMOTE_PER_MINUTE": 10**6})
    yield application
    application.extensions["balans_engine"].dispose()


def operations() -> list:
    """Every operation of the document the API serves (read from the app itself, so none is forgotten)."""
    document = create_app({"DATABASE_URL": "sqlite://", "SECRET_KEY": "schema"}).test_client().get(
        "/api/v1/openapi.json").get_json()
    return [result.ok() for result in schemathesis.openapi.from_dict(document).get_all_operations()]


def table_counts(app) -> dict[str, int]:
    engine = app.extensions["balans_engine"]
    with engine.connect() as connection:
        names = sqlalchemy.inspect(connection).get_table_names()
        return {table.name: connection.scalar(select(func.count()).select_from(table))
                for table in Base.metadata.sorted_tables if table.name in names}


def unused_token(db, gateway) -> str:
    with db() as session:
        return issue_token(session, session.scalar(select(Site).where(Site.code == gateway.site)))


def send(case, client, db, gateway):
    """The case as generated, except for what lets it past the door: name, key, token."""
    body = case.body if isinstance(case.body, dict) else None
    path = case.formatted_path
    if path == "/api/v1/batches" and body is not None:
        # In the one encoding that is signed (shared.batch.canonical_bytes), so the body is read, not refused.
        raw = json.dumps({**body, "gateway": gateway.code}, sort_keys=True, separators=(",", ":"),
                         ensure_ascii=False).encode()
        return client.post(path, data=raw, headers={
            "X-Balans-Gateway": gateway.code, "X-Balans-Signature": b64(gateway.key.sign(raw)),
            "Content-Type": "application/json"})
    if path == "/api/v1/enrol" and body is not None:
        token = unused_token(db, gateway)
        response = client.post(path, json={
            **body, "token": token, "public_key": public_key_pem(Ed25519PrivateKey.generate().public_key())})
        if response.status_code >= 400:  # refused: the token is as good as before
            with db() as session:
                assert session.scalar(select(EnrolmentToken.used_at).where(
                    EnrolmentToken.token_hash == hashlib.sha256(token.encode()).hexdigest())) is None, "a refused enrolment used its token"
        return response
    tail = path.rsplit("/", 1)[-1]
    if path.startswith("/api/v1/gateways/") and tail in ("heartbeat", "config", "results") and body is not None:
        # Signed by the gateway in the canonical encoding (shared.batch.canonical_bytes), so its fields are read.
        raw = json.dumps({**body, "gateway": gateway.code}, sort_keys=True, separators=(",", ":"),
                         ensure_ascii=False).encode()
        return client.post(f"/api/v1/gateways/{gateway.code}/{tail}", data=raw, headers={
            "X-Balans-Signature": b64(gateway.key.sign(raw)), "Content-Type": "application/json"})
    if path.startswith("/api/v1/gateways/") and body is not None:
        return client.post(f"/api/v1/gateways/{gateway.code}/key", json=body)
    kind = "json" if case.media_type == "application/json" else "data"
    return client.open(path, method=case.method, headers=case.headers or {}, query_string=case.query or {},
                       **({kind: body if body is not None else case.body} if case.body is not NOT_SET else {}))


@pytest.mark.parametrize("operation", operations(), ids=lambda operation: operation.label)
@given(data=st.data())
@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_request_gets_a_5xx_nor_writes_half(operation, data, api_app, db, gateway):
    case = data.draw(operation.as_strategy())
    client = api_app.test_client()
    before = table_counts(api_app)
    response = send(case, client, db, gateway)
    text = response.get_data(as_text=True)
    assert response.status_code < 500, f"{case.method} {case.formatted_path}: {response.status_code} {text[:300]}"
    if response.status_code >= 400:
        after = table_counts(api_app)
        changed = {name for name in before if before[name] != after.get(name)} - MAY_CHANGE_ON_REFUSAL
        # A token was issued for the enrolment (its own use is checked in send).
        assert not changed - {"enrolment_tokens"}, f"a refused request wrote to {sorted(changed)}"
