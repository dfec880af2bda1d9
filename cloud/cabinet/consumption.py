"""What a resident's cabinet draws: their consumption by Kyiv month (13 months, this one against the same month a
year ago) and by day of a month (by time-of-use zone when the tariff has zones), the solar export and how the
invoices netted or paid it, and the payments with their reversals. From their own meters and invoices only."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from cloud.i18n import N_
from cloud.models import (
    Account,
    DailyEnergy,
    IntervalEnergy,
    Invoice,
    Meter,
    Payment,
    PaymentReversal,
    Tariff,
)
from shared.calendar import kyiv_period, kyiv_time, naive_period_bounds, parse_period
from shared.tariffs import zone_of

CHART_WIDTH, CHART_HEIGHT = 360.0, 120.0
# Keys built from data in cabinet.html: a zone, a payment's channel, what an invoice did with the export.
DATA_KEYS = (N_("zone_day"), N_("zone_night"), N_("zone_peak"), N_("zone_half_peak"), N_("zone_all"),
             N_("cabinet_channel_bank"), N_("cabinet_channel_card"), N_("cabinet_channel_cash"),
             N_("cabinet_channel_reversal"), N_("cabinet_channel_refund"),
             N_("cabinet_solar_export_credit"), N_("cabinet_solar_carry"))


@dataclass(frozen=True)
class Bar:
    label: str
    kwh: Decimal
    export_kwh: Decimal = Decimal(0)
    zones: tuple[tuple[str, Decimal], ...] = ()
    highlight: bool = False


def months_back(period: str, count: int) -> list[str]:
    year, month = parse_period(period)
    found = []
    for _ in range(count):
        found.append(f"{year}-{month:02d}")
        year, month = (year, month - 1) if month > 1 else (year - 1, 12)
    return list(reversed(found))


def meter_ids(db: Session, account: Account) -> list[int]:
    return list(db.scalars(select(Meter.id).where(Meter.account_id == account.id, Meter.org_id == account.org_id)))


def monthly(db: Session, account: Account, period: str) -> list[Bar]:
    """13 Kyiv months ending with ``period``: kWh from the issued invoices, else from the gateway's intervals."""
    periods = months_back(period, 13)
    invoiced = dict(db.execute(select(Invoice.period, Invoice.quantity_kwh).where(
        Invoice.account_id == account.id, Invoice.status == "issued", Invoice.period.in_(periods))).all())
    ids = meter_ids(db, account)
    # The months' sums from the daily table (Kyiv days, kept as the intervals arrive): 400 rows, not 40 000.
    sums: dict[str, list[int]] = {}
    if ids:
        first, last = date(*parse_period(periods[0]), 1), date(*parse_period(periods[-1]), 1) + timedelta(days=31)
        for day, imp, exp in db.execute(select(DailyEnergy.day, DailyEnergy.imp_wh, DailyEnergy.exp_wh).where(
                DailyEnergy.meter_id.in_(ids), DailyEnergy.day >= first, DailyEnergy.day < last)):
            entry = sums.setdefault(f"{day:%Y-%m}", [0, 0])
            entry[0] += imp
            entry[1] += exp
    bars = []
    for each in periods:
        imp, exp = sums.get(each, (0, 0))
        kwh = Decimal(invoiced[each]) if each in invoiced else Decimal(imp).scaleb(-3)
        bars.append(Bar(each, kwh, Decimal(exp).scaleb(-3), highlight=each in (periods[0], periods[-1])))
    return bars


def tariff_zones(db: Session, account: Account, day: date) -> tuple[str, ...]:
    zones = db.scalar(select(Tariff.zones).where(Tariff.org_id == account.org_id, Tariff.valid_from <= day)
                      .order_by(Tariff.valid_from.desc()).limit(1))
    return tuple(zones) if zones else ()


def daily(db: Session, account: Account, period: str) -> list[Bar]:
    """Each Kyiv day of ``period``: kWh in and out from the gateway's intervals, by zone when the tariff has them."""
    start, end = naive_period_bounds(period)
    zones = tariff_zones(db, account, kyiv_time(start).date())
    ids = meter_ids(db, account)
    days: dict[date, list] = {}
    hours: dict[datetime, datetime] = {}  # Kyiv is a whole number of hours from UTC: one conversion an hour
    if ids:
        for ts, imp, exp in db.execute(select(IntervalEnergy.start, IntervalEnergy.imp_wh, IntervalEnergy.exp_wh)
                                       .where(IntervalEnergy.meter_id.in_(ids), IntervalEnergy.start >= start,
                                              IntervalEnergy.start < end)):
            hour = ts.replace(minute=0, second=0, microsecond=0)
            if hour not in hours:
                hours[hour] = kyiv_time(hour)
            local = hours[hour]
            entry = days.setdefault(local.date(), [0, 0, {}])
            entry[0] += imp
            entry[1] += exp
            if zones:
                zone = zone_of(local.hour, zones)
                entry[2][zone] = entry[2].get(zone, 0) + imp
    first = kyiv_time(start).date()
    count = (kyiv_time(end - timedelta(seconds=1)).date() - first).days + 1
    bars = []
    for i in range(count):
        day = first + timedelta(days=i)
        imp, exp, by_zone = days.get(day, [0, 0, {}])
        bars.append(Bar(f"{day.day}", Decimal(imp).scaleb(-3), Decimal(exp).scaleb(-3),
                        tuple((z, Decimal(by_zone.get(z, 0)).scaleb(-3)) for z in zones)))
    return bars


def chart(bars: list[Bar], width: float = CHART_WIDTH, height: float = CHART_HEIGHT) -> dict:
    """Bars as SVG geometry (the template draws them): one column per bar, stacked by zone when there are zones;
    the export drawn below the axis."""
    peak = max([b.kwh for b in bars] + [b.export_kwh for b in bars] + [Decimal("0.001")])
    step = width / max(len(bars), 1)
    has_export = any(b.export_kwh for b in bars)
    below = height * 0.35 if has_export else 0
    columns = []
    for i, b in enumerate(bars):
        x = round(i * step + step * 0.12, 1)
        w = round(step * 0.76, 1)
        parts, top = [], height
        pieces = b.zones if b.zones and any(v for _, v in b.zones) else (("", b.kwh),)
        for zone, value in pieces:
            h = float(value / peak) * height
            top -= h
            parts.append({"y": round(top, 1), "h": round(h, 1), "zone": zone})
        export_h = float(b.export_kwh / peak) * below if has_export else 0
        columns.append({"x": x, "w": w, "cx": round(i * step + step / 2, 1), "label": b.label, "kwh": b.kwh,
                        "parts": parts, "export_h": round(export_h, 1), "highlight": b.highlight,
                        "export": b.export_kwh})
    return {"columns": columns, "width": width, "height": height, "below": below, "peak": peak,
            "label_every": max(1, len(bars) // 10)}


@dataclass(frozen=True)
class SolarLine:
    period: str
    invoice_id: int
    kind: str  # export_credit (paid for at the export price) | carry (netted, carried to the next month)
    quantity: str
    amount: str


def solar_lines(db: Session, account: Account) -> list[SolarLine]:
    """What the issued invoices did with the house's export: paid as a credit, or carried to be netted."""
    found = []
    for invoice_id, period, lines in db.execute(select(Invoice.id, Invoice.period, Invoice.lines).where(
            Invoice.account_id == account.id, Invoice.status == "issued").order_by(Invoice.period.desc())):
        for line in lines or ():
            if line.get("kind") in ("export_credit", "carry"):
                found.append(SolarLine(period, invoice_id, line["kind"], str(line.get("quantity", "")),
                                       str(line.get("amount", ""))))
    return found


@dataclass(frozen=True)
class PaymentRow:
    booked: date
    channel: str  # bank | card | cash | reversal | refund
    amount: Decimal  # + in, − back


def payment_history(db: Session, account: Account) -> list[PaymentRow]:
    rows = [PaymentRow(booked, channel, amount) for booked, channel, amount in db.execute(
        select(Payment.booked, Payment.channel, Payment.amount).where(Payment.account_id == account.id,
                                                                     Payment.org_id == account.org_id))]
    rows += [PaymentRow(booked, "refund" if kind == "refund" else "reversal", -amount) for booked, kind, amount in
             db.execute(select(PaymentReversal.booked, PaymentReversal.kind, PaymentReversal.amount)
                        .join(Payment, Payment.id == PaymentReversal.payment_id)
                        .where(Payment.account_id == account.id, PaymentReversal.org_id == account.org_id))]
    return sorted(rows, key=lambda r: r.booked, reverse=True)


def latest_period(db: Session, account: Account, now: datetime) -> str:
    """The month the cabinet opens on: the newest with intervals or an invoice, else this Kyiv month."""
    ids = meter_ids(db, account)
    last = db.scalar(select(func.max(IntervalEnergy.start)).where(IntervalEnergy.meter_id.in_(ids))) if ids else None
    invoiced = db.scalar(select(func.max(Invoice.period)).where(Invoice.account_id == account.id,
                                                               Invoice.status == "issued"))
    found = [p for p in (kyiv_period(last) if last else None, invoiced) if p]
    return max(found) if found else kyiv_period(now)
