"""The billing run of a site for a period: preview as a draft, then issue.

Re-running a draft replaces it; an issued run never changes (corrections are new ledger
entries in a later period). Invoice numbers are sequential per organisation without gaps,
assigned only at issue.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import NamedTuple

import orjson
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from cloud.accounts.invite_codes import ensure_invite_codes
from cloud.audit import audit
from cloud.billing.collector import collector_paused
from cloud.billing.consumption import (
    Consumption,
    MeterRow,
    ReadingError,
    account_consumption,
    checked_bounds,
    estimate,
    segments,
    zone_consumption,
)
from cloud.billing.corrections import (
    correction_line,
    estimated_invoices,
    pending_corrections,
    trueup_line,
)
from cloud.billing.draft import Drafted, DraftInvoice
from cloud.billing.errors import BillingError
from cloud.billing.heat_run import heat_invoices
from cloud.billing.tariff_grid import Grid, Tariffs
from cloud.clock import kyiv_today
from cloud.db import driver_rows, insert_rows
from cloud.errors import Phrase
from cloud.models import (
    Account,
    BillingRun,
    Invoice,
    LedgerEntry,
    Meter,
    Organisation,
    Site,
    utcnow,
)
from cloud.sites.balance import input_kwh, meter_energy
from shared.calendar import kyiv_day, naive_period_bounds
from shared.cost_sharing import cost_recovery
from shared.tariffs import (
    Line,
    RatingError,
    benefit_line,
    energy_lines,
    net_billing,
    subsidy_line,
)

KWH = Decimal("1")
DUE_DAYS = 20  # days from issue to the due date


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


SEGMENT_NAMES = {"household": "побутових споживачів", "business": "непобутових споживачів"}


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


class AccountTerms(NamedTuple):
    """What rating needs of an account: its number, customer segment, benefit and subsidy."""

    number: str
    category: str
    benefit_pct: Decimal = Decimal(0)
    benefit_norm_kwh: Decimal = Decimal(0)
    subsidy_uah: Decimal = Decimal(0)


def account_terms(db: Session, org_id: int) -> dict[int, AccountTerms]:
    """Every account of the organisation by id. Core rows, not ORM ones, and the money columns read only for
    the accounts with a benefit or a subsidy: a hundred thousand accounts load in a fraction of the time."""
    core = db.connection()
    found = {id_: AccountTerms(number, category) for id_, number, category in core.execute(
        select(Account.id, Account.number, Account.category).where(Account.org_id == org_id)).all()}
    for row in core.execute(select(Account.id, Account.benefit_pct, Account.benefit_norm_kwh, Account.subsidy_uah)
                            .where(Account.org_id == org_id, (Account.benefit_pct != 0) | (Account.subsidy_uah != 0))):
        found[row.id] = found[row.id]._replace(benefit_pct=row.benefit_pct or Decimal(0),
                                               benefit_norm_kwh=row.benefit_norm_kwh or Decimal(0),
                                               subsidy_uah=row.subsidy_uah or Decimal(0))
    return found


def energy_wording(org: Organisation, account: AccountTerms, cooperative: bool) -> str | None:
    """A cooperative's share of costs (never a price); a supplier's price for the customer's segment."""
    if cooperative:
        return None
    if org.kind == "supplier":
        return f"електрична енергія за ціною для {SEGMENT_NAMES.get(account.category, account.category)}"
    return None


def rate(used: Consumption, org: Organisation, account: AccountTerms, grid: Grid, cooperative: bool,
         carried: Decimal | None) -> list[Line]:
    """The invoice's lines for one account: energy (net of solar export, by zone when the tariff has zones),
    the fixed monthly fees, benefit, subsidy, carry-forward."""
    kwh, carry, credit = used.kwh, Decimal(0), Decimal(0)
    if used.export_kwh > 0 or carried:
        kwh, carry, credit = net_billing(used.kwh, used.export_kwh, carried or Decimal(0), org.net_billing,
                                         org.export_price)
    by_zone = used.by_zone if used.by_zone is not None and not used.export_kwh and not carried else {"all": kwh}
    lines = energy_lines(by_zone, grid.tariffs, grid.first_day, grid.last_day, cooperative,
                         energy_wording(org, account, cooperative), checked=True)
    if used.source == "estimate":
        lines = [Line(line.kind, f"{line.description} — оцінка: середнє споживання за {used.estimate_months} міс.",
                      line.quantity, line.unit, line.price, line.amount) for line in lines]
    lines += grid.fees
    if credit:
        lines.append(Line("export_credit", f"відпущено в мережу з СЕС, {used.export_kwh:f} кВт·год",
                          used.export_kwh, "кВт·год", org.export_price, -credit))
    if carry:
        lines.append(Line("carry", "надлишок генерації СЕС, перенесено на наступний період", carry, "кВт·год",
                          Decimal(0), Decimal("0.00")))
    if account.benefit_pct and account.benefit_norm_kwh:
        benefit = benefit_line(sum((line.quantity for line in lines if line.kind == "energy"), Decimal(0)),
                               Decimal(account.benefit_norm_kwh), Decimal(account.benefit_pct),
                               grid.tariffs[-1].unit_price)
        if benefit is not None:
            lines.append(benefit)
    if account.subsidy_uah:
        subsidy = subsidy_line(Decimal(account.subsidy_uah))
        if subsidy is not None:
            lines.append(subsidy)
    return lines


INVOICE_COLUMNS = ("org_id", "run_id", "account_id", "period", "status", "number", "issued_at", "due_date",
                   "quantity_kwh", "start_reading", "end_reading", "total", "opening_balance", "lines", "estimated",
                   "meters")


def _text(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


def electricity_invoices(db: Session, site: Site, org: Organisation, period: str, start: datetime,
                         end: datetime, bounds: dict[int, dict[datetime, Decimal]]) -> Drafted:
    """A cooperative's or a supplier's invoices: consumption per account (meter segments, estimates), rated by
    the account's segment grid and zones, with the fixed fees, benefits and subsidies. ``bounds``: each
    meter's counter at the period's bounds (``checked_bounds``)."""
    tariffs = Tariffs(db, org.id, start, end)
    kinds = {t.kind for t in tariffs.rows}
    cooperative = kinds == {"cooperative"} or org.kind in ("cooperative", "osbb", "cottage_town")
    energies = meter_energy(db, site, start, end)
    accounts = account_terms(db, org.id)
    core = db.connection()
    carried = carried_export(db, org.id, period)
    meters: dict[int, list[MeterRow]] = {}
    for row in core.execute(
        select(Meter.id, Meter.code, Meter.account_id, Meter.installed_at, Meter.removed_at).where(
            Meter.site_id == site.id, Meter.role == "subscriber", Meter.account_id.is_not(None))
        .order_by(Meter.code)
    ).all():
        meters.setdefault(row.account_id, []).append(MeterRow(*row))
    drafted = Drafted()
    distributed_kwh = distributed_uah = Decimal(0)
    for account_id, account_meters in meters.items():
        account = accounts[account_id]
        account_segments = segments(account_meters, start, end)
        if not account_segments:
            continue  # every meter of the account was removed before the period: nothing to bill or estimate
        codes = ", ".join(m.code for m in account_meters) if len(account_meters) > 1 else account_meters[0].code
        grid = tariffs.grid(account.category)
        try:
            used = account_consumption(db, account_segments, energies, bounds)
            if used is None:
                used = estimate(db, account_id, period, account_segments)
            elif grid.tariffs[0].zones and len(account_segments) == 1 and account_segments[0].whole:
                by_zone = zone_consumption(db, account_segments[0].meter.id, start, end, grid.tariffs[0].zones)
                if by_zone is None:
                    drafted.problems.append(Phrase(
                        f"account {account.number}: meter {codes} has a time-of-use tariff but not every 15-minute "
                        f"interval of {period}; not billed", "problem_zones_incomplete", account=account.number,
                        meter=codes, period=period))
                    continue
                used = used._replace(by_zone=by_zone)
        except ReadingError as exc:
            raise BillingError(f"account {account.number}, {exc}", "err_at_account", account=account.number,
                               detail=exc) from exc
        if used is None:
            drafted.problems.append(Phrase(
                f"account {account.number}: meter {codes} has incomplete data for {period} and no billed month to "
                "estimate from; not billed", "problem_nothing_to_estimate", account=account.number, meter=codes,
                period=period))
            continue
        try:
            lines = rate(used, org, account, grid, cooperative, carried.get(account_id))
        except RatingError as exc:
            raise BillingError(f"account {account.number}, meter {codes}: {exc}", "err_at_account_meter",
                               account=account.number, meter=codes, detail=exc) from exc
        quantity = amount = Decimal(0)
        for line in lines:
            if line.kind == "energy":
                quantity += line.quantity
                amount += line.amount
        # With two meters (a replacement) one pair of readings means nothing: each segment is printed instead.
        single = len(used.meters) < 2
        estimated = used.source == "estimate"
        invoice = DraftInvoice(account_id, quantity, used.start_reading if single else None,
                               used.end_reading if single else None, estimated, list(used.meters) or None)
        invoice.add(lines, meter=codes, source=used.source, **({"estimate": True} if estimated else {}))
        drafted.invoices.append(invoice)
        distributed_kwh += quantity
        distributed_uah += amount
    if meters:
        trueups(db, org, site, period, drafted, tariffs, cooperative, accounts)
    purchase_kwh = input_kwh(db, site, energies)
    if purchase_kwh is None:
        purchase_kwh = Decimal(0)
    if not cooperative:
        # A supplier sells by its grids; cost recovery and the break-even coefficient are a cooperative's figures.
        drafted.summary = {"distributed_kwh": f"{distributed_kwh:f}", "distributed_uah": f"{distributed_uah:.2f}",
                           "purchase_kwh": f"{purchase_kwh:f}"}
        return drafted
    general = tariffs.for_period(False)
    recovery = cost_recovery(purchase_kwh.quantize(KWH, ROUND_HALF_UP), general[-1].price,
                             distributed_kwh, distributed_uah)
    drafted.summary = {**recovery.as_json(), "purchase_kwh": f"{purchase_kwh:f}",
                       "share_price": f"{general[-1].unit_price:f}"}
    return drafted


def trueups(db: Session, org: Organisation, site: Site, period: str, drafted: Drafted, tariffs: Tariffs,
            cooperative: bool, accounts: dict[int, AccountTerms]) -> None:
    """True up every estimated invoice whose month real readings now cover: a line on this period's invoice
    (measured, not estimated) that refers to it."""
    measured = {invoice.account_id: invoice for invoice in drafted.invoices if not invoice.estimated}
    if not measured:
        return
    pending = estimated_invoices(db, org.id, set(measured), period)
    for account_id, invoices in pending.items():
        account = accounts[account_id]
        meters = [MeterRow(*row) for row in db.execute(
            select(Meter.id, Meter.code, Meter.account_id, Meter.installed_at, Meter.removed_at).where(
                Meter.site_id == site.id, Meter.account_id == account_id, Meter.role == "subscriber"))]
        for invoice in invoices:
            e_start, e_end = naive_period_bounds(invoice.period)
            try:
                actual = account_consumption(db, segments(meters, e_start, e_end), {}, {})
            except ReadingError as exc:
                raise BillingError(f"account {account.number}, {exc}", "err_at_account", account=account.number,
                                   detail=exc) from exc
            if actual is None:
                continue  # readings still do not reach that month: it stays an estimate for now
            first, last = kyiv_day(e_start), kyiv_day(e_end) - timedelta(days=1)
            grid = tariffs.grid(account.category, first, last)
            rerated = rate(actual._replace(export_kwh=Decimal(0)), org, account, grid, cooperative, None)
            line, refers = trueup_line(invoice, actual.kwh.quantize(KWH, ROUND_HALF_UP), rerated)
            measured[account_id].add([line], **refers)


def billing_run(db: Session, site: Site, period: str, *, issue: bool = False, actor: str = "system",
                progress=None) -> RunResult:
    """Make (or replace) the draft run of ``site`` for ``period``; with ``issue``, issue it.

    Set-based: a handful of queries for the whole site, whatever its size, and bulk inserts. Everything is
    checked before anything is written: a bad reading or tariff raises BillingError and nothing is billed.
    ``progress(done, total, step)``, when given, hears of each step before it starts (a background job's bar);
    the last call comes before the first write.
    """
    with collector_paused():
        return _billing_run(db, site, period, issue, actor, progress or _no_progress)


def _no_progress(done: int, total: int, step: str) -> None:
    pass


def _billing_run(db: Session, site: Site, period: str, issue: bool, actor: str, progress) -> RunResult:
    try:
        start, end = naive_period_bounds(period)
    except ValueError as exc:
        raise BillingError(str(exc), "err_period_format", period=period) from exc
    org = db.get(Organisation, site.org_id)
    run = db.scalar(select(BillingRun).where(BillingRun.site_id == site.id, BillingRun.period == period))
    if run is not None and run.status == "issued":
        raise BillingError(f"the run of site {site.code} for {period} is issued and cannot change; "
                           "corrections go into a later period", "err_run_issued", site=site.code, period=period)
    progress(0, 3, "step_readings")
    try:
        bounds = checked_bounds(db, site, start, end)
    except ReadingError as exc:
        raise BillingError(f"site {site.code}, {period}: {exc}", "err_at_site_period", site=site.code,
                           period=period, detail=exc) from exc
    progress(1, 3, "step_drafting")
    if org.kind == "heat":
        drafted = heat_invoices(db, site, org, period, start, end)
    else:
        drafted = electricity_invoices(db, site, org, period, start, end, bounds)
    add_corrections(db, org, drafted)
    if issue and drafted.problems:
        problems = drafted.problems
        shown = problems[:5] + ([Phrase(f"… and {len(problems) - 5} more", "problem_and_more",
                                        count=len(problems) - 5)] if len(problems) > 5 else [])
        raise BillingError(f"cannot issue {period} for site {site.code}: " + "; ".join(shown), "err_cannot_issue",
                           period=period, site=site.code, problems=shown)
    progress(2, 3, "step_storing")
    if run is None:
        run = BillingRun(org_id=org.id, site_id=site.id, period=period, status="draft")
        db.add(run)
        db.flush()
    else:
        db.execute(delete(Invoice).where(Invoice.run_id == run.id))
    now = utcnow()
    # The note under the total as it reads now: the run's invoices print this copy, whatever it says later.
    run.summary = {**drafted.summary, "estimated": sum(1 for i in drafted.invoices if i.estimated),
                   "invoice_note": org.invoice_note or ""}
    run.created_at = now
    if issue:
        issue_invoices(db, run, org, drafted.invoices, now)
        ensure_invite_codes(db, (invoice.account_id for invoice in drafted.invoices))  # printed on each invoice
    else:
        store_invoices(db, run, org, drafted.invoices, now)
    audit(db, org.id, actor, "billing_run.issue" if issue else "billing_run.draft", f"site:{site.code}:{period}",
          None, {"invoices": len(drafted.invoices), **run.summary})
    db.flush()
    return RunResult(site.code, period, run.status, len(drafted.invoices), dict(run.summary), drafted.problems)


def add_corrections(db: Session, org: Organisation, drafted: Drafted) -> None:
    """The accountant's pending corrections go onto each account's invoice of this run, as their own lines."""
    by_account = {invoice.account_id: invoice for invoice in drafted.invoices}
    for account_id, corrections in pending_corrections(db, org.id, set(by_account)).items():
        for correction, refers in corrections:
            line, extra = correction_line(correction, refers)
            by_account[account_id].add([line], **extra)


def store_invoices(db: Session, run: BillingRun, org: Organisation, invoices: list[DraftInvoice], now: datetime,
                   numbers: list[str] | None = None) -> None:
    """INSERT the run's invoices: drafts, or — with ``numbers`` — issued under those numbers."""
    opening = {account_id: str(Decimal(balance or 0)) for account_id, balance in db.connection().execute(
        select(LedgerEntry.account_id, func.sum(LedgerEntry.amount)).where(LedgerEntry.org_id == org.id)
        .group_by(LedgerEntry.account_id)).all()}
    due = (kyiv_day(now) + timedelta(days=DUE_DAYS)).isoformat()
    status, issued_at = ("draft", None) if numbers is None else ("issued", now.strftime("%Y-%m-%d %H:%M:%S.%f"))
    org_id, run_id, period = org.id, run.id, run.period  # plain values: read once, not per invoice
    rows = []
    for index, invoice in enumerate(invoices):
        rows.append((org_id, run_id, invoice.account_id, period, status, None if numbers is None else numbers[index],
                     issued_at, due, str(invoice.quantity), _text(invoice.start), _text(invoice.end),
                     f"{invoice.total:.2f}", opening.get(invoice.account_id, "0"),
                     orjson.dumps(invoice.lines).decode(), invoice.estimated,
                     orjson.dumps(invoice.meters).decode() if invoice.meters else None))
    insert_rows(db, "invoices", INVOICE_COLUMNS, rows)


def issue_invoices(db: Session, run: BillingRun, org: Organisation, invoices: list[DraftInvoice],
                   now: datetime) -> None:
    """Store the run's invoices issued: numbered in the order of their account numbers (no gaps), frozen, and
    each account charged in its ledger."""
    # Lock the organisation's counter, and read it under the lock: two concurrent issues never take the same
    # numbers, and the second continues after the first.
    last = db.execute(select(Organisation.last_invoice_number).where(Organisation.id == org.id)
                      .with_for_update()).scalar_one()
    # Numbered in the order of account numbers as the database sorts them (its collation), as every list shows.
    rank = {account_id: index for index, (account_id,) in enumerate(driver_rows(
        db, "SELECT id FROM accounts WHERE org_id = ? ORDER BY number", (org.id,)))}
    invoices = sorted(invoices, key=lambda invoice: rank[invoice.account_id])
    first = last + 1
    numbers = [f"{first + offset:06d}" for offset in range(len(invoices))]
    store_invoices(db, run, org, invoices, now, numbers)
    ids = dict(driver_rows(db, "SELECT account_id, id FROM invoices WHERE run_id = ?", (run.id,)))
    stamp = now.strftime("%Y-%m-%d %H:%M:%S.%f")
    org_id, period = org.id, run.period
    charges, applied = [], []
    for invoice, number in zip(invoices, numbers, strict=True):
        invoice_id = ids[invoice.account_id]
        for (kind, refers_to), amount in invoice.ledger.items():
            memo = f"Рахунок №{number} за {period}" + (" (перерахунок)" if refers_to else "")
            charges.append((org_id, invoice.account_id, kind, f"{amount:.2f}", period, invoice_id, refers_to,
                            memo, stamp))
        applied += [(invoice_id, correction_id) for correction_id in invoice.corrections]
    insert_rows(db, "ledger_entries", ("org_id", "account_id", "kind", "amount", "period", "invoice_id",
                                       "corrects_invoice_id", "memo", "created_at"), charges)
    if applied:
        mark = "%s" if db.connection().dialect.name == "postgresql" else "?"
        db.connection().exec_driver_sql(f"UPDATE corrections SET applied_invoice_id = {mark} WHERE id = {mark}",
                                        applied)
    org.last_invoice_number = first - 1 + len(invoices)
    run.status = "issued"
    run.issued_at = now


def today() -> date:
    return kyiv_today()
