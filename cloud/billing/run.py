"""The billing run of a site for a period: preview as a draft, then issue.

Re-running a draft replaces it; an issued run never changes (corrections are new ledger
entries in a later period). Invoice numbers are sequential per organisation without gaps,
assigned only at issue.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal

import orjson
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from cloud.audit import audit
from cloud.db import insert_rows
from cloud.models import (
    Account,
    BillingRun,
    Invoice,
    LedgerEntry,
    Meter,
    Organisation,
    Reading,
    Site,
    Tariff,
    utcnow,
)
from cloud.site_balance import meter_energy, period_bounds, site_balance
from shared.cost_sharing import COOPERATIVE_WORDING, SUPPLIER_WORDING, cost_recovery, share_price
from shared.money import format_uah, line_amount

KWH = Decimal("1")
DUE_DAYS = 20  # days from issue to the due date


class BillingError(Exception):
    """A run that cannot be made; the message names the record and why."""


@dataclass
class RunResult:
    site: str
    period: str
    status: str
    invoices: int
    summary: dict
    problems: list[str] = field(default_factory=list)

    def as_json(self) -> dict:
        return {"site": self.site, "period": self.period, "status": self.status, "invoices": self.invoices,
                **self.summary, "problems": self.problems}


def tariff_for(db: Session, org_id: int, period_start: datetime, period_end: datetime) -> Tariff:
    tariffs = db.scalars(
        select(Tariff).where(Tariff.org_id == org_id).order_by(Tariff.valid_from)
    ).all()
    first, last = period_start.date(), (period_end - timedelta(days=1)).date()
    covering = [t for t in tariffs if t.valid_from <= last and (t.valid_to is None or t.valid_to >= first)]
    if not covering:
        raise BillingError(f"no tariff of organisation {org_id} is valid in {first:%Y-%m}")
    if covering[0].valid_from > first:
        raise BillingError(f"tariff #{covering[0].id} starts on {covering[0].valid_from}, leaving {first}… unpriced")
    if len(covering) > 1:
        # A mid-period change is split by consumption date in shared/tariffs (billing issue); the
        # thin run refuses rather than bill one price for the whole month.
        raise BillingError(f"tariffs {[t.id for t in covering]} change within {first:%Y-%m}; split billing needed")
    return covering[0]


def counter_at(db: Session, meter_id: int, at: datetime) -> Decimal | None:
    """The import counter at ``at``: the reading there, or interpolated between its neighbours."""
    before = db.execute(select(Reading.ts, Reading.values).where(Reading.meter_id == meter_id, Reading.ts <= at)
                        .order_by(Reading.ts.desc()).limit(1)).first()
    if before is None:
        return None
    if before.ts == at:
        return Decimal(before.values["import_kwh"])
    after = db.execute(select(Reading.ts, Reading.values).where(Reading.meter_id == meter_id, Reading.ts > at)
                       .order_by(Reading.ts).limit(1)).first()
    if after is None:
        return None
    v0, v1 = Decimal(before.values["import_kwh"]), Decimal(after.values["import_kwh"])
    share = Decimal((at - before.ts).total_seconds()) / Decimal((after.ts - before.ts).total_seconds())
    return (v0 + (v1 - v0) * share).quantize(Decimal("0.001"), ROUND_HALF_UP)


@dataclass(frozen=True)
class Consumption:
    """One meter's period: kWh, the counter at the bounds, and where the figure came from."""

    kwh: Decimal
    start_reading: Decimal | None
    end_reading: Decimal | None
    source: str  # intervals | readings


INVOICE_COLUMNS = ("org_id", "run_id", "account_id", "period", "status", "due_date", "quantity_kwh",
                   "start_reading", "end_reading", "total", "opening_balance", "lines")


def _text(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


def bound_readings(db: Session, site: Site, start: datetime, end: datetime) -> dict[int, dict[datetime, Decimal]]:
    """The import counter of every meter of the site exactly at the period's bounds (one query)."""
    rows = db.execute(
        select(Reading.meter_id, Reading.ts, Reading.values["import_kwh"].as_string())
        .join(Meter, Meter.id == Reading.meter_id)
        .where(Meter.site_id == site.id, Reading.ts.in_([start, end]))
    )
    found: dict[int, dict[datetime, Decimal]] = {}
    for meter_id, ts, value in rows:
        if value is not None:
            found.setdefault(meter_id, {})[ts] = Decimal(value)
    return found


def consumption(db: Session, meter_id: int, code: str, energies, bounds, start: datetime,
                end: datetime) -> Consumption | None:
    """Σ interval energy when every interval is there, else end − start readings (entered, submitted or
    interpolated); None when the period cannot be known — then the account is not billed, never guessed."""
    at = bounds.get(meter_id, {})
    first = at.get(start)
    if first is None:
        first = counter_at(db, meter_id, start)
    energy = energies.get(code)
    if energy is not None and energy.complete:
        return Consumption(energy.import_kwh, first, None if first is None else first + energy.import_kwh,
                           "intervals")
    last = at.get(end)
    if last is None:
        last = counter_at(db, meter_id, end)
    if first is None or last is None:
        return None
    if last < first:
        raise BillingError(f"meter {code}: the reading at {end:%Y-%m-%d} ({last}) is lower than at "
                           f"{start:%Y-%m-%d} ({first}); check for a replaced meter or a typing error")
    return Consumption(last - first, first, last, "readings")


def billing_run(db: Session, site: Site, period: str, *, issue: bool = False, actor: str = "system") -> RunResult:
    """Make (or replace) the draft run of ``site`` for ``period``; with ``issue``, issue it.

    Set-based: a handful of queries for the whole site, whatever its size, and bulk inserts.
    """
    start, end = period_bounds(period)
    org = db.get(Organisation, site.org_id)
    run = db.scalar(select(BillingRun).where(BillingRun.site_id == site.id, BillingRun.period == period))
    if run is not None and run.status == "issued":
        raise BillingError(f"the run of site {site.code} for {period} is issued and cannot change; "
                           "corrections go into a later period")
    tariff = tariff_for(db, org.id, start, end)
    price = share_price(tariff.purchase_price, tariff.coefficient)
    wording = COOPERATIVE_WORDING if tariff.kind == "cooperative" else SUPPLIER_WORDING
    if run is None:
        run = BillingRun(org_id=org.id, site_id=site.id, period=period, status="draft")
        db.add(run)
        db.flush()
    else:
        db.execute(delete(Invoice).where(Invoice.run_id == run.id))
    energies = meter_energy(db, site, start, end)
    bounds = bound_readings(db, site, start, end)
    numbers = dict(db.execute(select(Account.id, Account.number).where(Account.org_id == org.id)).all())
    opening = dict(db.execute(select(LedgerEntry.account_id, func.sum(LedgerEntry.amount))
                              .where(LedgerEntry.org_id == org.id).group_by(LedgerEntry.account_id)).all())
    meters = db.execute(
        select(Meter.id, Meter.code, Meter.account_id).where(
            Meter.site_id == site.id, Meter.role == "subscriber", Meter.account_id.is_not(None))
        .order_by(Meter.code)
    ).all()
    problems: list[str] = []
    distributed_kwh = Decimal(0)
    distributed_uah = Decimal(0)
    rows = []
    due = (utcnow() + timedelta(days=DUE_DAYS)).date()
    for meter_id, code, account_id in meters:
        used = consumption(db, meter_id, code, energies, bounds, start, end)
        if used is None:
            problems.append(f"account {numbers[account_id]}: meter {code} has incomplete data for {period}; "
                            "not billed")
            continue
        quantity = used.kwh.quantize(KWH, ROUND_HALF_UP)
        amount = line_amount(quantity, price)
        lines = [{"kind": "energy", "meter": code, "source": used.source, "description": wording,
                  "quantity": f"{quantity:f}", "unit": "кВт·год", "price": f"{price:f}", "amount": format_uah(amount)}]
        rows.append((org.id, run.id, account_id, period, "draft", due.isoformat(), str(quantity),
                     _text(used.start_reading), _text(used.end_reading), str(amount),
                     str(Decimal(opening.get(account_id) or 0)), orjson.dumps(lines).decode()))
        distributed_kwh += quantity
        distributed_uah += amount
    insert_rows(db, "invoices", INVOICE_COLUMNS, rows)
    balance = site_balance(db, site, period)
    purchase_kwh = balance.input_kwh if balance.input_kwh is not None else Decimal(0)
    recovery = cost_recovery(purchase_kwh.quantize(KWH, ROUND_HALF_UP), tariff.purchase_price,
                             distributed_kwh, distributed_uah)
    run.summary = {**recovery.as_json(), "share_price": f"{price:f}", "purchase_kwh": f"{purchase_kwh:f}"}
    run.created_at = utcnow()
    if issue:
        if problems:
            more = f"; … and {len(problems) - 5} more" if len(problems) > 5 else ""
            raise BillingError(f"cannot issue {period} for site {site.code}: " + "; ".join(problems[:5]) + more)
        issue_run(db, run, org, actor)
    audit(db, org.id, actor, "billing_run.issue" if issue else "billing_run.draft", f"site:{site.code}:{period}",
          None, {"invoices": len(rows), **run.summary})
    db.flush()
    return RunResult(site.code, period, run.status, len(rows), dict(run.summary), problems)


def issue_run(db: Session, run: BillingRun, org: Organisation, actor: str) -> None:
    """Number the invoices (no gaps), freeze them and charge each account in its ledger."""
    # Lock the organisation's counter so two concurrent issues cannot take the same numbers.
    db.execute(select(Organisation.id).where(Organisation.id == org.id).with_for_update())
    invoices = db.execute(
        select(Invoice.id, Invoice.account_id, Invoice.total).join(Account, Account.id == Invoice.account_id)
        .where(Invoice.run_id == run.id).order_by(Account.number)
    ).all()
    now = utcnow()
    due = (now + timedelta(days=DUE_DAYS)).date()
    first = org.last_invoice_number + 1
    stamp = now.strftime("%Y-%m-%d %H:%M:%S.%f")
    updates, charges = [], []
    for offset, (invoice_id, account_id, total) in enumerate(invoices):
        number = f"{first + offset:06d}"
        updates.append((number, stamp, due.isoformat(), invoice_id))
        charges.append((org.id, account_id, "charge", str(total), run.period, invoice_id,
                        f"Рахунок №{number} за {run.period}", stamp))
    if updates:
        postgres = db.connection().dialect.name == "postgresql"
        mark = "%s" if postgres else "?"
        db.connection().exec_driver_sql(
            f"UPDATE invoices SET number = {mark}, status = 'issued', issued_at = {mark}, due_date = {mark} "
            f"WHERE id = {mark}", updates)
        insert_rows(db, "ledger_entries", ("org_id", "account_id", "kind", "amount", "period", "invoice_id", "memo",
                                           "created_at"), charges)
    org.last_invoice_number = first - 1 + len(invoices)
    run.status = "issued"
    run.issued_at = now


def account_balance(db: Session, account_id: int) -> Decimal:
    """The account's balance: the sum of its ledger (positive = debt, negative = prepaid)."""
    return Decimal(db.scalar(select(func.coalesce(func.sum(LedgerEntry.amount), 0))
                             .where(LedgerEntry.account_id == account_id)) or 0)


def today() -> date:
    return utcnow().date()
