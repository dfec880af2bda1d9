"""Consumption of an account for a period: its meters' segments (a meter replaced inside the period adds the
old meter's part and the new one's), readings from gateways, the office or the resident, and an estimate when
there is no reading at all.

Readings are stored as counters (``import_kwh`` for electricity, ``heat_gcal`` for heat); a counter at a
moment with no reading exactly there is interpolated between the readings around it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import NamedTuple
from zoneinfo import ZoneInfo

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from cloud.errors import ExplainedError, Phrase
from cloud.models import IntervalEnergy, Invoice, Meter, Reading, Site
from shared.calendar import kyiv_time
from shared.tariffs import zone_of

KWH = Decimal("1")
KYIV = ZoneInfo("Europe/Kyiv")
ESTIMATE_MONTHS = 3


class ReadingError(ExplainedError, ValueError):
    """A reading that cannot be billed; the message names the meter, the reading and why."""


def counter_at(db: Session, meter_id: int, at: datetime, register: str = "import_kwh") -> Decimal | None:
    """The counter at ``at``: the reading there, or interpolated between its neighbours — a kWh counter to the
    Wh, any other to its readings' own precision and never coarser than 0.001 (a heat meter's Gcal, read by a
    gateway to the millionth, stays to the millionth rather than to the 1.163 kWh of 0.001 Gcal)."""
    before = db.execute(select(Reading.ts, Reading.values).where(Reading.meter_id == meter_id, Reading.ts <= at)
                        .order_by(Reading.ts.desc()).limit(1)).first()
    if before is None or before.values.get(register) is None:
        return None
    if before.ts == at:
        return Decimal(before.values[register])
    after = db.execute(select(Reading.ts, Reading.values).where(Reading.meter_id == meter_id, Reading.ts > at)
                       .order_by(Reading.ts).limit(1)).first()
    if after is None or after.values.get(register) is None:
        return None
    v0, v1 = Decimal(before.values[register]), Decimal(after.values[register])
    share = Decimal((at - before.ts).total_seconds()) / Decimal((after.ts - before.ts).total_seconds())
    step = Decimal("0.001") if register == "import_kwh" else Decimal(1).scaleb(
        min(v0.as_tuple().exponent, v1.as_tuple().exponent, -3))
    return (v0 + (v1 - v0) * share).quantize(step, ROUND_HALF_UP)


def checked_bounds(db: Session, site: Site, start: datetime, end: datetime) -> dict[int, dict[datetime, Decimal]]:
    """The import counter of every meter of the site exactly at the period's bounds (meter id → {bound: kWh}),
    once every counter is checked to only grow — both in one pass over the readings.

    A reading lower than the one before it (from a month before the period to its end) is a ReadingError
    naming the meter, both readings and who entered it.
    """
    value = func.coalesce(Reading.values["import_kwh"].as_float(), Reading.values["heat_gcal"].as_float())
    counters = (
        select(Meter.code, Reading.meter_id, Reading.ts, Reading.source, value.label("value"),
               # Which bound a row is at comes back as a number: no time is parsed back for every meter.
               case((Reading.ts == start, 0), (Reading.ts == end, 1)).label("bound"),
               case((Reading.ts.in_([start, end]), Reading.values["import_kwh"].as_string())).label("import_kwh"))
        .join(Meter, Meter.id == Reading.meter_id)
        .where(Meter.site_id == site.id, Reading.ts >= start - timedelta(days=31), Reading.ts <= end)
        .subquery()
    )
    # By code, not meter id: unique within the site, and SQLite then reads the rows in window order straight
    # from the indexes (meters by site and code, readings by meter and time) instead of sorting them all.
    window = {"partition_by": counters.c.code, "order_by": counters.c.ts}
    ordered = select(
        counters.c.code, counters.c.meter_id, counters.c.ts, counters.c.source, counters.c.value, counters.c.bound,
        counters.c.import_kwh, func.lag(counters.c.value).over(**window).label("previous"),
        func.lag(counters.c.ts, type_=Reading.ts.type).over(**window).label("previous_ts"),
    ).subquery()
    falls = ordered.c.value < ordered.c.previous
    rows = db.connection().execute(
        select(ordered.c.meter_id, ordered.c.bound, ordered.c.import_kwh, falls.label("falls"))
        .where(falls | ordered.c.bound.is_not(None))).all()
    if any(fell for *_, fell in rows):
        # The first fall by meter and time, in the database's own order, with its details.
        wrong = db.execute(select(ordered).where(falls).order_by(ordered.c.code, ordered.c.ts).limit(1)).one()
        who = {"office": Phrase("entered by the office", "reading_by_office"),
               "resident": Phrase("submitted by the resident", "reading_by_resident")}.get(
            wrong.source, Phrase("from the gateway", "reading_by_gateway"))
        raise ReadingError(
            f"meter {wrong.code}: the reading of {kyiv_time(wrong.ts):%Y-%m-%d %H:%M} ({wrong.value:.3f}, {who}) is lower than "
            f"the one before it ({wrong.previous:.3f} on {kyiv_time(wrong.previous_ts):%Y-%m-%d %H:%M}); if the meter was "
            "replaced, record the new meter with its installation date, otherwise correct the reading",
            "err_reading_below_previous", meter=wrong.code, at=f"{kyiv_time(wrong.ts):%Y-%m-%d %H:%M}", value=f"{wrong.value:.3f}",
            who=who, previous=f"{wrong.previous:.3f}", previous_at=f"{kyiv_time(wrong.previous_ts):%Y-%m-%d %H:%M}")
    found: dict[int, dict[datetime, Decimal]] = {}
    bounds = (start, end)
    for meter_id, bound, import_kwh, _ in rows:
        if import_kwh is not None:
            found.setdefault(meter_id, {})[bounds[bound]] = Decimal(import_kwh)
    return found


class MeterRow(NamedTuple):
    """A subscriber meter as a run needs it (a tuple: a site has thousands, made by the run)."""

    id: int
    code: str
    account_id: int
    installed_at: datetime | None
    removed_at: datetime | None


class Segment(NamedTuple):
    """The part of the period one meter served its account."""

    meter: MeterRow
    start: datetime
    end: datetime
    period_start: datetime = datetime.min
    period_end: datetime = datetime.max

    @property
    def whole(self) -> bool:
        return self.start == self.period_start and self.end == self.period_end


def segments(meters: Sequence[MeterRow], start: datetime, end: datetime) -> list[Segment]:
    """The account's meters over [start, end): a meter removed inside the period counts up to its removal, one
    installed inside it from its installation. A meter removed before the period is out; one installed after
    it counts only when it is the account's only meter (a gateway enrolled later brings its backlog)."""
    if len(meters) == 1 and meters[0].installed_at is None and meters[0].removed_at is None:
        return [Segment(meters[0], start, end, start, end)]  # the common case: one meter, never replaced
    active = [m for m in meters if m.removed_at is None or m.removed_at > start]
    if len(active) > 1:
        active = [m for m in active if m.installed_at is None or m.installed_at < end] or active
    found = []
    for meter in sorted(active, key=lambda m: (m.installed_at or datetime.min, m.code)):
        first = meter.installed_at if meter.installed_at and start < meter.installed_at < end else start
        last = meter.removed_at if meter.removed_at and start < meter.removed_at < end else end
        found.append(Segment(meter, first, last, start, end))
    return found


class Consumption(NamedTuple):
    """An account's period: kWh in (and out, for a solar house), the counters at the bounds, the source, and
    each meter's segment as printed on the invoice."""

    kwh: Decimal
    start_reading: Decimal | None
    end_reading: Decimal | None
    source: str  # intervals | readings | estimate
    export_kwh: Decimal = Decimal(0)
    meters: tuple[dict, ...] = ()
    by_zone: dict[str, Decimal] | None = None  # time-of-use zones, when the tariff has them
    estimate_months: int = 0


def segment_consumption(db: Session, segment: Segment, energies, bounds) -> Consumption | None:
    """Σ interval energy when the meter served the whole period and every interval is there, else the counters
    at the segment's bounds (read, entered, submitted or interpolated); None when it cannot be known."""
    meter = segment.meter
    at = bounds.get(meter.id, {})
    first = at.get(segment.start)
    if first is None:
        first = counter_at(db, meter.id, segment.start)
    energy = energies.get(meter.code)
    if segment.whole and energy is not None and energy.complete:
        return Consumption(energy.import_kwh, first, None if first is None else first + energy.import_kwh,
                           "intervals", energy.export_kwh.quantize(KWH, ROUND_HALF_UP))
    last = at.get(segment.end)
    if last is None:
        last = counter_at(db, meter.id, segment.end)
    if first is None or last is None:
        return None
    if last < first:
        raise ReadingError(f"meter {meter.code}: the reading at {kyiv_time(segment.end):%Y-%m-%d} ({last}) is lower than at "
                           f"{kyiv_time(segment.start):%Y-%m-%d} ({first}); check for a replaced meter or a typing error",
                           "err_reading_fell", meter=meter.code, end=f"{kyiv_time(segment.end):%Y-%m-%d}", last=last,
                           start=f"{kyiv_time(segment.start):%Y-%m-%d}", first=first)
    return Consumption(last - first, first, last, "readings")


def account_consumption(db: Session, account_segments: list[Segment], energies, bounds) -> Consumption | None:
    """The account's consumption: the sum of its meters' segments (None when any of them is unknown)."""
    parts = []
    for segment in account_segments:
        used = segment_consumption(db, segment, energies, bounds)
        if used is None:
            return None
        parts.append((segment, used))
    if not parts:
        return None
    if len(parts) == 1:
        segment, used = parts[0]
        # One meter over the whole period: its readings are the invoice's own; a part of it is printed.
        if segment.whole:
            return used
        return Consumption(used.kwh, used.start_reading, used.end_reading, used.source, used.export_kwh,
                           (meter_json(segment, used),))
    return Consumption(
        sum((u.kwh for _, u in parts), Decimal(0)), parts[0][1].start_reading, parts[-1][1].end_reading,
        "readings" if any(u.source == "readings" for _, u in parts) else "intervals",
        sum((u.export_kwh for _, u in parts), Decimal(0)), tuple(meter_json(s, u) for s, u in parts))


def meter_json(segment: Segment, used: Consumption) -> dict:
    return {"meter": segment.meter.code, "from": segment.start.isoformat(sep=" "),
            "to": segment.end.isoformat(sep=" "), "start": _text(used.start_reading),
            "end": _text(used.end_reading), "quantity": f"{used.kwh:f}", "source": used.source}


def _text(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


def estimate(db: Session, account_id: int, period: str, account_segments: list[Segment]) -> Consumption | None:
    """No reading for the period: the average monthly consumption of the account's last three billed months
    with a measured (not estimated) consumption, rounded to whole kWh half up; None without any such month."""
    history = db.scalars(
        select(Invoice.quantity_kwh).where(Invoice.account_id == account_id, Invoice.status == "issued",
                                           Invoice.estimated.is_(False), Invoice.period < period)
        .order_by(Invoice.period.desc()).limit(ESTIMATE_MONTHS)
    ).all()
    if not history:
        return None
    average = (sum((Decimal(q) for q in history), Decimal(0)) / len(history)).quantize(KWH, ROUND_HALF_UP)
    segment = account_segments[-1] if account_segments else None
    start = counter_at(db, segment.meter.id, segment.start) if segment else None
    meters = ({"meter": segment.meter.code, "from": segment.start.isoformat(sep=" "),
               "to": segment.end.isoformat(sep=" "), "start": _text(start), "end": None,
               "quantity": f"{average:f}", "source": "estimate"},) if segment else ()
    return Consumption(average, start, None, "estimate", Decimal(0), meters, estimate_months=len(history))


def zone_consumption(db: Session, meter_id: int, start: datetime, end: datetime,
                     zones: Iterable[str]) -> dict[str, Decimal] | None:
    """kWh per time-of-use zone from the meter's 15-minute intervals (Kyiv local time decides the zone);
    None unless every interval of the period is there."""
    zones = tuple(zones)
    expected = int((end - start).total_seconds() // 900)
    rows = db.execute(select(IntervalEnergy.start, IntervalEnergy.imp_wh).where(
        IntervalEnergy.meter_id == meter_id, IntervalEnergy.start >= start, IntervalEnergy.start < end)).all()
    if len(rows) != expected:
        return None
    wh: dict[str, int] = dict.fromkeys(zones, 0)
    utc = ZoneInfo("UTC")
    for ts, imp in rows:
        wh[zone_of(ts.replace(tzinfo=utc).astimezone(KYIV).hour, zones)] += imp
    whole = {zone: Decimal(value).scaleb(-3).quantize(KWH, ROUND_HALF_UP) for zone, value in wh.items()}
    return whole
