"""A heat network's billing run for one building (a site): the building's heat meter over the heating season
distributed over its units (shared/heat.py, the Мінрегіон methodology), then a two-part tariff — the price
per Gcal and the monthly fee.

The building meter is the site's meter with role ``heat_building``; a unit is an account of the site with its
heated area; a unit with its own heat meter (a subscriber meter of the account) pays by it plus its share of
common use. Counters are readings with the register ``heat_gcal``.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.orm import Session

from cloud.billing.consumption import counter_at
from cloud.billing.draft import Drafted, DraftInvoice
from cloud.billing.errors import BillingError
from cloud.billing.tariff_grid import Tariffs
from cloud.errors import Phrase
from cloud.models import Account, HeatingSeason, Invoice, Meter, Organisation, Reading, Site
from shared.calendar import kyiv_day, naive_midnight
from shared.heat import HeatError, Unit, distribute
from shared.money import line_amount
from shared.tariffs import RatingError, energy_lines, fee_lines, heat_benefit_line, subsidy_line

GCAL = Decimal("0.0001")
REGISTER = "heat_gcal"
HEATING = "теплова енергія на опалення приміщення"
COMMON = "теплова енергія на місця загального користування та роботу внутрішньобудинкових систем"


def heating_windows(db: Session, org_id: int, start: datetime, end: datetime) -> list[tuple[datetime, datetime]]:
    """The parts of [start, end) inside the organisation's heating seasons (опалювальний період)."""
    windows = []
    for season in db.scalars(select(HeatingSeason).where(HeatingSeason.org_id == org_id)
                             .order_by(HeatingSeason.starts)):
        first = max(start, naive_midnight(season.starts))
        last = end if season.ends is None else min(end, naive_midnight(season.ends + timedelta(days=1)))
        if first < last:
            windows.append((first, last))
    return windows


def metered_gcal(db: Session, meter_id: int, windows: list[tuple[datetime, datetime]]) -> Decimal | None:
    """Σ of the counter's growth over the windows; None when a bound cannot be read or interpolated."""
    total = Decimal(0)
    for first, last in windows:
        a, b = counter_at(db, meter_id, first, REGISTER), counter_at(db, meter_id, last, REGISTER)
        if a is None or b is None:
            return None
        total += b - a
    return total


def metered_by(db: Session, meter_id: int, windows: list[tuple[datetime, datetime]]) -> tuple[str, ...]:
    """Who read the counters ``metered_gcal`` takes (``gateway``, ``office``, ``resident``): at each bound the
    reading there, else the two it is interpolated between — as ``counter_at`` picks them."""
    found = set()
    for bound in {bound for window in windows for bound in window}:
        before = db.execute(select(Reading.ts, Reading.source).where(Reading.meter_id == meter_id, Reading.ts <= bound)
                            .order_by(Reading.ts.desc()).limit(1)).first()
        if before is None:
            continue
        found.add(before.source)
        if before.ts != bound:
            found.update(db.scalars(select(Reading.source).where(Reading.meter_id == meter_id, Reading.ts > bound)
                                    .order_by(Reading.ts).limit(1)))
    return tuple(sorted(found))


def heat_invoices(db: Session, site: Site, org: Organisation, period: str, start: datetime, end: datetime) -> Drafted:
    """Every unit's invoice for the period: heating and common use in Gcal × the price, the monthly fee,
    the benefit within the social norm of area, the subsidy. Outside the heating season only the fee is
    billed (and the subsidy credited)."""
    tariffs = Tariffs(db, org.id, start, end).for_period(True)
    first_day, last_day = kyiv_day(start), kyiv_day(end) - timedelta(days=1)
    building = db.scalar(select(Meter).where(Meter.site_id == site.id, Meter.role == "heat_building"))
    if building is None:
        raise BillingError(f"site {site.code}: no building heat meter (a meter with role heat_building)",
                           "err_no_building_meter", site=site.code)
    accounts = db.scalars(select(Account).where(Account.org_id == org.id, Account.site_id == site.id)
                          .order_by(Account.number)).all()
    own = {m.account_id: m for m in db.scalars(select(Meter).where(
        Meter.site_id == site.id, Meter.role == "subscriber", Meter.account_id.is_not(None)))}
    windows = heating_windows(db, org.id, start, end)
    days = sum(((kyiv_day(b) - kyiv_day(a)).days for a, b in windows), 0)  # calendar days: not 24 h each
    # The first and the last heating day of the period (a season that ends and starts again inside one month
    # counts the days between as heating days for the split by tariff: it is the same month's price).
    heat_days = (kyiv_day(windows[0][0]), kyiv_day(windows[-1][1]) - timedelta(days=1)) if windows else (
        first_day, last_day)
    drafted = Drafted()
    building_gcal = metered_gcal(db, building.id, windows)
    if building_gcal is None:
        drafted.problems.append(Phrase(f"building meter {building.code} has no reading at the bounds of the heating "
                                       f"days of {period}; nothing billed", "problem_building_unread",
                                       meter=building.code, period=period))
        drafted.summary = {"distributed_kwh": "0", "distributed_uah": "0.00", "unit": "Гкал"}
        return drafted
    units, unit_meter = [], {}
    for account in accounts:
        if account.heated_area_m2 is None:
            raise BillingError(f"account {account.number}: no heated area; enter it before billing heat",
                               "err_no_heated_area", account=account.number)
        gcal, daily = None, None
        meter = own.get(account.id)
        if meter is not None and windows:
            gcal = metered_gcal(db, meter.id, windows)
            if gcal is None:
                # Away for verification (or not read): the previous period's average daily consumption.
                daily = previous_daily(db, account.id, meter.code, period)
                if daily is None:
                    drafted.problems.append(Phrase(
                        f"account {account.number}: heat meter {meter.code} has no reading for {period} and no "
                        "earlier daily average; drafted by area, cannot be issued", "problem_heat_meter_unread",
                        account=account.number, meter=meter.code, period=period))
            elif gcal < 0:
                raise BillingError(f"account {account.number}: heat meter {meter.code} went down by {-gcal} Gcal",
                                   "err_heat_meter_down", account=account.number, meter=meter.code, gcal=-gcal)
            unit_meter[account.number] = (meter, gcal, daily)
        units.append(Unit(account.number, Decimal(account.heated_area_m2), gcal, daily,
                          common_coefficient=Decimal(account.common_coefficient or 1)))
    try:
        shares = {share.ref: share for share in distribute(building_gcal, units, Decimal(site.heat_common_share),
                                                           days)} if units else {}
    except HeatError as exc:
        raise BillingError(f"site {site.code}, {period}: {exc}", "err_at_site_period", site=site.code,
                           period=period, detail=exc) from exc
    distributed = Decimal(0)
    for account in accounts:
        share = shares[account.number]
        meter, gcal, daily = unit_meter.get(account.number, (None, None, None))
        if gcal is not None:
            how = f" (за лічильником {meter.code})"
        elif daily is not None:
            how = f" (лічильник {meter.code} не знято: середньодобове попереднього періоду {daily:f} Гкал × {days} дн.)"
        else:
            how = f" (за опалюваною площею {Decimal(account.heated_area_m2).normalize():f} м²)"
        try:
            lines = []
            # Heat is only delivered on the heating days: a tariff change splits the Gcal by those days.
            if share.heating_gcal:
                lines += energy_lines({"all": share.heating_gcal}, tariffs, *heat_days, False,
                                      HEATING + how, "Гкал", GCAL)
            if share.common_gcal:
                lines += energy_lines({"all": share.common_gcal}, tariffs, *heat_days, False, COMMON,
                                      "Гкал", GCAL)
            lines += fee_lines(tariffs, first_day, last_day)
            benefit = heat_benefit_line(share.total_gcal, Decimal(account.heated_area_m2),
                                        Decimal(account.benefit_norm_m2 or 0), Decimal(account.benefit_pct or 0),
                                        tariffs[-1].unit_price)
        except RatingError as exc:
            raise BillingError(f"account {account.number}: {exc}", "err_at_account", account=account.number,
                               detail=exc) from exc
        if benefit is not None:
            lines.append(benefit)
        subsidy = subsidy_line(Decimal(account.subsidy_uah or 0))
        if subsidy is not None:
            lines.append(subsidy)
        meters = [{"meter": building.code, "role": "building", "quantity": f"{building_gcal:f}", "unit": "Гкал",
                   "heating_days": days}]
        if meter is not None:
            meters.append({"meter": meter.code, "quantity": None if gcal is None else f"{gcal:f}", "unit": "Гкал",
                           "daily": f"{(gcal / days).quantize(Decimal('0.000001')):f}" if gcal is not None and days
                           else None})
        invoice = DraftInvoice(account.id, share.total_gcal, None, None, False, meters)
        invoice.add(lines, meter=meter.code if meter else building.code, source="heat")
        drafted.invoices.append(invoice)
        distributed += sum((line.amount for line in lines if line.kind == "energy"), Decimal(0))
    drafted.summary = {"unit": "Гкал", "building_gcal": f"{building_gcal:f}", "heating_days": days,
                       "distributed_kwh": f"{sum((s.total_gcal for s in shares.values()), Decimal(0)):f}",
                       "distributed_uah": f"{distributed:.2f}", "price": f"{tariffs[-1].unit_price:f}",
                       "purchase_uah": f"{line_amount(building_gcal, tariffs[-1].unit_price):.2f}"}
    return drafted


def previous_daily(db: Session, account_id: int, meter_code: str, period: str) -> Decimal | None:
    """The unit meter's average daily Gcal in the account's last issued heat invoice that had it read."""
    for meters in db.scalars(select(Invoice.meters).where(Invoice.account_id == account_id, Invoice.status == "issued",
                                                          Invoice.period < period).order_by(Invoice.period.desc())):
        for meter in meters or ():
            if meter.get("meter") == meter_code and meter.get("daily"):
                return Decimal(meter["daily"])
    return None


def set_heating_season(db: Session, org: Organisation, starts: date, ends: date | None = None) -> HeatingSeason:
    """Record the heating season the local council declared (ends inclusive; None while it goes on)."""
    if ends is not None and ends < starts:
        raise BillingError(f"heating season ends {ends} before it starts {starts}")
    season = HeatingSeason(org_id=org.id, starts=starts, ends=ends)
    db.add(season)
    db.flush()
    return season

