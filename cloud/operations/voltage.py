"""Voltage quality of a site's points over a Kyiv week (EN 50160, shared/voltage_quality.py): the phase voltages
the gateway sends with each reading (``voltage_l1`` … ``voltage_l3`` in a reading's ``q``) made into 10-minute
means and judged (through ``voltage_days``: each meter's day summed once, a week is seven rows), and the episodes the gateway reported as events (``voltage_over_voltage``,
``voltage_under_voltage``, ``voltage_interruption_short|long``), laid on a timeline. The worst points first."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import Integer, any_, bindparam, func, or_, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session

from cloud.dashboards.daily import QUARTER
from cloud.i18n import N_
from cloud.models import Account, Event, Line, LineIntervalEnergy, Meter, Reading, Site, VoltageDay
from shared.calendar import day_bounds, kyiv_day, kyiv_time, parse_iso
from shared.voltage_quality import Compliance, Limits, ten_minute_means

PHASES = ("l1", "l2", "l3")
VOLTAGE_KEYS = tuple(f"voltage_{phase}" for phase in PHASES)
# Keys built from data in the voltage templates: an episode's kind.
DATA_KEYS = (N_("voltage_over_voltage"), N_("voltage_under_voltage"), N_("voltage_interruption_short"),
             N_("voltage_interruption_long"))
TIMELINE_WIDTH = 700.0
ROW = 16.0


@dataclass(frozen=True)
class Week:
    monday: date
    start: datetime  # naive UTC
    end: datetime

    @classmethod
    def of(cls, day: date) -> Week:
        monday = day - timedelta(days=day.weekday())
        start, _ = day_bounds(monday)
        _, end = day_bounds(monday + timedelta(days=6))
        return cls(monday, start.replace(tzinfo=None), end.replace(tzinfo=None))

    @property
    def windows(self) -> int:
        """10-minute windows in the week: 1 008, or 1 002 / 1 014 when the clocks change."""
        return int((self.end - self.start).total_seconds() // 600)

    @property
    def days(self) -> list[tuple[date, float]]:
        """Each Kyiv day of the week and where it starts on the timeline (0–1)."""
        span = (self.end - self.start).total_seconds()
        return [(self.monday + timedelta(days=i),
                 (day_bounds(self.monday + timedelta(days=i))[0].replace(tzinfo=None) - self.start).total_seconds()
                 / span) for i in range(7)]


@dataclass(frozen=True)
class VoltageEpisode:
    meter: str
    phase: str
    kind: str  # over_voltage | under_voltage | interruption_short | interruption_long
    start: datetime
    end: datetime
    extreme_v: str


@dataclass(frozen=True)
class VoltagePoint:
    meter_id: int
    meter: str
    line: str
    account: str
    address: str
    phase: str
    compliance: Compliance
    episodes: int

    @property
    def rank(self) -> tuple:
        """Worst first: not compliant, then the least time within the band, then the most episodes."""
        return (self.compliance.compliant, self.compliance.within_band_pct, -self.episodes, self.meter, self.phase)

    def as_json(self) -> dict:
        return {"meter": self.meter, "line": self.line or None, "account": self.account or None,
                "phase": self.phase, "episodes": self.episodes, **self.compliance.as_json()}


@dataclass(frozen=True)
class VoltageReport:
    week: Week
    points: list[VoltagePoint]
    episodes: list[VoltageEpisode]

    def as_json(self) -> dict:
        return {"week": self.week.monday.isoformat(), "windows": self.week.windows,
                "points": [p.as_json() for p in self.points],
                "events": [{"meter": e.meter, "phase": e.phase, "kind": e.kind, "start": _iso(e.start),
                            "end": _iso(e.end), "extreme_v": e.extreme_v} for e in self.episodes]}

    def timeline(self) -> dict:
        """The events timeline as SVG geometry: a row per meter and phase with episodes, a bar per episode."""
        span = (self.week.end - self.week.start).total_seconds()
        rows = sorted({(e.meter, e.phase) for e in self.episodes})
        index = {row: i for i, row in enumerate(rows)}
        bars = []
        for e in self.episodes:
            x0 = max((e.start - self.week.start).total_seconds() / span, 0.0)
            x1 = min((e.end - self.week.start).total_seconds() / span, 1.0)
            bars.append({"x": round(x0 * TIMELINE_WIDTH, 1), "w": round(max((x1 - x0) * TIMELINE_WIDTH, 3.0), 1),
                         "y": index[(e.meter, e.phase)] * ROW + 4, "kind": e.kind,
                         "title": f"{e.meter} {e.phase.upper()}: {kyiv_time(e.start):%d.%m %H:%M}–"
                                  f"{kyiv_time(e.end):%H:%M}, {e.extreme_v} V"})
        return {"rows": [{"label": f"{m} {p.upper()}", "y": i * ROW + 14} for i, (m, p) in enumerate(rows)],
                "bars": bars, "height": max(len(rows), 1) * ROW + 22, "width": TIMELINE_WIDTH,
                "days": [{"x": round(at * TIMELINE_WIDTH, 1), "label": f"{day:%d.%m}"} for day, at in self.week.days]}


def _iso(ts: datetime) -> str:
    return ts.strftime("%Y-%m-%dT%H:%M:%SZ")


def id_scopes(db: Session, column, ids: list[int]) -> list:
    """``column`` among ``ids`` as few conditions as the database wants: one array parameter on PostgreSQL (thousands
    of bound ids cost more to plan than to run), lists of 900 on SQLite (its limit of bound variables)."""
    if db.get_bind().dialect.name == "postgresql":
        return [column == any_(bindparam(None, list(ids), type_=ARRAY(Integer)))] if ids else []
    return [column.in_(ids[n:n + 900]) for n in range(0, len(ids), 900)]


def newest_voltage_day(db: Session, meter_ids: list[int]) -> date | None:
    """The Kyiv day of the newest voltage event or gateway reading of these meters (where the page opens by
    default). Of a station's thousands of meters, first only what came since the hour before its newest
    quarter-hour of interval energy (through the indexes, a few rows a meter): found there, it is the newest of
    all; else (and for a resident's few meters) each meter's newest row through its index."""
    if not meter_ids:
        return None
    if len(meter_ids) > 50:
        sites = db.scalars(select(Meter.site_id).where(Meter.id.in_(meter_ids[:900])).distinct()).all()
        newest = max((found for site_id in sites if (found := db.scalar(  # one look at each site's primary key
            select(func.max(LineIntervalEnergy.start)).where(LineIntervalEnergy.site_id == site_id,
                                                             LineIntervalEnergy.step == QUARTER))) is not None),
                     default=None)
        if newest is not None:
            found = _newest_since(db, meter_ids, _as_datetime(newest) - timedelta(hours=1))
            if found is not None:
                return kyiv_day(found)
    event = (select(Event.ts).where(Event.meter_id == Meter.id, Event.kind.like("voltage_%"))
             .order_by(Event.ts.desc()).limit(1).correlate(Meter).scalar_subquery())
    reading = (select(Reading.ts).where(Reading.meter_id == Meter.id, Reading.source == "gateway")
               .order_by(Reading.ts.desc()).limit(1).correlate(Meter).scalar_subquery())
    found = []
    for scope in id_scopes(db, Meter.id, meter_ids):
        found += db.execute(select(func.max(event), func.max(reading)).where(scope)).one()
    found = [_as_datetime(ts) for ts in found if ts is not None]
    return kyiv_day(max(found)) if found else None


def _newest_since(db: Session, meter_ids: list[int], since: datetime) -> datetime | None:
    """The newest voltage event or gateway reading of these meters at or after ``since`` (None: nothing since)."""
    found = []
    for readings, events in zip(id_scopes(db, Reading.meter_id, meter_ids), id_scopes(db, Event.meter_id, meter_ids),
                                strict=True):
        found.append(db.scalar(select(func.max(Reading.ts)).where(
            readings, Reading.source == "gateway", Reading.ts >= since)))
        found.append(db.scalar(select(func.max(Event.ts)).where(
            events, Event.kind.like("voltage_%"), Event.ts >= since)))
    found = [_as_datetime(ts) for ts in found if ts is not None]
    return max(found) if found else None


def _as_datetime(value) -> datetime:
    return datetime.fromisoformat(value) if isinstance(value, str) else value  # SQLite's text from a max()


def phase_means(db: Session, meter_ids: list[int], week: Week) -> dict[tuple[int, str], list[tuple[datetime, float]]]:
    """The 10-minute means per meter and phase from the voltages in the gateway's readings of the week."""
    samples: dict[tuple[int, str], list[tuple[datetime, float]]] = {}
    if not meter_ids:
        return {}
    for meter_id, ts, values in db.execute(
            select(Reading.meter_id, Reading.ts, Reading.values).where(
                Reading.meter_id.in_(meter_ids), Reading.ts >= week.start, Reading.ts < week.end)):
        for phase, key in zip(PHASES, VOLTAGE_KEYS, strict=True):
            value = (values or {}).get(key)
            if value is None:
                continue
            try:
                samples.setdefault((meter_id, phase), []).append((ts, float(value)))
            except (TypeError, ValueError):
                continue
    return {point: ten_minute_means(found) for point, found in samples.items()}


@dataclass(frozen=True)
class DayFigures:
    """One phase over one Kyiv day: what ``weekly_compliance`` counts, in a form seven days add up in."""

    windows: int
    within_band: int
    within_limits: int
    minimum: float | None
    maximum: float | None


EN_50160 = Limits()


def day_figures(means: list[tuple[datetime, float]], limits: Limits = EN_50160) -> DayFigures:
    values = [v for _, v in means]
    upper, lower = limits.un * (1 + limits.upper_pct / 100), limits.un * (1 - limits.lower_pct / 100)
    return DayFigures(len(values), sum(limits.low <= v <= limits.high for v in values),
                      sum(lower <= v <= upper for v in values), min(values, default=None), max(values, default=None))


def week_compliance(days: list[DayFigures], expected: int) -> Compliance:
    """``weekly_compliance`` of the week's 10-minute means, from its days' figures (a window never spans two
    Kyiv days: they start on the hour)."""
    windows = sum(d.windows for d in days)
    if not windows:
        return Compliance(0, expected, 0.0, None, None, False, False)
    within = sum(d.within_band for d in days) * 100 / windows
    all_within = sum(d.within_limits for d in days) == windows
    return Compliance(windows, expected, within, min(d.minimum for d in days if d.windows),
                      max(d.maximum for d in days if d.windows), all_within, within >= 95.0 and all_within)


def computed_days(db: Session, meter_ids: list[int], week: Week) -> dict[tuple[int, date], dict[str, DayFigures]]:
    """Every (meter, Kyiv day) of the week, summed from the readings: its phases' figures (none: no voltage)."""
    found: dict[tuple[int, date], dict[str, DayFigures]] = {(m, d): {} for m in meter_ids for d, _ in week.days}
    for (meter_id, phase), means in phase_means(db, meter_ids, week).items():
        by_day: dict[date, list] = {}
        for ts, value in means:
            by_day.setdefault(kyiv_day(ts), []).append((ts, value))
        for day, day_means in by_day.items():
            found.setdefault((meter_id, day), {})[phase] = day_figures(day_means)
    return found


def stored_days(db: Session, meter_ids: list[int], week: Week) -> dict[tuple[int, date], dict[str, DayFigures]]:
    found: dict[tuple[int, date], dict[str, DayFigures]] = {}
    for scope in id_scopes(db, VoltageDay.meter_id, meter_ids):
        for meter_id, day, phase, windows, band, limits, low, high in db.execute(
                select(VoltageDay.meter_id, VoltageDay.day, VoltageDay.phase, VoltageDay.windows,
                       VoltageDay.within_band, VoltageDay.within_limits, VoltageDay.minimum, VoltageDay.maximum)
                .where(scope, VoltageDay.day >= week.monday,
                       VoltageDay.day <= week.monday + timedelta(days=6))):
            figures = found.setdefault((meter_id, day), {})
            if phase:
                figures[phase] = DayFigures(windows, band, limits, low, high)
    return found


def missing_meters(db: Session, meter_ids: list[int], week: Week) -> list[int]:
    """The meters with a day of the week not yet summed into ``voltage_days``."""
    summed: dict[int, int] = {}
    for scope in id_scopes(db, VoltageDay.meter_id, meter_ids):
        days = (select(VoltageDay.meter_id, VoltageDay.day)
                .where(scope, VoltageDay.day >= week.monday,
                       VoltageDay.day <= week.monday + timedelta(days=6))
                .group_by(VoltageDay.meter_id, VoltageDay.day).subquery())
        summed |= dict(db.execute(select(days.c.meter_id, func.count()).group_by(days.c.meter_id)).all())
    return [m for m in meter_ids if summed.get(m, 0) < 7]


def store_voltage_days(db: Session, org_id: int, meter_ids: list[int], week: Week) -> int:
    """Sum the week's days not yet in ``voltage_days`` from the readings and add them (not committed: the page
    commits under the write lock). Returns the meters summed."""
    missing = missing_meters(db, meter_ids, week)
    if not missing:
        return 0
    have = stored_days(db, missing, week)
    rows = []
    for (meter_id, day), phases in computed_days(db, missing, week).items():
        if (meter_id, day) in have:
            continue
        rows += [{"meter_id": meter_id, "day": day, "phase": phase, "org_id": org_id, "windows": f.windows,
                  "within_band": f.within_band, "within_limits": f.within_limits, "minimum": f.minimum,
                  "maximum": f.maximum} for phase, f in phases.items()] or [
            {"meter_id": meter_id, "day": day, "phase": "", "org_id": org_id, "windows": 0, "within_band": 0,
             "within_limits": 0, "minimum": None, "maximum": None}]
    # Two looks at the same week at once sum the same days: the second one's rows are the same, and skipped.
    dialect = postgresql if db.connection().dialect.name == "postgresql" else sqlite
    for n in range(0, len(rows), 2000):
        db.execute(dialect.insert(VoltageDay).on_conflict_do_nothing(), rows[n:n + 2000])
    return len(missing)


def stored_weeks(db: Session, meter_ids: list[int], week: Week) -> dict[tuple[int, str], DayFigures]:
    """Per meter and phase, the week's stored days summed in the database (one row a point, not seven): the
    meters given must have every day of the week stored."""
    found: dict[tuple[int, str], DayFigures] = {}
    for scope in id_scopes(db, VoltageDay.meter_id, meter_ids):
        for meter_id, phase, windows, band, limits, low, high in db.execute(
                select(VoltageDay.meter_id, VoltageDay.phase, func.sum(VoltageDay.windows),
                       func.sum(VoltageDay.within_band), func.sum(VoltageDay.within_limits),
                       func.min(VoltageDay.minimum), func.max(VoltageDay.maximum))
                .where(scope, VoltageDay.day >= week.monday,
                       VoltageDay.day <= week.monday + timedelta(days=6), VoltageDay.phase != "")
                .group_by(VoltageDay.meter_id, VoltageDay.phase)):
            found[(meter_id, phase)] = DayFigures(int(windows), int(band), int(limits), low, high)
    return found


def week_figures(db: Session, meter_ids: list[int], week: Week,
                 stored: bool = False) -> dict[tuple[int, str], list[DayFigures]]:
    """Per meter and phase, its days' figures: the stored week summed (one figure), or, for a meter with a day
    not stored yet, its days — stored, or summed now from the readings. ``stored``: the caller has just stored
    every day of the week (``store_voltage_days``), so none is looked for."""
    missing = set() if stored else set(missing_meters(db, meter_ids, week))
    found = {key: [figures] for key, figures in
             stored_weeks(db, [m for m in meter_ids if m not in missing], week).items()}
    if missing:
        ids = [m for m in meter_ids if m in missing]
        days = stored_days(db, ids, week)
        fresh = computed_days(db, [m for m in ids if any((m, d) not in days for d, _ in week.days)], week)
        days.update({key: value for key, value in fresh.items() if key not in days})
        for (meter_id, _), phases in days.items():
            for phase, figures in phases.items():
                found.setdefault((meter_id, phase), []).append(figures)
    return found


def episodes(db: Session, meters: dict[int, str], week: Week) -> list[VoltageEpisode]:
    """The voltage events the gateway sent for these meters that touch the week, oldest first."""
    if not meters:
        return []
    found = []
    for meter_id, ts, kind, detail in db.execute(
            select(Event.meter_id, Event.ts, Event.kind, Event.detail).where(
                or_(*id_scopes(db, Event.meter_id, list(meters))), Event.kind.like("voltage_%"),
                Event.ts >= week.start - timedelta(days=7), Event.ts < week.end + timedelta(days=1))
            .order_by(Event.ts, Event.id)):
        detail = detail or {}
        try:
            start = parse_iso(detail["start"]).replace(tzinfo=None) if "start" in detail else ts
            end = parse_iso(detail["end"]).replace(tzinfo=None) if "end" in detail else ts
        except (TypeError, ValueError):
            start = end = ts
        if end < week.start or start >= week.end:
            continue
        found.append(VoltageEpisode(meters[meter_id], str(detail.get("phase", "l1")), kind.removeprefix("voltage_"),
                                    start, end, str(detail.get("extreme_v", ""))))
    return found


def voltage_report(db: Session, meters: list[tuple[int, str, str, str, str]], week: Week,
                   stored: bool = False) -> VoltageReport:
    """``meters``: (id, code, line, account, address). Every phase with a voltage or an event is a point."""
    codes = {m[0]: m[1] for m in meters}
    about = {m[0]: m for m in meters}
    figures = week_figures(db, list(codes), week, stored)
    found = episodes(db, codes, week)
    counts: dict[tuple[str, str], int] = {}
    for e in found:
        counts[(e.meter, e.phase)] = counts.get((e.meter, e.phase), 0) + 1
    ids_of: dict[str, list[int]] = {}
    for mid, code in codes.items():
        ids_of.setdefault(code, []).append(mid)
    keys = set(figures) | {(mid, e.phase) for e in found for mid in ids_of.get(e.meter, ())}
    points = [VoltagePoint(mid, codes[mid], about[mid][2], about[mid][3], about[mid][4], phase,
                           week_compliance(figures.get((mid, phase), []), week.windows),
                           counts.get((codes[mid], phase), 0)) for mid, phase in keys]
    return VoltageReport(week, sorted(points, key=lambda p: p.rank), found)


def site_meters(db: Session, site: Site) -> list[tuple[int, str, str, str, str]]:
    return [tuple(row) for row in db.execute(
        select(Meter.id, Meter.code, func.coalesce(Line.number, ""), func.coalesce(Account.number, ""),
               func.coalesce(Account.address, ""))
        .outerjoin(Line, Line.id == Meter.line_id).outerjoin(Account, Account.id == Meter.account_id)
        .where(Meter.site_id == site.id).order_by(Meter.code))]


def account_meters(db: Session, account: Account) -> list[tuple[int, str, str, str, str]]:
    return [tuple(row) for row in db.execute(
        select(Meter.id, Meter.code, func.coalesce(Line.number, ""), func.coalesce(Account.number, ""),
               func.coalesce(Account.address, ""))
        .outerjoin(Line, Line.id == Meter.line_id).join(Account, Account.id == Meter.account_id)
        .where(Meter.account_id == account.id).order_by(Meter.code))]


def parse_week(text: str, default: date) -> Week:
    """``YYYY-MM-DD`` (any day of the week wanted) → that Kyiv week; ValueError names the field."""
    if not text:
        return Week.of(default)
    try:
        return Week.of(date.fromisoformat(text))
    except ValueError as exc:
        raise ValueError(f"week must be a date YYYY-MM-DD, got {text[:40]!r}") from exc
