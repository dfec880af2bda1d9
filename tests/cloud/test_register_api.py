"""The register's JSON API (issue 17): the cooperative's 1С reads and keeps the register with its token — a
token that is missing or revoked gets 401, a manager's reads but may not write, another organisation's account
is never seen, a bad phone is a 422 naming the field with nothing written, and every change is audited as
``api:<token name>``. Then schemathesis fuzzes the whole document with a good token: never a 5xx."""

from __future__ import annotations

from datetime import datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from cloud import create_app
from cloud.api.tokens import make_token, revoke_token
from cloud.models import Account, ApiToken, AuditLog, Line, Meter, Organisation
from tests.cloud.office import account_with_meter, office, read

schemathesis = pytest.importorskip("schemathesis")
NOT_SET = schemathesis.core.NOT_SET
API = "/api/v1/register"


@pytest.fixture
def coop(db) -> int:
    with db() as session:
        org, site = office(session)
        line = Line(org_id=org.id, site_id=site.id, number="1")
        session.add(line)
        session.flush()
        account, meter = account_with_meter(session, org, site, "00101", installed_at=datetime(2026, 1, 10))
        meter.line_id = line.id
        account.subsidy_uah = 120
        read(session, meter, datetime(2026, 10, 1), "5000.125")
        return org.id


def token(db, org_id: int, role: str = "clerk", name: str = "1c") -> str:
    with db() as session:
        return make_token(session, session.get(Organisation, org_id), name, role, "admin@coop.ua")[1]


def bearer(secret: str) -> dict:
    return {"Authorization": f"Bearer {secret}"}


def audits(db) -> int:
    with db() as session:
        return session.scalar(select(func.count()).select_from(AuditLog).where(AuditLog.actor.like("api:%")))


def test_no_token_or_a_revoked_one_is_401(client, db, coop):
    assert client.get(f"{API}/accounts").status_code == 401
    assert client.get(f"{API}/accounts", headers=bearer("blns_not-a-token")).status_code == 401
    secret = token(db, coop)
    assert client.get(f"{API}/accounts", headers=bearer(secret)).status_code == 200
    with db() as session:
        revoke_token(session, session.scalar(select(ApiToken)), "admin@coop.ua")
    answer = client.get(f"{API}/accounts", headers=bearer(secret))
    assert answer.status_code == 401 and answer.get_json()["error"] == "unauthorised"


def test_a_manager_token_reads_but_may_not_write(client, db, coop):
    headers = bearer(token(db, coop, role="manager"))
    assert client.get(f"{API}/accounts/00101", headers=headers).status_code == 200
    assert client.get(f"{API}/meters", headers=headers).status_code == 200
    assert client.put(f"{API}/accounts/00101", json={"holder": "x"}, headers=headers).status_code == 403
    assert client.post(f"{API}/accounts", json={"number": "7"}, headers=headers).status_code == 403
    assert client.post(f"{API}/imports", data=b"x", headers=headers).status_code == 403


def test_an_installer_token_reads_the_meters_for_provision_init_but_no_subscriber(client, db, coop):
    headers = bearer(token(db, coop, role="installer", name="installer's laptop"))
    listing = client.get(f"{API}/meters", headers=headers)
    assert listing.status_code == 200 and listing.get_json()["meters"]
    assert client.get(f"{API}/meters/{listing.get_json()['meters'][0]['id']}", headers=headers).status_code == 200
    assert client.get(f"{API}/accounts", headers=headers).status_code == 403
    assert client.get(f"{API}/accounts/00101", headers=headers).status_code == 403
    assert client.post(f"{API}/meters", json={"code": "X"}, headers=headers).status_code == 403


def test_another_organisations_account_and_meter_are_not_found(client, db, coop):
    with db() as session:
        other, site = office(session, name="ОСББ «Липки»", code="TP-1")
        _, stranger = account_with_meter(session, other, site, "55555")
        session.commit()
        stranger_id = stranger.id
    headers = bearer(token(db, coop))
    assert client.get(f"{API}/accounts/55555", headers=headers).status_code == 404
    assert client.put(f"{API}/accounts/55555", json={"holder": "x"}, headers=headers).status_code == 404
    assert client.get(f"{API}/meters/{stranger_id}", headers=headers).status_code == 404
    assert client.post(f"{API}/meters/{stranger_id}/replace", json={}, headers=headers).status_code == 404
    listed = client.get(f"{API}/accounts?query=55555", headers=headers).get_json()
    assert listed["accounts"] == [] and listed["total"] == 0


def test_an_account_reads_with_decimals_as_strings_and_a_bad_phone_changes_nothing(client, db, coop):
    headers = bearer(token(db, coop))
    found = client.get(f"{API}/accounts/00101", headers=headers).get_json()
    assert found["subsidy_uah"] == "120" and found["benefit_pct"] == "0"
    assert found["meters"][0]["last_reading"]["value"] == "5000.125"
    bad = client.put(f"{API}/accounts/00101", json={"phone": "067", "holder": "Іваненко"}, headers=headers)
    assert bad.status_code == 422
    assert bad.get_json()["field"] == "phone" and bad.get_json()["error"] == "err_field_phone"
    floaty = client.put(f"{API}/accounts/00101", json={"subsidy_uah": 12.5}, headers=headers)
    assert floaty.status_code == 422 and floaty.get_json()["field"] == "subsidy_uah"
    with db() as session:
        assert session.scalar(select(Account.holder).where(Account.number == "00101")) == "Абонент 00101"
    assert audits(db) == 0


def test_every_change_is_audited_as_the_token(client, db, coop):
    headers = bearer(token(db, coop, name="1С Бухгалтерія"))
    changed = client.put(f"{API}/accounts/00101", json={"phone": "067 123 45 67", "subsidy_uah": "99,50"},
                         headers=headers)
    assert changed.status_code == 200 and changed.get_json()["phone"] == "+380671234567"
    assert changed.get_json()["subsidy_uah"] == "99.5"
    created = client.post(f"{API}/accounts", json={"number": "00102", "holder": "Петренко", "site": "TP-7"},
                          headers=headers)
    assert created.status_code == 201
    assert client.post(f"{API}/accounts", json={"number": "00102"}, headers=headers).status_code == 422
    meter = client.post(f"{API}/meters", json={"site": "TP-7", "code": "M00102", "account": "00102", "line": "1"},
                        headers=headers)
    assert meter.status_code == 201, meter.get_json()
    meter_id = meter.get_json()["id"]
    no_account = client.post(f"{API}/meters", json={"site": "TP-7", "code": "M00103"}, headers=headers)
    assert no_account.status_code == 422 and no_account.get_json()["field"] == "account"
    moved = client.put(f"{API}/meters/{meter_id}", json={"profile": "nik2104"}, headers=headers)
    assert moved.status_code == 200 and moved.get_json()["profile"] == "nik2104"
    with db() as session:
        old_id = session.scalar(select(Meter.id).where(Meter.code == "M00101"))
    replaced = client.post(f"{API}/meters/{old_id}/replace", headers=headers, json={
        "at": "2026-10-20T06:00:00Z", "old_reading": "5250", "new_code": "M00101-2", "new_reading": "3"})
    assert replaced.status_code == 201, replaced.get_json()
    assert replaced.get_json()["old"]["removed_at"] == "2026-10-20T06:00:00Z"
    assert replaced.get_json()["new"]["last_reading"]["value"] == "3.000"
    listed = client.get(f"{API}/meters?state=removed", headers=headers).get_json()
    assert [m["code"] for m in listed["meters"]] == ["M00101"]
    with db() as session:
        actions = sorted(session.scalars(select(AuditLog.action).where(AuditLog.actor == "api:1С Бухгалтерія")))
    assert actions == ["account.create", "account.update", "meter.create", "meter.replace", "meter.update",
                       "reading.enter", "reading.enter"]


def test_a_file_is_previewed_then_applied_whole(client, db, coop):
    headers = bearer(token(db, coop))
    bad = "Особовий рахунок;ТП;ПІБ;Телефон\n00101;TP-7;Іваненко;067 123 45 67\n00102;TP-7;Петренко;12\n"
    preview = client.post(f"{API}/imports?filename=a.csv", data=bad.encode(), headers={
        **headers, "Content-Type": "text/csv"})
    assert preview.status_code == 201
    body = preview.get_json()
    assert [(r["line"], r["status"]) for r in body["rows"]] == [(2, "changed"), (3, "error")]
    assert body["rows"][0]["changes"]["phone"] == {"before": "", "after": "+380671234567"}
    refused = client.post(f"{API}/imports/{body['id']}/apply", headers=headers)
    assert refused.status_code == 422 and refused.get_json()["counts"]["error"] == 1
    good = bad.replace(";12\n", ";\n").encode()
    upload = client.post(f"{API}/imports", data=good, headers={**headers, "Content-Type": "text/csv"}).get_json()
    done = client.post(f"{API}/imports/{upload['id']}/apply", headers=headers)
    assert done.status_code == 200 and done.get_json()["status"] == "applied"
    assert client.post(f"{API}/imports/{upload['id']}/apply", headers=headers).status_code == 422
    with db() as session:
        assert session.scalar(select(Account.holder).where(Account.number == "00102")) == "Петренко"
        assert set(session.scalars(select(AuditLog.actor).where(AuditLog.action.like("account.%")))) == {"api:1c"}
    garbage = client.post(f"{API}/imports", data=b"\x00\x01", headers=headers)
    assert garbage.status_code == 422 and garbage.get_json()["field"] == "file"


def test_pages_of_accounts_link_the_next_one(client, db, coop):
    with db() as session:
        org = session.get(Organisation, coop)
        session.add_all([Account(org_id=org.id, number=f"9{i:04d}") for i in range(60)])
        session.commit()
    headers = bearer(token(db, coop))
    first = client.get(f"{API}/accounts?query=9", headers=headers).get_json()
    assert len(first["accounts"]) == 50 and first["pages"] == 2
    second = client.get(first["next"], headers=headers).get_json()
    assert len(second["accounts"]) == 10 and second["next"] is None


# The whole document, fuzzed with a good token.

def operations() -> list:
    document = create_app({"DATABASE_URL": "sqlite://", "SECRET_KEY": "schema"}).test_client().get(
        f"{API}/openapi.json").get_json()
    return [result.ok() for result in schemathesis.openapi.from_dict(document).get_all_operations()]


@pytest.fixture
def fuzzed(coop, db):
    return token(db, coop, role="org_admin")


@pytest.mark.parametrize("operation", operations(), ids=lambda operation: operation.label)
@given(data=st.data())
@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_request_with_a_good_token_gets_a_5xx(operation, data, client, fuzzed):
    case = data.draw(operation.as_strategy())
    kind = "json" if case.media_type == "application/json" else "data"
    body = {} if case.body is NOT_SET else {kind: case.body}
    if kind == "data" and isinstance(case.body, str):
        body = {"data": case.body.encode()}
    response = client.open(case.formatted_path, method=case.method, query_string=case.query or {},
                           headers={**(case.headers or {}), **bearer(fuzzed),
                                    **({"Content-Type": case.media_type} if case.media_type else {})}, **body)
    assert response.status_code < 500, \
        f"{case.method} {case.formatted_path}: {response.status_code} {response.get_data(as_text=True)[:300]}"
