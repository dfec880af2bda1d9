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
from shared.cost_sharing import cost_recovery
from shared.tariffs import (
    Line,
    RatingError,
    TariffPeriod,
    benefit_line,
    check_validity,
    energy_lines,
    net_billing,
    subsidy_line,
)

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


def tariffs_for(db: Session, org_id: int, period_start: datetime, period_end: datetime) -> list[TariffPeriod]:
    """The organisation's tariffs covering the period (a change inside it is split by days)."""
    tariffs = [TariffPeriod(f"#{t.id} від {t.valid_from:%d.%m.%Y}", t.valid_from, t.valid_to, t.purchase_price,
                            t.coefficient)
               for t in db.scalars(select(Tariff).where(Tariff.org_id == org_id).order_by(Tariff.valid_from))]
    try:
        return check_validity(tariffs, period_start.date(), (period_end - timedelta(days=1)).date())
    except RatingError as exc:
        raise BillingError(f"organisation {org_id}: {exc}") from exc


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
    """One meter's period: kWh in (and out, for a solar house), the counter at the bounds, the source."""

    kwh: Decimal
    start_reading: Decimal | None
    end_reading: Decimal | None
    source: str  # intervals | readings
    export_kwh: Decimal = Decimal(0)


LEDGER_KIND = {"energy": "charge", "fee": "charge", "benefit": "benefit", "subsidy": "subsidy",
               "export_credit": "adjustment"}


def carried_export(db: Session, org_id: int, period: str) -> dict[int, Decimal]:
    """kWh of solar surplus carried from the previous period (netting within the calendar year)."""
    year, month = (int(x) for x in period.split("-"))
    if month == 1:
        return {}
    previous = f"{year}-{month - 1:02d}"
    found: dict[int, Decimal] = {}
    for account_id, lines in db.execute(select(Invoice.account_id, Invoice.lines).where(
            Invoice.org_id == org_id, Invoice.period == previous, Invoice.status == "issued")):
        for line in lines:
            if line.get("kind") == "carry":
                found[account_id] = Decimal(line["quantity"])
    return found


def rate(used: Consumption, org: Organisation, account: Account, tariffs: list[TariffPeriod], first_day: date,
         last_day: date, cooperative: bool, carried: Decimal | None) -> list[Line]:
    """The invoice's lines for one account: energy (net of solar export), benefit, subsidy, carry-forward."""
    kwh, carry, credit = used.kwh, Decimal(0), Decimal(0)
    if used.export_kwh > 0 or carried:
        kwh, carry, credit = net_billing(used.kwh, used.export_kwh, carried or Decimal(0), org.net_billing,
                                         org.export_price)
    lines = energy_lines({"all": kwh}, tariffs, first_day, last_day, cooperative)
    if credit:
        lines.append(Line("export_credit", f"відпущено в мережу з СЕС, {used.export_kwh:f} кВт·год",
                          used.export_kwh, "кВт·год", org.export_price, -credit))
    if carry:
        lines.append(Line("carry", "надлишок генерації СЕС, перенесено на наступний період", carry, "кВт·год",
                          Decimal(0), Decimal("0.00")))
    benefit = benefit_line(sum((line.quantity for line in lines if line.kind == "energy"), Decimal(0)),
                           Decimal(account.benefit_norm_kwh or 0), Decimal(account.benefit_pct or 0),
                           tariffs[-1].unit_price)
    if benefit is not None:
        lines.append(benefit)
    subsidy = subsidy_line(Decimal(account.subsidy_uah or 0))
    if subsidy is not None:
        lines.append(subsidy)
    return lines


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
                           "intervals", energy.export_kwh.quantize(KWH, ROUND_HALF_UP))
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
    tariffs = tariffs_for(db, org.id, start, end)
    kinds = set(db.scalars(select(Tariff.kind).where(Tariff.org_id == org.id)))
    cooperative = kinds == {"cooperative"} or org.kind in ("cooperative", "osbb", "cottage_town")
    first_day, last_day = start.date(), (end - timedelta(days=1)).date()
    if run is None:
        run = BillingRun(org_id=org.id, site_id=site.id, period=period, status="draft")
        db.add(run)
        db.flush()
    else:
        db.execute(delete(Invoice).where(Invoice.run_id == run.id))
    energies = meter_energy(db, site, start, end)
    bounds = bound_readings(db, site, start, end)
    accounts = {a.id: a for a in db.scalars(select(Account).where(Account.org_id == org.id))}
    numbers = {account_id: account.number for account_id, account in accounts.items()}
    carried = carried_export(db, org.id, period)
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
        account = accounts[account_id]
        try:
            lines = rate(used, org, account, tariffs, first_day, last_day, cooperative, carried.get(account_id))
        except RatingError as exc:
            raise BillingError(f"account {account.number}, meter {code}: {exc}") from exc
        energy = [line for line in lines if line.kind == "energy"]
        quantity = sum((line.quantity for line in energy), Decimal(0))
        amount = sum((line.amount for line in lines if line.kind != "carry"), Decimal(0))
        payload = [{**line.as_json(), "meter": code, "source": used.source} for line in lines]
        rows.append((org.id, run.id, account_id, period, "draft", due.isoformat(), str(quantity),
                     _text(used.start_reading), _text(used.end_reading), str(amount),
                     str(Decimal(opening.get(account_id) or 0)), orjson.dumps(payload).decode()))
        distributed_kwh += quantity
        distributed_uah += sum((line.amount for line in energy), Decimal(0))
    insert_rows(db, "invoices", INVOICE_COLUMNS, rows)
    balance = site_balance(db, site, period)
    purchase_kwh = balance.input_kwh if balance.input_kwh is not None else Decimal(0)
    recovery = cost_recovery(purchase_kwh.quantize(KWH, ROUND_HALF_UP), tariffs[-1].price,
                             distributed_kwh, distributed_uah)
    run.summary = {**recovery.as_json(), "share_price": f"{tariffs[-1].unit_price:f}",
                   "purchase_kwh": f"{purchase_kwh:f}"}
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
        select(Invoice.id, Invoice.account_id, Invoice.lines).join(Account, Account.id == Invoice.account_id)
        .where(Invoice.run_id == run.id).order_by(Account.number)
    ).all()
    now = utcnow()
    due = (now + timedelta(days=DUE_DAYS)).date()
    first = org.last_invoice_number + 1
    stamp = now.strftime("%Y-%m-%d %H:%M:%S.%f")
    updates, charges = [], []
    for offset, (invoice_id, account_id, lines) in enumerate(invoices):
        number = f"{first + offset:06d}"
        updates.append((number, stamp, due.isoformat(), invoice_id))
        # One ledger entry per kind of line: the charge, and benefits, subsidies, export credits apart,
        # so the оборотно-сальдова відомість shows each in its column.
        by_kind: dict[str, Decimal] = {}
        for line in lines:
            kind = LEDGER_KIND.get(line["kind"])
            if kind:
                by_kind[kind] = by_kind.get(kind, Decimal(0)) + Decimal(line["amount"])
        for kind, amount in by_kind.items():
            charges.append((org.id, account_id, kind, str(amount), run.period, invoice_id,
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
