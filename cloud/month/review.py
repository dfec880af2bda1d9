"""The month's work of a site (for the абонвідділ and the accountant): whose readings are missing and who will
be billed by estimate — decided by the billing run's own functions, so the page and the run never disagree —
and this month's invoices against last month's, the biggest changes first."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.orm import Session

from cloud.audit import audit
from cloud.billing.consumption import (
    MeterRow,
    ReadingError,
    account_consumption,
    checked_bounds,
    estimate,
    segment_consumption,
    segments,
)
from cloud.billing.errors import BillingError
from cloud.billing.heat_run import heating_windows, metered_by, metered_gcal, previous_daily
from cloud.errors import ExplainedError
from cloud.i18n import N_
from cloud.jobs import queue
from cloud.models import Account, BillingRun, Invoice, Job, Meter, Organisation, Site
from cloud.sites.balance import meter_energy
from shared.calendar import kyiv_day, naive_period_bounds, parse_period

READING_STATES = (N_("reading_measured"), N_("reading_estimated"), N_("reading_missing"))
MONTH_KINDS = ("billing.draft", "billing.issue")


class MonthError(ExplainedError):
    """A month's job that cannot be queued (a bad period); the message names the field."""


def checked_period(period: str) -> str:
    try:
        parse_period(period)
    except ValueError as exc:
        raise MonthError(str(exc), "err_period_format", period=str(period)[:20]) from exc
    return period


def previous_period(period: str) -> str:
    year, month = parse_period(period)
    return f"{year - 1}-12" if month == 1 else f"{year}-{month - 1:02d}"


@dataclass
class AccountReading:
    number: str
    holder: str
    meters: str
    state: str  # reading_measured | reading_estimated | reading_missing
    kwh: Decimal | None = None
    estimate_months: int = 0
    unread: list[str] = field(default_factory=list)  # the meters with no reading at a bound of the period
    read_by: tuple[str, ...] = ()  # a heat meter's: who read the counters billed (gateway, office, resident)


@dataclass
class BuildingReading:
    """A heat site's building meter (будинковий лічильник, role ``heat_building``) over the period's heating days."""

    meter: str
    read: bool
    gcal: Decimal | None = None
    read_by: tuple[str, ...] = ()  # gateway, office, resident: who read the counters at the heating days' bounds


@dataclass
class ReadingsStatus:
    accounts: list[AccountReading]
    error: ExplainedError | None = None  # a reading that falls: no run can be made until it is fixed
    building: BuildingReading | None = None  # a heat site's: without its readings nothing is billed
    heat: bool = False  # quantities in Gcal (a heat organisation), else kWh

    def read_by(self) -> dict[str, list[str]]:
        """Meter code → who read the counters its quantity comes from (a heat site's; empty for electricity)."""
        found = {a.meters: list(a.read_by) for a in self.accounts if a.read_by}
        if self.building is not None and self.building.read_by:
            found = {self.building.meter: list(self.building.read_by), **found}
        return found

    def sources(self) -> list[tuple[str, int]]:
        """(gateway | office | resident, how many meters' billed counters it read), the most first."""
        counted: dict[str, int] = {}
        for sources in self.read_by().values():
            for source in sources:
                counted[source] = counted.get(source, 0) + 1
        return sorted(counted.items(), key=lambda item: (-item[1], item[0]))

    def count(self, state: str) -> int:
        return sum(1 for a in self.accounts if a.state == state)

    @property
    def attention(self) -> list[AccountReading]:
        return [a for a in self.accounts if a.state != "reading_measured"]


def readings_status(db: Session, site: Site, period: str) -> ReadingsStatus:
    """Every billed account of the site for ``period``: measured, to be estimated (from how many months), or
    missing (no reading and nothing to estimate from) — as ``electricity_invoices`` will decide; for a heat
    organisation as ``heat_invoices`` will (``heat_readings_status``)."""
    start, end = naive_period_bounds(period)
    org = db.get(Organisation, site.org_id)
    if org is not None and org.kind == "heat":
        return heat_readings_status(db, site, period, start, end)
    try:
        bounds = checked_bounds(db, site, start, end)
    except ReadingError as exc:
        return ReadingsStatus([], exc)
    energies = meter_energy(db, site, start, end)
    meters: dict[int, list[MeterRow]] = {}
    for row in db.execute(select(Meter.id, Meter.code, Meter.account_id, Meter.installed_at, Meter.removed_at)
                          .where(Meter.site_id == site.id, Meter.role == "subscriber", Meter.account_id.is_not(None))
                          .order_by(Meter.code)).all():
        meters.setdefault(row.account_id, []).append(MeterRow(*row))
    accounts = {a.id: a for a in db.scalars(select(Account).where(Account.id.in_(meters)))}
    found = []
    for account_id, account_meters in meters.items():
        account_segments = segments(account_meters, start, end)
        if not account_segments:
            continue
        account = accounts[account_id]
        codes = ", ".join(m.code for m in account_meters)
        try:
            used = account_consumption(db, account_segments, energies, bounds)
        except ReadingError as exc:
            return ReadingsStatus(found, exc)
        if used is not None:
            found.append(AccountReading(account.number, account.holder, codes, "reading_measured", used.kwh))
            continue
        unread = [s.meter.code for s in account_segments if segment_consumption(db, s, energies, bounds) is None]
        guess = estimate(db, account_id, period, account_segments)
        if guess is None:
            found.append(AccountReading(account.number, account.holder, codes, "reading_missing", unread=unread))
        else:
            found.append(AccountReading(account.number, account.holder, codes, "reading_estimated", guess.kwh,
                                        guess.estimate_months, unread))
    found.sort(key=lambda a: (a.state == "reading_measured", a.number))
    return ReadingsStatus(found)


def heat_readings_status(db: Session, site: Site, period: str, start, end) -> ReadingsStatus:
    """A heat site's readings as ``heat_invoices`` reads them: the building meter's counter at the bounds of
    the heating days, then each flat meter's (a flat without its own meter is billed by area: nothing to read).
    A flat meter unread is billed by the previous period's daily average when there is one (estimated), else
    missing: that invoice cannot be issued. Outside the heating season there is nothing to read."""
    windows = heating_windows(db, site.org_id, start, end)
    building = db.scalar(select(Meter).where(Meter.site_id == site.id, Meter.role == "heat_building")
                         .order_by(Meter.id).limit(1))
    if building is None:
        return ReadingsStatus([], BillingError(f"site {site.code}: no building heat meter (a meter with role "
                                               "heat_building)", "err_no_building_meter", site=site.code),
                              BuildingReading("", False), heat=True)
    building_gcal = metered_gcal(db, building.id, windows)
    status = ReadingsStatus([], building=BuildingReading(
        building.code, building_gcal is not None, building_gcal,
        metered_by(db, building.id, windows) if building_gcal is not None else ()), heat=True)
    flats = db.execute(select(Account, Meter.id, Meter.code).join(Meter, Meter.account_id == Account.id)
                       .where(Account.site_id == site.id, Meter.site_id == site.id, Meter.role == "subscriber")
                       .order_by(Account.number)).all()
    days = sum(((kyiv_day(b) - kyiv_day(a)).days for a, b in windows), 0)  # calendar days, as the run counts
    for account, meter_id, code in flats:
        gcal = metered_gcal(db, meter_id, windows)
        if gcal is not None and gcal < 0:
            status.error = BillingError(f"account {account.number}: heat meter {code} went down by {-gcal} Gcal",
                                        "err_heat_meter_down", account=account.number, meter=code, gcal=-gcal)
            return status
        if gcal is not None:
            status.accounts.append(AccountReading(account.number, account.holder, code, "reading_measured", gcal,
                                                  read_by=metered_by(db, meter_id, windows)))
            continue
        daily = previous_daily(db, account.id, code, period)
        if daily is None:
            status.accounts.append(AccountReading(account.number, account.holder, code, "reading_missing",
                                                  unread=[code]))
        else:
            status.accounts.append(AccountReading(account.number, account.holder, code, "reading_estimated",
                                                  daily * days if days else None, 1, [code]))
    status.accounts.sort(key=lambda a: (a.state == "reading_measured", a.number))
    return status


@dataclass
class Change:
    number: str
    holder: str
    kwh: Decimal | None
    amount: Decimal | None
    last_kwh: Decimal | None
    last_amount: Decimal | None
    estimated: bool

    @property
    def kwh_change(self) -> Decimal | None:
        return None if self.kwh is None or self.last_kwh is None else self.kwh - self.last_kwh

    @property
    def amount_change(self) -> Decimal | None:
        return None if self.amount is None or self.last_amount is None else self.amount - self.last_amount

    @property
    def kwh_pct(self) -> Decimal | None:
        change = self.kwh_change
        if change is None or not self.last_kwh:
            return None
        return (change * 100 / self.last_kwh).quantize(Decimal("1"))


def _invoices(db: Session, site: Site, period: str) -> dict[int, tuple]:
    return {row.account_id: row for row in db.execute(
        select(Invoice.account_id, Invoice.quantity_kwh, Invoice.total, Invoice.estimated)
        .join(BillingRun, BillingRun.id == Invoice.run_id)
        .where(BillingRun.site_id == site.id, BillingRun.period == period))}


def month_changes(db: Session, site: Site, period: str) -> list[Change]:
    """Per account, this month's kWh and amount beside last month's; the biggest change of the amount first
    (an account new this month, or gone from it, first of all: it has no change to compare)."""
    now, last = _invoices(db, site, period), _invoices(db, site, previous_period(period))
    ids = set(now) | set(last)
    if not ids:
        return []
    accounts = {a.id: a for a in db.scalars(select(Account).where(Account.id.in_(ids)))}
    changes = []
    for account_id in ids:
        this, before = now.get(account_id), last.get(account_id)
        changes.append(Change(accounts[account_id].number, accounts[account_id].holder,
                              this.quantity_kwh if this else None, this.total if this else None,
                              before.quantity_kwh if before else None, before.total if before else None,
                              bool(this and this.estimated)))
    changes.sort(key=lambda c: (c.amount_change is not None, -abs(c.amount_change or 0), c.number))
    return changes


def queue_month_job(db: Session, site: Site, period: str, kind: str, actor: str) -> Job:
    """Queue the site's draft or issue of ``period`` (the same one already queued or running is returned, not
    queued twice) and audit it; the caller commits."""
    if kind not in MONTH_KINDS:
        raise MonthError(f"kind must be one of {', '.join(MONTH_KINDS)}, got {kind!r}", "err_job_kind", kind=kind)
    checked_period(period)
    found = queue.active_job(db, kind, site.org_id, site_id=site.id, period=period)
    if found is not None:
        return found
    job = queue.enqueue(db, kind, {"site_id": site.id, "site": site.code, "period": period}, org_id=site.org_id,
                        actor=actor)
    audit(db, site.org_id, actor, "job.queue", f"job:{job.id}", None,
          {"kind": kind, "site": site.code, "period": period})
    return job


def queue_emails(db: Session, site: Site, period: str, actor: str, queued: int) -> Job:
    """After ``queue_invoice_emails`` put ``queued`` messages in the outbox: a job that sends them now — the
    organisation's own messages only (``org_id``), not every organisation's."""
    job = queue.enqueue(db, "outbox.send", {"site": site.code, "period": period, "org_id": site.org_id},
                        org_id=site.org_id, actor=actor)
    audit(db, site.org_id, actor, "job.queue", f"job:{job.id}", None,
          {"kind": "outbox.send", "site": site.code, "period": period, "messages": queued})
    return job
