"""The time series the drill-down pages draw: a station, its lines and its meters over any span of Kyiv days,
by 15-minute interval (a span of up to a week) or by day (from the daily pre-aggregate, cloud/dashboards/daily.py).

Every bucket's balance is decided by the same rule as the month's (shared/balance.py, through the site's
thresholds as cloud/sites/balance.py reads them): the meters of a line are summed in SQL per bucket and role,
and the sums go through ``station_balance`` as one feeder and one «subscribers» meter per line. A bucket where
a meter's data is missing is a gap (None) and ``incomplete`` — never theft.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal

from sqlalchemy import String, and_, case, func, or_, select, type_coerce
from sqlalchemy.orm import Session

from cloud.billing.errors import BillingError
from cloud.billing.tariff_grid import Tariffs
from cloud.dashboards.daily import DAY, QUARTER, month_bounds, naive_day_bounds, site_layout
from cloud.models import (
    DailyEnergy,
    IntervalEnergy,
    Line,
    LineIntervalEnergy,
    Meter,
    MonthlyEnergy,
    Reading,
    Site,
)
from cloud.sites.balance import site_topology
from shared.balance import (
    ELEVATED,
    INCOMPLETE,
    NORMAL,
    SUSPECTED_THEFT,
    LineBalance,
    LineTopology,
    MeterEnergy,
    StationBalance,
    StationTopology,
    Thresholds,
    line_balance,
    station_balance,
)
from shared.calendar import as_utc, parse_period

STEP = timedelta(minutes=15)
KINDS = ("day", "week", "month", "year", "custom")
LONGEST_DAYS = 3 * 366  # a custom span: three years of days is the most a chart shows
FLAGGED = (SUSPECTED_THEFT, ELEVATED)


class SpanError(ValueError):
    """A span asked for that is no span: carries the field and a catalogue key for the page."""

    def __init__(self, message: str, field: str, key: str):
        super().__init__(message)
        self.field, self.key = field, key


@dataclass(frozen=True)
class Span:
    """Kyiv calendar days ``first``–``last`` (inclusive), as asked: a day, a week, a month, a year or custom."""

    kind: str
    first: date
    last: date

    @property
    def bounds(self) -> tuple[datetime, datetime]:
        """[start, end) in naive UTC, the cloud's columns' form."""
        return naive_day_bounds(self.first)[0], naive_day_bounds(self.last)[1]

    @property
    def by_interval(self) -> bool:
        return (self.last - self.first).days < 7

    @property
    def days(self) -> list[date]:
        return [self.first + timedelta(days=n) for n in range((self.last - self.first).days + 1)]

    def query(self) -> dict[str, str]:
        """The URL arguments that name this span again."""
        return {"span": "custom", "from": self.first.isoformat(), "to": self.last.isoformat()}


def _date(text: str, field: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise SpanError(f"{field} must be a date YYYY-MM-DD, got {text!r}", field, "err_span_date") from None


def parse_span(args, today: date) -> Span:
    """The span of a page's URL: ``span`` = day | week | month | year (``at`` one day of it, or YYYY-MM, YYYY)
    or custom (``from``, ``to``, Kyiv dates). Without ``span``: the month of ``today``."""
    kind = args.get("span") or "month"
    at = (args.get("at") or "").strip()
    if kind not in KINDS:
        raise SpanError(f"span must be one of {', '.join(KINDS)}, got {kind!r}", "span", "err_span_kind")
    if kind == "custom":
        first, last = _date(args.get("from") or "", "from"), _date(args.get("to") or "", "to")
        if last < first:
            raise SpanError("to must not be before from", "to", "err_span_order")
        if (last - first).days >= LONGEST_DAYS:
            raise SpanError(f"a span is at most {LONGEST_DAYS} days", "to", "err_span_long")
        return Span(kind, first, last)
    if kind == "month":
        try:
            year, month = parse_period(at[:7]) if at else (today.year, today.month)
        except ValueError:
            raise SpanError(f"at must be YYYY-MM, got {at!r}", "at", "err_span_month") from None
        first = date(year, month, 1)
        return Span(kind, first, date(year + month // 12, month % 12 + 1, 1) - timedelta(days=1))
    if kind == "year":
        if at and not (at[:4].isdigit() and 1900 <= int(at[:4]) <= 2999):
            raise SpanError(f"at must be a year YYYY, got {at!r}", "at", "err_span_year")
        year = int(at[:4]) if at else today.year
        return Span(kind, date(year, 1, 1), date(year, 12, 31))
    day = _date(at, "at") if at else today
    if kind == "week":
        monday = day - timedelta(days=day.weekday())
        return Span(kind, monday, monday + timedelta(days=6))
    return Span(kind, day, day)


def thresholds(site: Site) -> Thresholds:
    return Thresholds(Decimal(site.elevated_pct), Decimal(site.theft_pct))


def intervals_in(day: date) -> int:
    """Quarter-hours in a Kyiv day: 92, 96 or 100."""
    start, end = naive_day_bounds(day)
    return int((end - start) / STEP)


def buckets(span: Span) -> list[datetime]:
    """Every bucket's start (naive UTC): each quarter-hour, or each Kyiv midnight."""
    if not span.by_interval:
        return [naive_day_bounds(day)[0] for day in span.days]
    start, end = span.bounds
    return [start + STEP * n for n in range(int((end - start) / STEP))]


def epoch(ts: datetime) -> int:
    return int(as_utc(ts).timestamp())


# ---- what the meters sent, summed per bucket ----------------------------------------------------------------

def _summed_rows(db: Session, site: Site, span: Span, line_id: int | None = None) -> Iterator[tuple] | None:
    """``_group_rows`` from the pre-summed ``line_interval_energy``, or None when those rows cannot be trusted for
    the span: summed under another layout of the meters, none there, or, by quarter-hour, not adding up to the
    groups' days (rows missing or not yet rebuilt). The days are summed from the daily table in the same
    transaction that writes it, so by day their layout is all that is checked (a check against a year of daily
    rows would cost what it saves). The rows are fetched in one go (a week is 672 × groups)."""
    start, end = span.bounds
    input_id, digest = site_layout(db, site.id)
    step = QUARTER if span.by_interval else DAY
    scope = [LineIntervalEnergy.site_id == site.id, LineIntervalEnergy.step == step,
             LineIntervalEnergy.start >= start, LineIntervalEnergy.start < end]
    if line_id is not None:
        scope += [LineIntervalEnergy.line_id == line_id, LineIntervalEnergy.role != "station_input"]
    summed = db.execute(select(func.count(), func.coalesce(func.sum(LineIntervalEnergy.intervals), 0),
                               func.coalesce(func.sum(LineIntervalEnergy.imp_wh), 0),
                               func.coalesce(func.sum(LineIntervalEnergy.exp_wh), 0),
                               func.coalesce(func.max(LineIntervalEnergy.layout), 0),
                               func.coalesce(func.min(LineIntervalEnergy.layout), 0)).where(*scope)).one()
    if summed[0] and (int(summed[4]), int(summed[5])) != (digest, digest):
        return None
    if span.by_interval:
        # The quarter-hours must add up to the same groups' Kyiv days, which are summed from the daily table in
        # the transaction that writes it: a read of 7 × groups rows, where the daily table's own would be 7 × meters.
        days = db.execute(select(func.coalesce(func.sum(LineIntervalEnergy.intervals), 0),
                                 func.coalesce(func.sum(LineIntervalEnergy.imp_wh), 0),
                                 func.coalesce(func.sum(LineIntervalEnergy.exp_wh), 0))
                          .where(LineIntervalEnergy.step == DAY, *scope[:1], *scope[2:])).one()
        if not summed[0] or tuple(int(v) for v in summed[1:4]) != tuple(int(v) for v in days):
            return None
    elif not summed[0]:
        return None
    # The instant as the database has it: SQLite's text is parsed once per bucket, not once per row.
    when = type_coerce(LineIntervalEnergy.start, String) if db.get_bind().dialect.name == "sqlite" \
        else LineIntervalEnergy.start
    rows = db.connection().execute(select(when, LineIntervalEnergy.role, LineIntervalEnergy.line_id,
                                          LineIntervalEnergy.imp_wh, LineIntervalEnergy.exp_wh,
                                          LineIntervalEnergy.intervals, LineIntervalEnergy.meters).where(*scope)).all()
    days = None if span.by_interval else {naive_day_bounds(day)[0]: day for day in span.days}
    return _as_group_rows(rows, input_id, days)


def _as_group_rows(rows, input_id: int | None, days: dict[datetime, date] | None) -> Iterator[tuple]:
    """The pre-summed rows as ``_group_rows`` gives them: by day, the bucket is the Kyiv date."""
    instants: dict = {}
    for at, role, line, imp, exp, intervals, meters in rows:
        if at not in instants:
            instant = datetime.fromisoformat(at) if isinstance(at, str) else at
            instants[at] = instant if days is None else days.get(instant)
        bucket = instants[at]
        if bucket is None:
            continue
        if role == "station_input":
            yield bucket, role, None, input_id, imp, exp, intervals, meters
        else:
            yield bucket, role, line, None, imp, exp, intervals, meters


def _group_rows(db: Session, site: Site, span: Span, meter_ids: list[int] | None = None,
                line_id: int | None = None):
    """(bucket start, meter role, line id, the input meter's id or None, Σ import Wh, Σ export Wh, Σ intervals,
    meters) per bucket and group of meters — of one line's meters only, with ``line_id``. From the pre-summed
    ``line_interval_energy`` when it holds the span, else by day from ``daily_energy`` and by interval from
    ``interval_energy``."""
    if meter_ids is None:
        summed = _summed_rows(db, site, span, line_id)
        if summed is not None:
            return summed
    start, end = span.bounds
    input_id = case((Meter.role == "station_input", Meter.id), else_=None)
    if span.by_interval:
        source, when, count = IntervalEnergy, IntervalEnergy.start, func.count()
        scope = (IntervalEnergy.start >= start, IntervalEnergy.start < end)
    else:
        source, when, count = DailyEnergy, DailyEnergy.day, func.sum(DailyEnergy.intervals)
        scope = (DailyEnergy.day >= span.first, DailyEnergy.day <= span.last)
    query = (select(when, Meter.role, Meter.line_id, input_id, func.sum(source.imp_wh), func.sum(source.exp_wh),
                    count, func.count()).join(Meter, Meter.id == source.meter_id)
             .where(Meter.site_id == site.id, *scope).group_by(when, Meter.role, Meter.line_id, input_id))
    if meter_ids is not None:
        query = query.where(Meter.id.in_(meter_ids))
    if line_id is not None:
        query = query.where(Meter.line_id == line_id, Meter.role != "station_input")
    return db.connection().execute(query).all()


@dataclass(frozen=True)
class Layout:
    """The site's meters as the series need them: the real topology (for the span's totals) and, per line,
    how many feeders and subscribers it has (to tell a complete bucket)."""

    topology: StationTopology
    codes: dict[int, str]
    line_ids: dict[int, str]  # line id → number
    input_id: int | None
    feeders: dict[str, int]
    subscribers: dict[str, int]


def layout(db: Session, site: Site) -> Layout:
    topology, codes = site_topology(db, site)
    lines = dict(db.execute(select(Line.id, Line.number).where(Line.site_id == site.id)).all())
    input_id = db.scalar(select(Meter.id).where(Meter.site_id == site.id, Meter.role == "station_input")
                         .order_by(Meter.id).limit(1))
    counts = db.execute(select(Meter.line_id, Meter.role, func.count()).where(Meter.site_id == site.id)
                        .group_by(Meter.line_id, Meter.role)).all()
    feeders = {lines[lid]: n for lid, role, n in counts if role == "feeder" and lid in lines}
    subscribers = {lines[lid]: n for lid, role, n in counts if role == "subscriber" and lid in lines}
    return Layout(topology, codes, lines, input_id, feeders, subscribers)


def _bucket_topology(shape: Layout) -> StationTopology:
    """The station as one «meter» per line role: a line's feeder, and all its subscribers together."""
    return StationTopology("input" if shape.input_id else None, tuple(
        LineTopology(line.line, f"feeder:{line.line}" if line.feeder else None,
                     (f"subscribers:{line.line}",) if line.subscribers else ())
        for line in shape.topology.lines))


def bucket_groups(db: Session, site: Site, span: Span, shape: Layout,
                  only_line: str | None = None) -> dict[datetime, dict[str, tuple[int, int, bool]]]:
    """Per bucket start: each group of meters («input», «feeder:N», «subscribers:N») as (Σ import Wh, Σ export Wh,
    every meter of the group there for the whole bucket) — only the line ``only_line``'s groups when given."""
    by_interval = span.by_interval
    # Per Kyiv day, once: its midnight and its quarter-hours (a year's chart has thousands of rows, 365 days).
    day_start = {} if by_interval else {day: naive_day_bounds(day)[0] for day in span.days}
    expected_day = {} if by_interval else {day: intervals_in(day) for day in span.days}
    groups: dict[datetime, dict[str, tuple[int, int, bool]]] = {}
    line_of = {number: lid for lid, number in shape.line_ids.items()}
    names = {}  # (role, line id) → (group name, meters it should have)
    for lid, line in shape.line_ids.items():
        names[("feeder", lid)] = (f"feeder:{line}", shape.feeders.get(line, 0))
        names[("subscriber", lid)] = (f"subscribers:{line}", shape.subscribers.get(line, 0))
    rows = _group_rows(db, site, span, line_id=line_of.get(only_line, 0) if only_line is not None else None)
    for when, role, line_id, input_id, imp, exp, intervals, meters in rows:
        if isinstance(when, str):  # SQLite's DATE or DATETIME text, should the driver hand it back raw
            when = datetime.fromisoformat(when) if by_interval else date.fromisoformat(when)
        if by_interval:
            start, per_meter = when, 1
        else:
            start, per_meter = day_start[when], expected_day[when]
        if role == "station_input":
            if input_id != shape.input_id:
                continue
            name, wanted = "input", 1
        else:
            found = names.get((role, line_id))
            if found is None:
                continue
            name, wanted = found
        groups.setdefault(start, {})[name] = (int(imp), int(exp), meters == wanted and int(intervals) == wanted * per_meter)
    return groups


def _topology(shape: Layout, only_line: str | None) -> StationTopology:
    topology = _bucket_topology(shape)
    if only_line is not None:
        topology = StationTopology(None, tuple(line for line in topology.lines if line.line == only_line))
    return topology


def bucket_balances(db: Session, site: Site, span: Span, shape: Layout,
                    only_line: str | None = None) -> list[tuple[datetime, StationBalance]]:
    """The station's balance in every bucket of the span, gaps included (a bucket without data is
    ``incomplete``). ``only_line``: that line's balance alone (the station's figures are then not the site's)."""
    groups = {start: {name: MeterEnergy(Decimal(imp).scaleb(-3), Decimal(exp).scaleb(-3), complete=complete)
                      for name, (imp, exp, complete) in found.items()}
              for start, found in bucket_groups(db, site, span, shape, only_line).items()}
    topology, limits = _topology(shape, only_line), thresholds(site)
    return [(start, station_balance(topology, groups.get(start, {}), limits)) for start in buckets(span)]


# ---- the same balance in whole Wh, for the charts' hundreds of buckets ---------------------------------------
# ``station_balance`` in Decimal kWh costs some 100 µs a bucket; a week's chart has 672 of them. These give the
# same figures from integer Wh (tests/cloud/test_dashboards.py holds them to ``station_balance``, bucket by bucket).

class LineFigures:
    __slots__ = ("feeder_wh", "line", "loss_pct10", "loss_wh", "status", "subscribers_wh")

    def __init__(self, line, feeder_wh, subscribers_wh, loss_wh, loss_pct10, status):
        self.line, self.feeder_wh, self.subscribers_wh = line, feeder_wh, subscribers_wh
        self.loss_wh, self.loss_pct10, self.status = loss_wh, loss_pct10, status


class StationFigures:
    __slots__ = ("feeders_wh", "input_wh", "lines", "loss_pct10", "loss_wh", "missing", "status")

    def __init__(self, input_wh, feeders_wh, loss_wh, loss_pct10, status, lines, missing):
        self.input_wh, self.feeders_wh, self.loss_wh, self.loss_pct10 = input_wh, feeders_wh, loss_wh, loss_pct10
        self.status, self.lines, self.missing = status, lines, missing


def pct10(loss: int, base: int) -> int:
    """``shared.balance.loss_percent`` in tenths of a percent: loss × 100 / base, one decimal, half away from 0."""
    if base == 0:
        return 0
    quotient, rest = divmod(abs(loss) * 1000, abs(base))
    if 2 * rest >= abs(base):
        quotient += 1
    return -quotient if (loss < 0) != (base < 0) else quotient


def _status(limits: Thresholds, tenths: int) -> str:
    hundredths = tenths * 10
    theft, elevated = int(limits.theft_pct * 100), int(limits.elevated_pct * 100)
    if hundredths >= theft:
        return SUSPECTED_THEFT
    if hundredths >= elevated or hundredths <= -elevated:
        return ELEVATED
    return NORMAL


def station_figures(topology: StationTopology, groups: dict[str, tuple[int, int, bool]],
                    limits: Thresholds) -> StationFigures:
    """``station_balance`` of one bucket's groups, in Wh."""
    lines, feeders, missing = [], 0, False
    for line in topology.lines:
        subscribers = line.subscribers[0] if line.subscribers else None
        fed = groups.get(line.feeder) if line.feeder else None
        used = groups.get(subscribers) if subscribers else None
        used_wh = used[0] - used[1] if used else 0
        line_missing = (line.feeder is not None and (fed is None or not fed[2])) or \
            (subscribers is not None and (used is None or not used[2]))
        if line.feeder is None:
            lines.append(LineFigures(line.line, None, used_wh, None, None, INCOMPLETE if line_missing else NORMAL))
            feeders += used_wh
            missing = missing or line_missing
            continue
        if fed is None:
            lines.append(LineFigures(line.line, None, used_wh, None, None, INCOMPLETE))
            missing = True
            continue
        fed_wh = fed[0] - fed[1]
        tenths = pct10(fed_wh - used_wh, fed_wh)
        lines.append(LineFigures(line.line, fed_wh, used_wh, fed_wh - used_wh, tenths,
                                 INCOMPLETE if line_missing else _status(limits, tenths)))
        feeders += fed_wh
        missing = missing or not fed[2]
    source = groups.get(topology.input_meter) if topology.input_meter else None
    if source is None:
        return StationFigures(None, feeders, None, None, INCOMPLETE, lines, missing or topology.input_meter is not None)
    missing = missing or not source[2]
    input_wh = source[0] - source[1]
    tenths = pct10(input_wh - feeders, input_wh)
    return StationFigures(input_wh, feeders, input_wh - feeders, tenths,
                          INCOMPLETE if missing else _status(limits, tenths), lines, missing)


def bucket_figures(db: Session, site: Site, span: Span, shape: Layout,
                   only_line: str | None = None) -> list[tuple[datetime, StationFigures]]:
    """``bucket_balances`` in Wh: the same statuses and losses, for the charts."""
    groups = bucket_groups(db, site, span, shape, only_line)
    topology, limits = _topology(shape, only_line), thresholds(site)
    return [(start, station_figures(topology, groups.get(start, {}), limits)) for start in buckets(span)]


def month_figures(db: Session, site: Site, months: list[Span], shape: Layout) -> list[StationFigures]:
    """The station's balance in each of these consecutive months (at most a year), from the per-day sums of its
    groups of meters (a year is 365 × groups rows, not every meter's months): the same loss and status as
    ``span_balance`` of each month, a group complete only when it is complete on every day of the month."""
    by_day = bucket_groups(db, site, Span("custom", months[0].first, months[-1].last), shape)
    topology, limits = _topology(shape, None), thresholds(site)
    found = []
    for month in months:
        summed: dict[str, list] = {}
        starts = [naive_day_bounds(day)[0] for day in month.days]
        for start in starts:
            for name, (imp, exp, complete) in by_day.get(start, {}).items():
                entry = summed.setdefault(name, [0, 0, 0])
                entry[0] += imp
                entry[1] += exp
                entry[2] += complete
        groups = {name: (imp, exp, days == len(starts)) for name, (imp, exp, days) in summed.items()}
        found.append(station_figures(topology, groups, limits))
    return found


def span_parts(span: Span) -> tuple[list[date], list[tuple[date, date]]]:
    """The span as the whole Kyiv months inside it (their first days) and the runs of days outside them (at most a
    head and a tail): the months are read from ``monthly_energy``, the rest from ``daily_energy``."""
    months, rest = [], []
    day = span.first
    while day <= span.last:
        low, high = month_bounds(day)
        last = min(high - timedelta(days=1), span.last)
        if day == low and last == high - timedelta(days=1):
            months.append(low)
        else:
            rest.append((day, last))
        day = high
    return months, rest


def energy_sums(db: Session, site: Site, span: Span, meter_ids: list[int] | None = None,
                by_code: bool = False) -> dict[int | str, tuple[int, int, int, int]]:
    """Per meter id (its code with ``by_code``): Σ import Wh, Σ export Wh, intervals and estimated intervals over
    the span — the whole months from their monthly rows, the other days from their daily rows."""
    months, rest = span_parts(span)
    parts = []
    if months:
        parts.append((MonthlyEnergy, MonthlyEnergy.month.in_(months)))
    if rest:
        parts.append((DailyEnergy, or_(*(and_(DailyEnergy.day >= low, DailyEnergy.day <= high) for low, high in rest))))
    found: dict[int | str, tuple[int, int, int, int]] = {}
    for table, when in parts:
        key = Meter.code if by_code else table.meter_id
        query = (select(key, func.sum(table.imp_wh), func.sum(table.exp_wh), func.sum(table.intervals),
                        func.sum(table.estimated))
                 .join(Meter, Meter.id == table.meter_id).where(Meter.site_id == site.id, when).group_by(key))
        if meter_ids is not None:
            query = query.where(table.meter_id.in_(meter_ids))
        for name, imp, exp, count, estimated in db.execute(query):
            sums = (int(imp), int(exp), int(count), int(estimated))
            before = found.get(name)
            found[name] = sums if before is None else tuple(x + y for x, y in zip(before, sums, strict=True))
    return found


def span_energies(db: Session, site: Site, span: Span, meter_ids: list[int] | None = None) -> dict[str, MeterEnergy]:
    """Σ per meter over the span from the monthly and daily tables: what ``cloud.sites.balance.meter_energy`` sums
    from the intervals, for a whole-day span (of these meters only, with ``meter_ids``)."""
    expected = sum(intervals_in(day) for day in span.days)
    return {code: MeterEnergy(Decimal(imp).scaleb(-3), Decimal(exp).scaleb(-3), complete=count == expected,
                              estimated=bool(estimated))
            for code, (imp, exp, count, estimated) in energy_sums(db, site, span, meter_ids, by_code=True).items()}


def span_balance(db: Session, site: Site, span: Span, shape: Layout | None = None) -> StationBalance:
    """The station's balance over the whole span (for a month: the same as ``site_balance``)."""
    shape = shape or layout(db, site)
    return station_balance(shape.topology, span_energies(db, site, span), thresholds(site))


def span_line_balance(db: Session, site: Site, span: Span, number: str, meter_ids: list[int],
                      shape: Layout | None = None) -> LineBalance | None:
    """One line's balance over the span, from its own meters (``meter_ids``) only: the line of ``span_balance``."""
    shape = shape or layout(db, site)
    line = next((line for line in shape.topology.lines if line.line == number), None)
    if line is None:
        return None
    return line_balance(line, span_energies(db, site, span, meter_ids), thresholds(site))


def purchase_price(db: Session, site: Site, span: Span) -> Decimal | None:
    """UAH per kWh the organisation buys at on the span's last day, as its billing run takes it (the general
    electricity tariff); None without one."""
    start, end = span.bounds
    try:
        periods = Tariffs(db, site.org_id, start, end).for_period(False, "", span.last, span.last)
    except BillingError:
        return None
    return periods[-1].price if periods else None


# ---- the charts' JSON (the format: the comment at the top of cloud/static/charts.js) -------------------------

def _flags(starts: list[datetime], statuses: list[str], end: datetime) -> list[dict]:
    """Runs of flagged buckets as marked regions: [from, to) in epoch seconds, with their status. A bucket ends
    where the next begins (a Kyiv day of 25 hours is 25 hours wide)."""
    found: list[dict] = []
    ends = [*starts[1:], end]
    for start, stop, status in zip(starts, ends, statuses, strict=True):
        at, to = epoch(start), epoch(stop)
        if status in FLAGGED:
            if found and found[-1]["status"] == status and found[-1]["to"] == at:
                found[-1]["to"] = to
            else:
                found.append({"from": at, "to": to, "status": status})
    return found


def chart(x: list[datetime], series: list[tuple[str, str, list]], flags: list[dict] | None = None,
          step: int = 900, kind: str = "line") -> dict:
    return {"x": [epoch(t) for t in x], "step": step, "kind": kind,
            "series": [{"label": label, "unit": unit} for label, unit, _ in series],
            "y": [values for _, _, values in series], "flags": flags or []}


def _wh(value: int | None) -> float | None:
    return None if value is None else value / 1000  # as float(Decimal kWh): the nearest double either way


def _worst(figures: StationFigures) -> str:
    """What a bucket of the station is flagged as: theft on any line, else elevated on any, else its own."""
    statuses = {line.status for line in figures.lines}
    return next((s for s in FLAGGED if s in statuses), figures.status)


def station_chart(db: Session, site: Site, span: Span, words: dict[str, str]) -> dict:
    """Station input, Σ line feeders and the station's loss per bucket; flagged where a line is."""
    shape = layout(db, site)
    found = bucket_figures(db, site, span, shape)
    step = 900 if span.by_interval else 86400
    starts = [s for s, _ in found]
    return chart(starts, [
        (words["station_input"], "kWh", [_wh(b.input_wh) if not b.missing else None for _, b in found]),
        (words["feeders_sum"], "kWh", [_wh(b.feeders_wh) if not b.missing else None for _, b in found]),
        (words["loss_kwh"], "kWh", [_wh(b.loss_wh) if b.status != INCOMPLETE else None for _, b in found]),
    ], _flags(starts, [_worst(b) for _, b in found], span.bounds[1]), step)


def lines_chart(db: Session, site: Site, span: Span, words: dict[str, str]) -> dict:
    """Each line's loss % per bucket, lines against each other."""
    shape = layout(db, site)
    found = bucket_figures(db, site, span, shape)
    step = 900 if span.by_interval else 86400
    numbers = [line.line for line in shape.topology.lines if line.feeder]
    index = {line.line: i for i, line in enumerate(shape.topology.lines)}
    series = []
    for number in numbers:
        at = index[number]
        series.append((f"{words['line']} {number}", "%", [
            None if (line := b.lines[at]).status == INCOMPLETE or line.loss_pct10 is None else line.loss_pct10 / 10
            for _, b in found]))
    return chart([s for s, _ in found], series, [], step)


def line_chart(db: Session, site: Site, number: str, span: Span, words: dict[str, str]) -> dict:
    """One line: its feeder, Σ its subscribers and its loss per bucket, the flags on the timeline."""
    shape = layout(db, site)
    found = bucket_figures(db, site, span, shape, only_line=number)
    step = 900 if span.by_interval else 86400
    lines = [(s, next(b for b in bal.lines if b.line == number)) for s, bal in found]
    starts = [s for s, _ in lines]
    shown = [b if b.status != INCOMPLETE else None for _, b in lines]
    return chart(starts, [
        (words["feeder_kwh"], "kWh", [_wh(b.feeder_wh) if b else None for b in shown]),
        (words["subscribers_kwh"], "kWh", [_wh(b.subscribers_wh) if b else None for b in shown]),
        (words["loss_kwh"], "kWh", [_wh(b.loss_wh) if b else None for b in shown]),
    ], _flags(starts, [b.status for _, b in lines], span.bounds[1]), step)


def meter_chart(db: Session, meter: Meter, span: Span, words: dict[str, str]) -> dict:
    """A meter's consumption profile: import and export per bucket; a missing interval (or a day not whole)
    is a gap."""
    start, end = span.bounds
    if span.by_interval:
        rows = {t: (i, e, 1) for t, i, e in db.execute(
            select(IntervalEnergy.start, IntervalEnergy.imp_wh, IntervalEnergy.exp_wh).where(
                IntervalEnergy.meter_id == meter.id, IntervalEnergy.start >= start, IntervalEnergy.start < end))}
        wanted = dict.fromkeys(rows, 1)
    else:
        rows = {naive_day_bounds(d)[0]: (i, e, n) for d, i, e, n in db.execute(
            select(DailyEnergy.day, DailyEnergy.imp_wh, DailyEnergy.exp_wh, DailyEnergy.intervals).where(
                DailyEnergy.meter_id == meter.id, DailyEnergy.day >= span.first, DailyEnergy.day <= span.last))}
        wanted = {naive_day_bounds(d)[0]: intervals_in(d) for d in span.days}
    x = buckets(span)
    whole = [t in rows and rows[t][2] == wanted.get(t) for t in x]
    step = 900 if span.by_interval else 86400
    return chart(x, [
        (words["import_kwh"], "kWh", [rows[t][0] / 1000 if ok else None for t, ok in zip(x, whole, strict=True)]),
        (words["export_kwh"], "kWh", [rows[t][1] / 1000 if ok else None for t, ok in zip(x, whole, strict=True)]),
    ], [], step, "bars" if not span.by_interval else "line")


def meter_readings(db: Session, meter: Meter, span: Span, limit: int = 200) -> list[tuple[datetime, dict, str]]:
    """The meter's register readings in the span, newest first (at most ``limit``)."""
    start, end = span.bounds
    return [(as_utc(ts), values, source) for ts, values, source in db.execute(
        select(Reading.ts, Reading.values, Reading.source).where(
            Reading.meter_id == meter.id, Reading.ts >= start, Reading.ts < end)
        .order_by(Reading.ts.desc()).limit(limit))]


def meter_totals(db: Session, site: Site, span: Span,
                 meter_ids: list[int] | None = None) -> dict[int, tuple[Decimal, Decimal, bool]]:
    """Per meter id (of ``meter_ids`` when given): Σ import, Σ export (kWh) over the span and whether every
    interval is there."""
    expected = sum(intervals_in(day) for day in span.days)
    return {meter_id: (Decimal(imp).scaleb(-3), Decimal(exp).scaleb(-3), count == expected)
            for meter_id, (imp, exp, count, _) in energy_sums(db, site, span, meter_ids).items()}
