"""The resident's reading form takes a meter's reading and nothing else: ``NaN``, ``sNaN``, ``Infinity`` and
``1E+30`` parse as Decimals but are refused with 422 and a message that says what to type; nothing is stored."""

from __future__ import annotations

from datetime import datetime

import pytest
from sqlalchemy import func, select

from cloud.accounts.organisations import create_user
from cloud.models import AuditLog, Reading
from tests.cloud.office import account_with_meter, office, read

PASSWORD = "correct horse battery"
NOT_A_NUMBER = "Введіть число, наприклад 15992"
TOO_LARGE = "Показник завеликий: лічильник показує не більше 99 999 999.999 кВт·год"


@pytest.fixture
def resident(app, db):
    """A cottage's resident with a hand-read meter (last read at 1 200 kWh on 1 October), signed in."""
    with db() as session:
        org, site = office(session)
        account, meter = account_with_meter(session, org, site, "01001")
        read(session, meter, datetime(2026, 10, 1), "1200.000")
        create_user(session, "r@ex.ua", PASSWORD, "resident", org, account=account)
    client = app.test_client()
    assert client.post("/login", data={"email": "r@ex.ua", "password": PASSWORD}).status_code == 302
    return client


def submitted(db) -> tuple[int, int]:
    with db() as session:
        return (session.scalar(select(func.count()).select_from(Reading).where(Reading.source == "resident")),
                session.scalar(select(func.count()).select_from(AuditLog).where(AuditLog.action == "reading.submit")))


@pytest.mark.parametrize(("value", "message"), [
    ("NaN", NOT_A_NUMBER), ("nan", NOT_A_NUMBER), ("sNaN", NOT_A_NUMBER), ("-sNaN", NOT_A_NUMBER),
    ("Infinity", NOT_A_NUMBER), ("inf", NOT_A_NUMBER), ("-Infinity", NOT_A_NUMBER),
    ("1E+30", TOO_LARGE), ("1e30", TOO_LARGE), ("1E+999999", TOO_LARGE), ("100000000", TOO_LARGE),
])
def test_a_value_no_meter_shows_is_refused_saying_what_to_type(db, resident, value, message):
    answer = resident.post("/cabinet/reading", data={"value": value})
    assert answer.status_code == 422, value
    assert message in answer.get_data(as_text=True)
    assert submitted(db) == (0, 0)


def test_a_real_reading_after_them_is_taken(db, resident):
    for value in ("NaN", "sNaN", "Infinity", "1E+30"):
        resident.post("/cabinet/reading", data={"value": value})
    assert resident.post("/cabinet/reading", data={"value": "1210,5"}).status_code == 302
    with db() as session:
        assert session.scalars(select(Reading.values).where(Reading.source == "resident")).all() == [
            {"import_kwh": "1210.500"}]
