"""An office without a gateway: an organisation, its site, accounts, meters and readings entered by hand —
the way a billing test sets up exactly the month it needs. Times are given as the office has them, Kyiv
wall-clock (``datetime(2026, 11, 1)`` is 1 November 00:00 in Kyiv), and stored in UTC as the cloud does."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from decimal import Decimal

from sqlalchemy import select

from cloud.accounts.organisations import create_organisation, create_site, set_tariff, upsert_account
from cloud.billing.run import billing_run
from cloud.models import Account, Batch, Gateway, IntervalEnergy, Invoice, Meter, Organisation, Reading, Site
from shared.calendar import from_kyiv_wall

IBAN = "UA853005280000026007012345678"


def office(session, kind: str = "cooperative", name: str = "ОК «Сосновий Бір»", code: str = "TP-7",
           price: str = "4.20", coefficient: str = "1.15") -> tuple[Organisation, Site]:
    org = create_organisation(session, name, kind, "43210987", IBAN)
    site = create_site(session, org, code)
    if price:
        set_tariff(session, org, "heat" if kind == "heat" else kind, Decimal(price), Decimal(coefficient),
                   date(2026, 1, 1))
    return org, site


def account_with_meter(session, org, site, number: str, meter: str | None = None, category: str = "household",
                       installed_at: datetime | None = None) -> tuple[Account, Meter]:
    account = upsert_account(session, org, number, f"Абонент {number}", f"вул. Соснова, {number}", site)
    account.category = category
    found = Meter(org_id=org.id, site_id=site.id, code=meter or f"M{number}", role="subscriber",
                  account_id=account.id, installed_at=from_kyiv_wall(installed_at) if installed_at else None)
    session.add(found)
    session.flush()
    return account, found


def read(session, meter: Meter, when: datetime, value: str, source: str = "office",
         register: str = "import_kwh") -> None:
    session.add(Reading(meter_id=meter.id, ts=from_kyiv_wall(when), values={register: value}, source=source))
    session.flush()


def month(period: str) -> datetime:
    """The period's first instant as Kyiv wall-clock time (what ``read`` and ``intervals`` take)."""
    year, number = (int(x) for x in period.split("-"))
    return datetime(year, number, 1)


def quarter_hours(start: datetime, end: datetime) -> int:
    """How many 15-minute intervals lie between two Kyiv wall-clock times (a day the clocks change has 92 or
    100)."""
    return int((from_kyiv_wall(end) - from_kyiv_wall(start)).total_seconds() // 900)


def bill(db, site_code: str, period: str, issue: bool = False):
    with db() as session:
        site = session.scalar(select(Site).where(Site.code == site_code))
        return billing_run(session, site, period, issue=issue)


def invoice_of(session, number: str, period: str) -> Invoice:
    return session.scalar(select(Invoice).join(Account, Account.id == Invoice.account_id)
                          .where(Account.number == number, Invoice.period == period))


def intervals(session, org, site, meter: Meter, start: datetime, end: datetime, wh_at) -> None:
    """The gateway's 15-minute interval energy for ``meter`` over [start, end) (Kyiv wall-clock times):
    ``wh_at(ts)`` Wh each, ``ts`` the interval's start in UTC."""
    gateway = session.scalar(select(Gateway).where(Gateway.site_id == site.id))
    if gateway is None:
        gateway = Gateway(org_id=org.id, site_id=site.id, code=f"gw-{site.code}", public_key="-")
        session.add(gateway)
        session.flush()
    batch = Batch(org_id=org.id, gateway_id=gateway.id, seq=meter.id, hash="", prev="", body=b"", signature=b"")
    session.add(batch)
    session.flush()
    rows, ts, end = [], from_kyiv_wall(start), from_kyiv_wall(end)
    while ts < end:
        rows.append(IntervalEnergy(meter_id=meter.id, start=ts, imp_wh=wh_at(ts), exp_wh=0, flag="measured",
                                   batch_id=batch.id))
        ts += timedelta(minutes=15)
    session.add_all(rows)
    session.flush()
