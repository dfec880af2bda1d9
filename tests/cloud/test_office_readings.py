"""The office's readings round (issue 17): the clerk opens the month's readings, sees which meters have none at
the month's end, types them in one form — one bad value names its meter and nothing is stored — or uploads a
CSV whose bad line is named; the same through the JSON API with a token."""

from __future__ import annotations

import io
import re
from datetime import datetime

import pytest
from sqlalchemy import func, select

from cloud.accounts.organisations import create_user
from cloud.api.tokens import make_token
from cloud.models import AuditLog, Meter, Organisation, Reading
from shared.calendar import from_kyiv_wall
from tests.cloud.office import account_with_meter, office, read

PASSWORD = "correct horse battery"
NOV_END = from_kyiv_wall(datetime(2026, 12, 1))


@pytest.fixture
def town(db) -> int:
    """Three households read on 1 November at 1 000, 500 and 20 kWh; a clerk; the November round to do."""
    with db() as session:
        org, site = office(session)
        for number, value in (("00101", "1000"), ("00102", "500"), ("00103", "20")):
            _, meter = account_with_meter(session, org, site, number)
            read(session, meter, datetime(2026, 11, 1), value)
        create_user(session, "clerk@coop.ua", PASSWORD, "clerk", org)
        return org.id


@pytest.fixture
def clerk(app, town):
    client = app.test_client()
    assert client.post("/login", data={"email": "clerk@coop.ua", "password": PASSWORD}).status_code == 302
    return client


def csrf(client, url) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', client.get(url).get_data(as_text=True)).group(1)


def stored(db) -> dict[str, str]:
    with db() as session:
        rows = session.execute(select(Reading.values, Reading.meter_id).where(Reading.ts == NOV_END)).all()
        return {str(meter_id): values["import_kwh"] for values, meter_id in rows}


def test_the_round_lists_the_meters_without_a_reading_at_the_months_end(clerk):
    page = clerk.get("/sites/TP-7/readings?period=2026-11")
    text = page.get_data(as_text=True)
    assert page.status_code == 200
    assert "2026-12-01 00:00" in text  # the month's end, as the office types it
    assert all(f'name="value-M{n}"' in text for n in ("00101", "00102", "00103"))
    assert "<strong>3</strong> без показника" in text


def test_one_bad_value_names_its_meter_and_nothing_is_stored(clerk, db):
    url = "/sites/TP-7/readings?period=2026-11"
    token = csrf(clerk, url)
    answer = clerk.post("/sites/TP-7/readings", data={
        "csrf_token": token, "period": "2026-11", "at": "2026-12-01 00:00",
        "value-M00101": "1150", "value-M00102": "450", "value-M00103": "2x"})
    text = answer.get_data(as_text=True)
    assert answer.status_code == 422
    assert "лічильник M00102: 450 на 2026-12-01 00:00 менший за попередній показник (500" in text
    assert "лічильник M00103: «2x» — не показник" in text
    assert 'value="1150"' in text, "what was typed stays in the form"
    assert stored(db) == {}
    with db() as session:
        assert session.scalar(select(func.count()).select_from(AuditLog).where(AuditLog.action == "reading.enter")) == 0


def test_good_values_are_stored_and_the_round_shrinks(clerk, db):
    url = "/sites/TP-7/readings?period=2026-11"
    answer = clerk.post("/sites/TP-7/readings", data={
        "csrf_token": csrf(clerk, url), "period": "2026-11", "at": "2026-12-01 00:00",
        "value-M00101": "1150,5", "value-M00102": "", "value-M00103": "45"})
    assert answer.status_code == 302
    assert sorted(stored(db).values()) == ["1150.500", "45.000"]
    after = clerk.get(answer.headers["Location"]).get_data(as_text=True)
    assert "Збережено показників: 2." in after
    assert 'name="value-M00102"' in after and 'name="value-M00101"' not in after


def test_a_csv_with_a_bad_line_is_refused_whole_naming_the_line(clerk, db):
    url = "/sites/TP-7/readings?period=2026-11"
    body = "meter,at,value\nM00101,2026-12-01 00:00,1150\nM00102,2026-12-01 00:00,abc\n"
    answer = clerk.post("/sites/TP-7/readings/import", data={
        "csrf_token": csrf(clerk, url), "period": "2026-11",
        "file": (io.BytesIO(body.encode()), "obkhid.csv")}, content_type="multipart/form-data")
    assert answer.status_code == 422
    assert "obkhid.csv, рядок 3:" in answer.get_data(as_text=True)
    assert stored(db) == {}
    good = "meter,at,value\nM00101,2026-12-01 00:00,1150\nM00102,2026-12-01 00:00,560\n"
    answer = clerk.post("/sites/TP-7/readings/import", data={
        "csrf_token": csrf(clerk, url), "period": "2026-11",
        "file": (io.BytesIO(good.encode()), "obkhid.csv")}, content_type="multipart/form-data")
    assert answer.status_code == 302
    assert sorted(stored(db).values()) == ["1150.000", "560.000"]


def test_an_installer_may_not_enter_readings(app, db, town):
    with db() as session:
        create_user(session, "fitter@coop.ua", PASSWORD, "installer", session.get(Organisation, town))
    client = app.test_client()
    client.post("/login", data={"email": "fitter@coop.ua", "password": PASSWORD})
    assert client.get("/sites/TP-7/readings").status_code == 403
    client.application.config["WTF_CSRF_ENABLED"] = False
    assert client.post("/sites/TP-7/readings", data={"period": "2026-11", "value-M00101": "1150"}).status_code == 403
    assert stored(db) == {}


def test_the_api_enters_a_round_all_or_nothing(app, db, town):
    with db() as session:
        _, token = make_token(session, session.get(Organisation, town), "1С", "clerk", "test")
    auth = {"Authorization": f"Bearer {token}"}
    client = app.test_client()
    listed = client.get("/api/v1/sites/TP-7/readings?period=2026-11", headers=auth).get_json()
    assert listed["unread"] == 3 and listed["at"] == "2026-11-30T22:00:00Z"
    refused = client.post("/api/v1/sites/TP-7/readings", headers=auth, json={
        "at": "2026-12-01 00:00", "readings": {"M00101": "1150", "M00102": "400"}})
    assert refused.status_code == 422 and refused.get_json()["field"] == "readings.M00102"
    assert stored(db) == {}
    floats = client.post("/api/v1/sites/TP-7/readings", headers=auth, json={
        "at": "2026-12-01 00:00", "readings": {"M00101": 1150.0}})
    assert floats.status_code == 422
    done = client.post("/api/v1/sites/TP-7/readings", headers=auth, json={
        "at": "2026-12-01 00:00", "readings": {"M00101": "1150", "M00102": "560"}})
    assert done.status_code == 201 and done.get_json()["stored"] == 2
    csv_answer = client.post("/api/v1/sites/TP-7/readings.csv", headers=auth,
                             data=b"meter,at,value\nM00103,2026-12-01 00:00,45\n")
    assert csv_answer.status_code == 201 and csv_answer.get_json() == {"stored": 1}
    with db() as session:
        actors = set(session.scalars(select(AuditLog.actor).where(AuditLog.action == "reading.enter")))
    assert actors == {"api:1С"}
    assert client.get("/api/v1/sites/TP-7/readings", headers={}).status_code == 401
    assert client.get("/api/v1/sites/TP-404/readings", headers=auth).status_code == 404


def test_another_organisations_site_is_not_found(app, db, town, clerk):
    with db() as session:
        other, site = office(session, name="ОСББ «Інше»", code="TP-9")
        account_with_meter(session, other, site, "09001")
    assert clerk.get("/sites/TP-9/readings").status_code == 404
    assert clerk.post("/sites/TP-9/readings", data={"csrf_token": csrf(clerk, "/sites/TP-7/readings"),
                                                    "value-M09001": "1"}).status_code == 404


def test_a_meter_read_on_both_sides_of_the_months_end_needs_no_typing(clerk, db):
    """Billing interpolates a counter between the readings around the bound (a gateway's missed midnight poll):
    the round lists only the meters whose counter there is not known."""
    with db() as session:
        meters = {m.code: m for m in session.scalars(select(Meter))}
        read(session, meters["M00101"], datetime(2026, 11, 30, 22, 0), "1290")  # Kyiv wall clock, as read() takes
        read(session, meters["M00101"], datetime(2026, 12, 1, 4, 0), "1296")
        read(session, meters["M00102"], datetime(2026, 11, 30, 20, 0), "600")  # before the end only
    text = clerk.get("/sites/TP-7/readings?period=2026-11").get_data(as_text=True)
    assert 'name="value-M00101"' not in text
    assert 'name="value-M00102"' in text and 'name="value-M00103"' in text
    assert "<strong>2</strong> без показника" in text
