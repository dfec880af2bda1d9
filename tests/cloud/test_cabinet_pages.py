"""The resident's cabinet: consumption by month and by day from their own meter, their contact settings
(audited, checked field by field) — and never a neighbour's data."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import select

from cloud.accounts.organisations import create_user, set_tariff
from cloud.cabinet.consumption import daily, monthly, solar_lines
from cloud.clock import utcnow
from cloud.dashboards.daily import rebuild_daily
from cloud.models import Account, AuditLog, BillingRun, Invoice, Organisation, Site
from shared.calendar import kyiv_time
from shared.tariffs import zone_of
from tests.cloud.office import account_with_meter, intervals, office

PASSWORD = "correct horse battery"


def two_houses(db):
    with db() as session:
        org, site = office(session)
        mine, meter = account_with_meter(session, org, site, "7")
        theirs, _ = account_with_meter(session, org, site, "8")
        theirs.phone, theirs.email = "+380509998877", "neighbour@example.com"
        intervals(session, org, site, meter, datetime(2026, 10, 1), datetime(2026, 11, 1), lambda ts: 250)
        rebuild_daily(session, site)  # what ingestion keeps as the intervals arrive
        create_user(session, "ivan@example.com", PASSWORD, "resident", org, account=mine)
        session.commit()
        months = monthly(session, mine, "2026-10")
        assert [b.label for b in months][-2:] == ["2026-09", "2026-10"]
        assert months[-1].kwh == Decimal("745.000") and months[-2].kwh == 0  # 2 980 quarter-hours × 250 Wh


def sign_in(client):
    assert client.post("/login", data={"email": "ivan@example.com", "password": PASSWORD}).status_code == 302


def test_the_resident_sees_their_months_and_days_and_nothing_of_the_neighbour(client, db):
    two_houses(db)
    sign_in(client)
    page = client.get("/cabinet/?period=2026-10").get_data(as_text=True)
    assert "Споживання по місяцях" in page and "Споживання по днях" in page
    assert 'class="cab-chart"' in page and "2026-10" in page
    assert "neighbour@example.com" not in page and "+380509998877" not in page and "№ 8" not in page
    assert client.get("/cabinet/?period=2026-13").status_code == 422
    settings = client.get("/cabinet/settings").get_data(as_text=True)
    assert "neighbour" not in settings and "+380509998877" not in settings


def test_contact_settings_are_saved_audited_and_bad_ones_refused(client, db):
    two_houses(db)
    sign_in(client)
    bad = client.post("/cabinet/settings", data={"email": "ivan", "phone": "067-12", "telegram_chat_id": "abc"})
    text = bad.get_data(as_text=True)
    assert bad.status_code == 422 and "«Електронна пошта»" in text and "«Телефон»" in text and "«Telegram»" in text
    with db() as session:
        assert session.scalar(select(AuditLog).where(AuditLog.action == "account.contact")) is None
    done = client.post("/cabinet/settings", data={"email": "Ivan@Example.com", "phone": "067 123 45 67",
                                                  "telegram_chat_id": "123456", "reminders_opt_out": "1"})
    assert done.status_code == 302
    with db() as session:
        mine = session.scalar(select(Account).where(Account.number == "7"))
        theirs = session.scalar(select(Account).where(Account.number == "8"))
        assert (mine.email, mine.phone, mine.telegram_chat_id, mine.reminders_opt_out) == \
            ("ivan@example.com", "+380671234567", "123456", True)
        assert theirs.phone == "+380509998877" and not theirs.reminders_opt_out
        entry = session.scalar(select(AuditLog).where(AuditLog.action == "account.contact"))
        assert entry.entity == "account:7" and entry.after["phone"] == "+380671234567"


def test_a_two_zone_tariff_splits_each_day_into_night_and_day(client, db):
    """Night is 23–7 Kyiv time: 100 Wh a quarter-hour at night, 300 by day. On 25 October the clocks go back
    and the night has nine hours."""
    with db() as session:
        org, site = office(session, price="")
        set_tariff(session, org, "cooperative", Decimal("4.20"), Decimal("1.15"), date(2026, 1, 1),
                   zones={"day": Decimal("1"), "night": Decimal("0.5")})
        mine, meter = account_with_meter(session, org, site, "7")
        intervals(session, org, site, meter, datetime(2026, 10, 1), datetime(2026, 11, 1),
                  lambda ts: 100 if zone_of(kyiv_time(ts).hour, ("day", "night")) == "night" else 300)
        create_user(session, "ivan@example.com", PASSWORD, "resident", org, account=mine)
        session.commit()
        days = daily(session, mine, "2026-10")
    assert len(days) == 31
    assert dict(days[0].zones) == {"day": Decimal("19.2"), "night": Decimal("3.2")}  # 16 h × 1.2, 8 h × 0.4
    assert dict(days[24].zones) == {"day": Decimal("19.2"), "night": Decimal("3.6")}  # the 25-hour day
    assert all(day.kwh == sum(dict(day.zones).values()) for day in days)
    sign_in(client)
    page = client.get("/cabinet/?period=2026-10").get_data(as_text=True)
    assert 'class="cab-bar zone-night' in page and 'class="cab-bar zone-day' in page
    assert "ніч" in page and "день" in page
    english = client.get("/cabinet/?period=2026-10&lang=en").get_data(as_text=True)
    assert "night" in english.lower() and "zone-day" in english


def test_the_solar_houses_netting_and_export_paid_are_listed_from_its_invoices(client, db):
    """A house with a solar plant (СЕС): September's surplus carried to be netted, October's export paid at the
    export price. The neighbour's invoice lines never show."""
    two_houses(db)
    with db() as session:
        org = session.scalar(select(Organisation))
        site = session.scalar(select(Site))
        mine = session.scalar(select(Account).where(Account.number == "7"))
        theirs = session.scalar(select(Account).where(Account.number == "8"))
        for period, account, line in (
                ("2026-09", mine, {"kind": "carry", "description": "надлишок генерації СЕС", "quantity": "42.000",
                                   "unit": "кВт·год", "price": "0", "amount": "0.00"}),
                ("2026-10", mine, {"kind": "export_credit", "description": "відпущено в мережу з СЕС",
                                   "quantity": "120.000", "unit": "кВт·год", "price": "-2.50", "amount": "-300.00"}),
                ("2026-10", theirs, {"kind": "export_credit", "description": "відпущено в мережу з СЕС",
                                     "quantity": "777.000", "unit": "кВт·год", "price": "-2.50",
                                     "amount": "-1942.50"})):
            run = session.scalar(select(BillingRun).where(BillingRun.period == period))
            if run is None:
                run = BillingRun(org_id=org.id, site_id=site.id, period=period, status="issued", issued_at=utcnow())
                session.add(run)
                session.flush()
            energy = {"kind": "energy", "description": "електроенергія", "quantity": "200.000", "unit": "кВт·год",
                      "price": "4.32", "amount": "864.00"}
            session.add(Invoice(org_id=org.id, run_id=run.id, account_id=account.id, period=period,
                                number=f"{period}-{account.number}", status="issued", issued_at=utcnow(),
                                quantity_kwh=Decimal("200"), total=Decimal("564.00"), lines=[energy, line]))
        session.commit()
        assert [(s.period, s.kind, s.quantity) for s in solar_lines(session, mine)] == [
            ("2026-10", "export_credit", "120.000"), ("2026-09", "carry", "42.000")]
    sign_in(client)
    page = client.get("/cabinet/?period=2026-10").get_data(as_text=True)
    solar = page[page.index("СЕС: відпуск у мережу"):]
    assert "оплачено за ціною відпуску" in solar and "120.000" in solar and "-300.00" in solar
    assert "надлишок перенесено на наступний місяць (неттінг)" in solar and "42.000" in solar
    assert "777.000" not in page and "1942.50" not in page
