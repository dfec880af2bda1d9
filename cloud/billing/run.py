"""The billing run of a site for a period: preview as a draft, then issue.

Re-running a draft replaces it; an issued run never changes (corrections are new ledger
entries in a later period). Invoice numbers are sequential per organisation without gaps,
assigned only at issue.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from cloud.audit import audit
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


def billing_run(db: Session, site: Site, period: str, *, issue: bool = False, actor: str = "system") -> RunResult:
    """Make (or replace) the draft run of ``site`` for ``period``; with ``issue``, issue it."""
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
    problems: list[str] = []
    distributed_kwh = Decimal(0)
    distributed_uah = Decimal(0)
    invoices = []
    meters = db.execute(
        select(Meter.id, Meter.code, Meter.account_id).where(
            Meter.site_id == site.id, Meter.role == "subscriber", Meter.account_id.is_not(None))
        .order_by(Meter.code)
    ).all()
    accounts = {a.id: a for a in db.scalars(select(Account).where(Account.org_id == org.id))}
    due = (utcnow() + timedelta(days=DUE_DAYS)).date()
    for meter_id, code, account_id in meters:
        energy = energies.get(code)
        account = accounts[account_id]
        if energy is None or not energy.complete:
            problems.append(f"account {account.number}: meter {code} has incomplete data for {period}; not billed")
            continue
        quantity = energy.import_kwh.quantize(KWH, ROUND_HALF_UP)
        amount = line_amount(quantity, price)
        start_reading = counter_at(db, meter_id, start)
        opening = db.scalar(select(func.coalesce(func.sum(LedgerEntry.amount), 0))
                            .where(LedgerEntry.account_id == account.id)) or Decimal(0)
        invoices.append(Invoice(
            org_id=org.id, run_id=run.id, account_id=account.id, period=period, status="draft",
            due_date=due, quantity_kwh=quantity, start_reading=start_reading,
            end_reading=None if start_reading is None else start_reading + energy.import_kwh,
            total=amount, opening_balance=Decimal(opening),
            lines=[{"kind": "energy", "meter": code, "description": wording, "quantity": f"{quantity:f}",
                    "unit": "кВт·год", "price": f"{price:f}", "amount": format_uah(amount)}],
        ))
        distributed_kwh += quantity
        distributed_uah += amount
    db.add_all(invoices)
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
          None, {"invoices": len(invoices), **run.summary})
    db.flush()
    return RunResult(site.code, period, run.status, len(invoices), dict(run.summary), problems)


def issue_run(db: Session, run: BillingRun, org: Organisation, actor: str) -> None:
    """Number the invoices (no gaps), freeze them and charge each account in its ledger."""
    # Lock the organisation's counter so two concurrent issues cannot take the same numbers.
    db.execute(select(Organisation.id).where(Organisation.id == org.id).with_for_update())
    invoices = db.scalars(
        select(Invoice).join(Account, Account.id == Invoice.account_id)
        .where(Invoice.run_id == run.id).order_by(Account.number)
    ).all()
    now = utcnow()
    number = org.last_invoice_number
    for invoice in invoices:
        number += 1
        invoice.number = f"{number:06d}"
        invoice.status = "issued"
        invoice.issued_at = now
        invoice.due_date = (now + timedelta(days=DUE_DAYS)).date()
        db.add(LedgerEntry(org_id=org.id, account_id=invoice.account_id, kind="charge", amount=invoice.total,
                           period=run.period, invoice_id=invoice.id,
                           memo=f"Рахунок №{invoice.number} за {run.period}"))
    org.last_invoice_number = number
    run.status = "issued"
    run.issued_at = now


def account_balance(db: Session, account_id: int) -> Decimal:
    """The account's balance: the sum of its ledger (positive = debt, negative = prepaid)."""
    return Decimal(db.scalar(select(func.coalesce(func.sum(LedgerEntry.amount), 0))
                             .where(LedgerEntry.account_id == account_id)) or 0)


def today() -> date:
    return utcnow().date()
