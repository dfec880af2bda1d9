"""The manager's billing page shows what Balans itself costs this organisation and what a loss reduction of
one or two percentage points would bring — the seed's "a 1–2 % loss reduction usually pays the licence"."""

from __future__ import annotations

from decimal import Decimal

from cloud.accounts.organisations import create_user
from cloud.models import Meter
from shared.licence import loss_reduction_return, roi
from tests.cloud.office import account_with_meter, bill, intervals, month, office, quarter_hours, read


def test_a_one_point_loss_reduction_pays_the_licence_many_times_over():
    result = roi(95, Decimal(100000), Decimal("4.20"))
    one, two = (loss_reduction_return(result, Decimal(p)) for p in (1, 2))
    assert (result.yearly_licence_uah, one.saving_uah, one.net_uah, one.payback_months) == (
        Decimal("5700.00"), Decimal("50400.00"), Decimal("44700.00"), Decimal("1.4"))
    assert two.saving_uah == Decimal("100800.00")


def test_the_managers_billing_page_shows_the_licence_and_its_return(client, db):
    with db() as session:
        org, site = office(session)
        station = Meter(org_id=org.id, site_id=site.id, code="TP-IN", role="station_input")
        session.add(station)
        session.flush()
        # 100 000 000 Wh over October's 2 980 quarter-hours in Kyiv (the clocks go back on the 25th): 33 557 Wh,
        # 140 of them one more.
        assert quarter_hours(month("2026-10"), month("2026-11")) == 2980
        extra = iter(range(2980))
        intervals(session, org, site, station, month("2026-10"), month("2026-11"),
                  lambda ts: 33557 + (1 if next(extra) < 140 else 0))
        _, meter = account_with_meter(session, org, site, "01001")
        read(session, meter, month("2026-10"), "0")
        read(session, meter, month("2026-11"), "300")
        create_user(session, "board@coop.ua", "correct horse battery", "manager", org)
    bill(db, "TP-7", "2026-10")
    client.post("/login", data={"email": "board@coop.ua", "password": "correct horse battery"})
    page = client.get("/sites/TP-7/billing?period=2026-10").get_data(as_text=True)
    # One subscriber: the 250 UAH minimum, 1 500 UAH the first year; 1 pp of 100 000 kWh × 4.20 is 50 400 a year.
    assert "Ліцензія «Баланс» і окупність зниження втрат" in page
    assert "1\u202f500,00" in page and "2\u202f400,00" in page and "3\u202f000,00" in page
    assert "50\u202f400,00" in page and "48\u202f900,00" in page and "0.4" in page
    assert "на 0.03 п.п." in page
    english = client.get("/sites/TP-7/billing?period=2026-10&lang=en").get_data(as_text=True)
    assert "Payback, months" in english
