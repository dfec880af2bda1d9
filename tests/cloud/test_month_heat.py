"""The month's readings for a heat network (issue 17): КП «Теплоенерго»'s будинок 12 has its building heat meter
read at both bounds of October's heating days, flat 2's own meter read, flat 3's not — the month's page and its
API say so, as the heat run will decide; a building meter unread, or none at all, is said first."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

import pytest
from sqlalchemy import delete, select

from cloud.accounts.organisations import create_user
from cloud.api.tokens import make_token
from cloud.billing.heat_run import set_heating_season
from cloud.models import Meter, Organisation, Reading, Site
from cloud.month.review import readings_status
from shared.calendar import from_kyiv_wall
from tests.cloud.office import account_with_meter, office, read

NOV = datetime(2026, 11, 1)
PASSWORD = "correct horse battery"


@pytest.fixture
def building(db) -> int:
    """Будинок 12: the building meter TB-12; flats 1 (by area), 2 (HM-2, read) and 3 (HM-3, never read)."""
    with db() as session:
        org, site = office(session, kind="heat", name="КП «Теплоенерго»", code="B-12", price="1654.18",
                           coefficient="1")
        meter = Meter(org_id=org.id, site_id=site.id, code="TB-12", role="heat_building")
        session.add(meter)
        session.flush()
        read(session, meter, datetime(2026, 10, 15), "100.0000", register="heat_gcal")
        read(session, meter, NOV, "112.5000", register="heat_gcal")
        for number, area in (("1", "50"), ("2", "70"), ("3", "80")):
            account, own = account_with_meter(session, org, site, number, f"HM-{number}")
            account.heated_area_m2 = Decimal(area)
            if number == "1":
                session.delete(own)
            elif number == "2":
                read(session, own, datetime(2026, 10, 15), "10.000", register="heat_gcal")
                read(session, own, NOV, "12.000", register="heat_gcal")
        set_heating_season(session, org, date(2026, 10, 15), date(2027, 4, 15))
        create_user(session, "clerk@teplo.ua", PASSWORD, "clerk", org)
        return org.id


def status(db, period="2026-10"):
    with db() as session:
        return readings_status(session, session.scalar(select(Site).where(Site.code == "B-12")), period)


def test_the_building_meter_is_read_and_flat_3s_meter_is_not(db, building):
    found = status(db)
    assert found.heat and found.error is None
    assert (found.building.meter, found.building.read, found.building.gcal) == ("TB-12", True, Decimal("12.5000"))
    assert [(a.number, a.state, a.unread) for a in found.accounts] == [
        ("3", "reading_missing", ["HM-3"]), ("2", "reading_measured", [])]  # flat 1 heats by area: nothing to read
    assert found.accounts[1].kwh == Decimal("2.000")


def test_the_building_meter_unread_at_the_periods_end_is_said(db, building):
    with db() as session:
        meter_id = session.scalar(select(Meter.id).where(Meter.code == "TB-12"))
        session.execute(delete(Reading).where(Reading.meter_id == meter_id, Reading.ts == from_kyiv_wall(NOV)))
    found = status(db)
    assert found.building.meter == "TB-12" and not found.building.read and found.building.gcal is None


def test_outside_the_heating_season_nothing_is_missing(db, building):
    found = status(db, "2026-09")
    assert found.building.read and found.building.gcal == 0
    assert {a.state for a in found.accounts} == {"reading_measured"}


def test_a_site_without_a_building_meter_says_so(db, building):
    with db() as session:
        session.execute(delete(Reading).where(Reading.meter_id.in_(select(Meter.id).where(Meter.code == "TB-12"))))
        session.execute(delete(Meter).where(Meter.code == "TB-12"))
    found = status(db)
    assert found.error is not None and found.error.code == "err_no_building_meter"
    assert found.building.meter == "" and not found.building.read


def test_the_months_page_and_api_show_the_building_meter_and_the_unread_flat(client, db, building):
    client.post("/login", data={"email": "clerk@teplo.ua", "password": PASSWORD})
    page = client.get("/sites/B-12/month?period=2026-10").get_data(as_text=True)
    assert "TB-12" in page and "12,5000" in page and "HM-3" in page and "Гкал" in page
    assert "Хто зняв показники" in page and "внесено офісом — 2" in page  # TB-12 and HM-2, typed in
    with db() as session:
        secret = make_token(session, session.get(Organisation, building), "1c", "clerk", "admin@teplo.ua")[1]
    answer = client.get("/api/v1/sites/B-12/month/2026-10", headers={"Authorization": f"Bearer {secret}"})
    assert answer.status_code == 200, answer.get_data(as_text=True)
    body = answer.get_json()
    assert body["unit"] == "Gcal" and body["building"] == {"meter": "TB-12", "read": True, "gcal": "12.5000"}
    assert body["read_by"] == {"TB-12": ["office"], "HM-2": ["office"]}
    assert [(r["account"], r["state"], r["unread"]) for r in body["readings"]] == [
        ("3", "missing", ["HM-3"]), ("2", "measured", [])]
