"""The daily pre-aggregate (``daily_energy``): Σ of each meter's interval energy per Kyiv calendar day.

Kept current where intervals are stored (``cloud/ingest/chain.py`` calls :func:`refresh_days` in the batch's own
transaction): each (meter, day) a batch touched is summed again from ``interval_energy`` — a read of at most 100
rows through the primary key — so a duplicate interval skipped by the insert can never be counted twice.
``rebuild_daily`` recomputes a site's or every row from scratch, for data stored before the table existed.

Beside it, ``line_interval_energy``: Σ per group of meters (the station input, each line's feeder, each line's
subscribers) per quarter-hour and per Kyiv day, re-summed in the same transaction for the quarter-hours and days a
batch touched, so that a week's or a year's chart of a 5 000-meter station reads thousands of rows, not millions. And the voltage days new readings
touched are dropped (``forget_voltage_days``; cloud/operations/voltage.py sums them again when a page asks).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from datetime import date, datetime, timedelta

from sqlalchemy import and_, case, delete, func, literal, or_, select
from sqlalchemy.orm import Session

from cloud.db import driver_execute, driver_rows
from cloud.models import (
    DailyEnergy,
    IntervalEnergy,
    LineIntervalEnergy,
    Meter,
    MonthlyEnergy,
    Site,
    VoltageDay,
)
from shared.calendar import day_bounds, kyiv_day

SQLITE_TIME = "%Y-%m-%d %H:%M:%S.%f"  # how SQLAlchemy stores a DateTime on SQLite

REFRESH = (
    "INSERT INTO daily_energy (meter_id, day, org_id, imp_wh, exp_wh, intervals, estimated) "
    "SELECT ?, ?, ?, COALESCE(SUM(imp_wh), 0), COALESCE(SUM(exp_wh), 0), COUNT(*), "
    "COALESCE(SUM(CASE WHEN flag = 'estimated' THEN 1 ELSE 0 END), 0) "
    "FROM interval_energy WHERE meter_id = ? AND start >= ? AND start < ? "
    "ON CONFLICT (meter_id, day) DO UPDATE SET imp_wh = excluded.imp_wh, exp_wh = excluded.exp_wh, "
    "intervals = excluded.intervals, estimated = excluded.estimated"
)
REFRESH_MONTH = (
    "INSERT INTO monthly_energy (meter_id, month, org_id, imp_wh, exp_wh, intervals, estimated) "
    "SELECT ?, ?, ?, COALESCE(SUM(imp_wh), 0), COALESCE(SUM(exp_wh), 0), COALESCE(SUM(intervals), 0), "
    "COALESCE(SUM(estimated), 0) FROM daily_energy WHERE meter_id = ? AND day >= ? AND day < ? "
    "ON CONFLICT (meter_id, month) DO UPDATE SET imp_wh = excluded.imp_wh, exp_wh = excluded.exp_wh, "
    "intervals = excluded.intervals, estimated = excluded.estimated"
)


def month_bounds(day: date) -> tuple[date, date]:
    """The first day of ``day``'s month and the first day of the next."""
    first = day.replace(day=1)
    return first, (first + timedelta(days=32)).replace(day=1)


def naive_day_bounds(day: date) -> tuple[datetime, datetime]:
    start, end = day_bounds(day)
    return start.replace(tzinfo=None), end.replace(tzinfo=None)


def _as_datetime(value) -> datetime:
    return value if isinstance(value, datetime) else datetime.fromisoformat(value)


class TouchedDays(set):
    """(meter id, Kyiv day) pairs, and the quarter-hours (naive UTC) they were touched at."""

    starts: frozenset[datetime] = frozenset()


def touched_days(intervals: Iterable[tuple]) -> TouchedDays:
    """The (meter id, Kyiv day) pairs of interval rows ``(meter id, start, …)``; start naive UTC, as a datetime
    or as the text the ingest path binds."""
    days_of: dict[object, date] = {}  # a batch repeats the same few instants for every meter
    starts: set[datetime] = set()
    found = TouchedDays()
    for row in intervals:
        start = row[1]
        if start not in days_of:
            instant = _as_datetime(start)
            starts.add(instant)
            days_of[start] = kyiv_day(instant)
        found.add((row[0], days_of[start]))
    found.starts = frozenset(starts)
    return found


def refresh_days(db: Session, org_id: int, pairs: Iterable[tuple[int, date]]) -> None:
    """Sum each (meter, day) again from the interval energy stored, in the caller's transaction."""
    connection = db.connection()
    postgres = connection.dialect.name == "postgresql"
    pairs = pairs if isinstance(pairs, TouchedDays) else set(pairs)
    params = []
    for meter_id, day in sorted(pairs):
        low, high = naive_day_bounds(day)
        if postgres:
            params.append((meter_id, day, org_id, meter_id, low, high))
        else:
            params.append((meter_id, day.isoformat(), org_id, meter_id, low.strftime(SQLITE_TIME),
                           high.strftime(SQLITE_TIME)))
    if not params:
        return
    months = []
    for meter_id, month in sorted({(meter_id, day.replace(day=1)) for meter_id, day in pairs}):
        first, after = month_bounds(month)
        if postgres:
            months.append((meter_id, first, org_id, meter_id, first, after))
        else:
            months.append((meter_id, first.isoformat(), org_id, meter_id, first.isoformat(), after.isoformat()))
    cursor = connection.connection.cursor()
    try:
        cursor.executemany(REFRESH.replace("?", "%s") if postgres else REFRESH, params)
        # Then the months of those days, from the days just summed (monthly_energy).
        cursor.executemany(REFRESH_MONTH.replace("?", "%s") if postgres else REFRESH_MONTH, months)
    finally:
        cursor.close()
    meter_ids = sorted({meter_id for meter_id, _ in pairs})
    starts = getattr(pairs, "starts", None) or {
        low + STEP * n for low, high in (naive_day_bounds(day) for day in {day for _, day in pairs})
        for n in range(int((high - low) / STEP))}
    sites = set()
    for n in range(0, len(meter_ids), 500):
        chunk = meter_ids[n:n + 500]
        sites.update(site for (site,) in driver_rows(
            db, f"SELECT DISTINCT site_id FROM meters WHERE id IN ({', '.join('?' * len(chunk))})", tuple(chunk)))
    for site_id in sorted(sites):
        refresh_lines(db, org_id, site_id, starts)


def forget_voltage_days(db: Session, pairs: Iterable[tuple[int, date]]) -> None:
    """Drop the voltage figures of the (meter, Kyiv day) pairs new readings arrived for: the voltage page sums
    those days again from the readings (cloud/operations/voltage.py)."""
    connection = db.connection()
    postgres = connection.dialect.name == "postgresql"
    pairs = sorted(set(pairs))
    if not pairs:
        return
    cursor = connection.connection.cursor()
    try:  # through the driver: this runs for every batch of readings
        cursor.executemany(f"DELETE FROM voltage_days WHERE meter_id = {'%s' if postgres else '?'} AND day = "
                           f"{'%s' if postgres else '?'}",
                           [(meter_id, day if postgres else day.isoformat()) for meter_id, day in pairs])
    finally:
        cursor.close()


def newest_day(db: Session, site_id: int) -> date | None:
    """The Kyiv day of the site's newest interval energy, from the daily table. First the daily rows from the day
    of the site's newest per-day group row on (one look at ``line_interval_energy``'s key, then one day's rows):
    any found, the newest of them is the newest of all; else one lookup at the end of each meter's rows."""
    meters = select(Meter.id).where(Meter.site_id == site_id)
    last = db.scalar(select(func.max(LineIntervalEnergy.start)).where(LineIntervalEnergy.site_id == site_id,
                                                                      LineIntervalEnergy.step == DAY))
    if last is not None:
        since = kyiv_day(_as_datetime(last))
        found = db.scalar(select(func.max(DailyEnergy.day)).where(DailyEnergy.meter_id.in_(meters),
                                                                  DailyEnergy.day >= since))
        if found is not None:
            return date.fromisoformat(found) if isinstance(found, str) else found
    newest = (select(func.max(DailyEnergy.day)).where(DailyEnergy.meter_id == Meter.id).correlate(Meter)
              .scalar_subquery())
    found = db.scalar(select(func.max(newest)).where(Meter.site_id == site_id))
    return date.fromisoformat(found) if isinstance(found, str) else found


# ---- Σ per quarter-hour (and Kyiv day) and group of meters ---------------------------------------------------

STEP = timedelta(minutes=15)
LINE_ROLES = ("feeder", "subscriber")


def site_layout(db: Session, site_id: int) -> tuple[int | None, int]:
    """(the station input's meter id, a digest of which meter is where): rows summed under another digest are
    stale — a meter moved to another line, or given another role."""
    meters = db.execute(select(Meter.id, Meter.role, Meter.line_id).where(Meter.site_id == site_id)
                        .order_by(Meter.id)).all()
    input_id = next((mid for mid, role, _ in meters if role == "station_input"), None)
    text = ";".join(f"{mid}:{role}:{line}" for mid, role, line in meters).encode()
    return input_id, int.from_bytes(hashlib.blake2b(text, digest_size=7).digest(), "big")


def grouped_meters(site_id: int, input_id: int | None):
    """The meters a station's balance counts: its (first) input meter, and the feeders and subscribers of a line."""
    return and_(Meter.site_id == site_id, or_(
        and_(Meter.role == "station_input", Meter.id == (input_id or 0)),
        and_(Meter.role.in_(LINE_ROLES), Meter.line_id.is_not(None))))


def group_line():
    return case((Meter.role == "station_input", 0), else_=Meter.line_id)


QUARTER, DAY = 15, 1440  # line_interval_energy.step


def sum_lines(site_id: int, org_id: int, input_id: int | None, digest: int, *where):
    """Σ per quarter-hour and group from the intervals."""
    line = group_line()
    return (select(literal(site_id), literal(QUARTER), IntervalEnergy.start, Meter.role, line, literal(org_id),
                   func.sum(IntervalEnergy.imp_wh), func.sum(IntervalEnergy.exp_wh), func.count(), func.count(),
                   literal(digest))
            .join(Meter, Meter.id == IntervalEnergy.meter_id)
            .where(grouped_meters(site_id, input_id), *where)
            .group_by(IntervalEnergy.start, Meter.role, line))


def sum_line_day(site_id: int, org_id: int, input_id: int | None, digest: int, day: date):
    """Σ per group over one Kyiv day from the daily table."""
    line = group_line()
    return (select(literal(site_id), literal(DAY), literal(naive_day_bounds(day)[0], LineIntervalEnergy.start.type),
                   Meter.role, line, literal(org_id), func.sum(DailyEnergy.imp_wh), func.sum(DailyEnergy.exp_wh),
                   func.count(), func.sum(DailyEnergy.intervals), literal(digest))
            .join(Meter, Meter.id == DailyEnergy.meter_id)
            .where(grouped_meters(site_id, input_id), DailyEnergy.day == day)
            .group_by(Meter.role, line))


LINE_COLUMNS = ["site_id", "step", "start", "role", "line_id", "org_id", "imp_wh", "exp_wh", "meters", "intervals",
                "layout"]


# The upkeep of the same groups with every batch of intervals, as plain SQL through the driver (as the batch's own
# rows are written): SQLAlchemy's compiling of the statements above cost as much as the sums themselves. The
# same groups and sums as ``sum_lines`` and ``sum_line_day`` (tests/cloud/test_dashboards.py compares them).
_GROUP_LINE = "CASE WHEN m.role = 'station_input' THEN 0 ELSE m.line_id END"
_GROUPED = ("m.site_id = ? AND ((m.role = 'station_input' AND m.id = ?) OR "
            f"(m.role IN ({', '.join(repr(role) for role in LINE_ROLES)}) AND m.line_id IS NOT NULL))")
_UPSERT_LINES = (f"INSERT INTO line_interval_energy ({', '.join(LINE_COLUMNS)}) {{select}} "
                 "ON CONFLICT (site_id, step, start, role, line_id) DO UPDATE SET imp_wh = excluded.imp_wh, "
                 "exp_wh = excluded.exp_wh, meters = excluded.meters, intervals = excluded.intervals, "
                 "layout = excluded.layout")
_QUARTERS = _UPSERT_LINES.format(select=(
    f"SELECT ?, {QUARTER}, e.start, m.role, {_GROUP_LINE}, ?, SUM(e.imp_wh), SUM(e.exp_wh), COUNT(*), COUNT(*), ? "
    f"FROM interval_energy e JOIN meters m ON m.id = e.meter_id WHERE {_GROUPED} AND e.start IN ({{starts}}) "
    f"GROUP BY e.start, m.role, {_GROUP_LINE}"))
_DAY = _UPSERT_LINES.format(select=(
    f"SELECT ?, {DAY}, ?, m.role, {_GROUP_LINE}, ?, SUM(d.imp_wh), SUM(d.exp_wh), COUNT(*), SUM(d.intervals), ? "
    f"FROM daily_energy d JOIN meters m ON m.id = d.meter_id WHERE {_GROUPED} AND d.day = ? "
    f"GROUP BY m.role, {_GROUP_LINE}"))


def refresh_lines(db: Session, org_id: int, site_id: int, starts: Iterable[datetime]) -> None:
    """Sum the site's groups of meters again at these quarter-hours and over their Kyiv days (from the daily
    table, already summed again), in the caller's transaction."""
    starts = sorted(set(starts))
    if not starts:
        return
    postgres = db.connection().dialect.name == "postgresql"
    stored = (lambda moment: moment) if postgres else (lambda moment: moment.strftime(SQLITE_TIME))
    input_id, digest = site_layout(db, site_id)
    for n in range(0, len(starts), 500):
        chunk = starts[n:n + 500]
        driver_execute(db, _QUARTERS.replace("{starts}", ", ".join("?" * len(chunk))),
                       (site_id, org_id, digest, site_id, input_id or 0, *map(stored, chunk)))
    for day in sorted({kyiv_day(start) for start in starts}):
        driver_execute(db, _DAY, (site_id, stored(naive_day_bounds(day)[0]), org_id, digest, site_id, input_id or 0,
                                  day if postgres else day.isoformat()))


def rebuild_daily(db: Session, site: Site | None = None) -> int:
    """Recompute ``daily_energy`` from ``interval_energy`` — of one site, or of every site — day by day over
    the span the site's intervals cover (each day one set-based INSERT … SELECT). Returns the rows written."""
    sites = [site] if site is not None else list(db.scalars(select(Site).order_by(Site.id)))
    written = 0
    for one in sites:
        meters = select(Meter.id).where(Meter.site_id == one.id).scalar_subquery()
        db.execute(delete(DailyEnergy).where(DailyEnergy.meter_id.in_(meters)))
        db.execute(delete(LineIntervalEnergy).where(LineIntervalEnergy.site_id == one.id))
        db.execute(delete(VoltageDay).where(VoltageDay.meter_id.in_(meters)))
        input_id, digest = site_layout(db, one.id)
        first, last = db.execute(select(func.min(IntervalEnergy.start), func.max(IntervalEnergy.start))
                                 .where(IntervalEnergy.meter_id.in_(meters))).one()
        if first is None:
            rebuild_monthly(db, one.id)  # no intervals left: no months either
            continue
        day, last_day = kyiv_day(first), kyiv_day(last)
        while day <= last_day:
            low, high = naive_day_bounds(day)
            estimated = func.sum(case((IntervalEnergy.flag == "estimated", 1), else_=0))
            rows = (select(IntervalEnergy.meter_id, literal(day, DailyEnergy.day.type),
                           Meter.org_id, func.sum(IntervalEnergy.imp_wh), func.sum(IntervalEnergy.exp_wh),
                           func.count(), estimated)
                    .join(Meter, Meter.id == IntervalEnergy.meter_id)
                    .where(Meter.site_id == one.id, IntervalEnergy.start >= low, IntervalEnergy.start < high)
                    .group_by(IntervalEnergy.meter_id, Meter.org_id))
            result = db.execute(DailyEnergy.__table__.insert().from_select(
                ["meter_id", "day", "org_id", "imp_wh", "exp_wh", "intervals", "estimated"], rows))
            written += max(result.rowcount or 0, 0)
            db.execute(LineIntervalEnergy.__table__.insert().from_select(LINE_COLUMNS, sum_lines(
                one.id, one.org_id, input_id, digest, IntervalEnergy.start >= low, IntervalEnergy.start < high)))
            db.execute(LineIntervalEnergy.__table__.insert().from_select(LINE_COLUMNS, sum_line_day(
                one.id, one.org_id, input_id, digest, day)))
            day += timedelta(days=1)
        rebuild_monthly(db, one.id)
    return written


def rebuild_monthly(db: Session, site_id: int) -> None:
    """Recompute ``monthly_energy`` of a site's meters from their ``daily_energy``, a month at a time."""
    meters = select(Meter.id).where(Meter.site_id == site_id).scalar_subquery()
    db.execute(delete(MonthlyEnergy).where(MonthlyEnergy.meter_id.in_(meters)))
    first, last = db.execute(select(func.min(DailyEnergy.day), func.max(DailyEnergy.day))
                             .where(DailyEnergy.meter_id.in_(meters))).one()
    month = first.replace(day=1) if first is not None else None
    while month is not None and month <= last:
        low, high = month_bounds(month)
        rows = (select(DailyEnergy.meter_id, literal(low, MonthlyEnergy.month.type), DailyEnergy.org_id,
                       func.sum(DailyEnergy.imp_wh), func.sum(DailyEnergy.exp_wh), func.sum(DailyEnergy.intervals),
                       func.sum(DailyEnergy.estimated))
                .where(DailyEnergy.meter_id.in_(meters), DailyEnergy.day >= low, DailyEnergy.day < high)
                .group_by(DailyEnergy.meter_id, DailyEnergy.org_id))
        db.execute(MonthlyEnergy.__table__.insert().from_select(
            ["meter_id", "month", "org_id", "imp_wh", "exp_wh", "intervals", "estimated"], rows))
        month = high

