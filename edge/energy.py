"""Interval energy from counter readings: boundary values interpolated, intervals telescoping.

The counter is interpolated at each interval boundary (15 minutes by default) and rounded
to the Wh, so Σ intervals over any span equals counter(end) − counter(start) exactly.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal

WH = Decimal("0.001")

MEASURED = "measured"  # readings close around both boundaries
ESTIMATED = "estimated"  # spread linearly over a gap longer than max_gap


@dataclass(frozen=True)
class CounterPoint:
    """Counter values of one meter at one instant (a reading, or an interpolated boundary)."""

    ts: datetime
    imp: Decimal
    exp: Decimal


@dataclass(frozen=True)
class IntervalEnergy:
    meter: str
    start: datetime
    imp: Decimal
    exp: Decimal
    flag: str


def floor_boundary(ts: datetime, step: timedelta) -> datetime:
    """The interval boundary at or before ``ts`` (boundaries are aligned to midnight UTC)."""
    midnight = ts.replace(hour=0, minute=0, second=0, microsecond=0)
    return midnight + step * ((ts - midnight) // step)


def counter_at(at: datetime, before: CounterPoint, after: CounterPoint) -> CounterPoint:
    """The counters at ``at`` by linear interpolation between two readings, to the Wh."""
    if at == after.ts:
        return after
    if at == before.ts:
        return before
    share = Decimal((at - before.ts).total_seconds()) / Decimal((after.ts - before.ts).total_seconds())
    imp = (before.imp + (after.imp - before.imp) * share).quantize(WH, ROUND_HALF_UP)
    exp = (before.exp + (after.exp - before.exp) * share).quantize(WH, ROUND_HALF_UP)
    return CounterPoint(at, imp, exp)


def intervals_between(
    meter: str,
    previous: CounterPoint,
    current: CounterPoint,
    boundary: CounterPoint | None,
    step: timedelta,
    max_gap: timedelta,
) -> tuple[list[IntervalEnergy], CounterPoint | None]:
    """Intervals closed by a new reading, and the latest boundary point to remember.

    ``boundary`` is the counter at the last boundary already used (None for a new meter
    or a new meter segment): the first boundary after it only opens the next interval.
    """
    flag = MEASURED if current.ts - previous.ts <= max_gap else ESTIMATED
    closed: list[IntervalEnergy] = []
    at = floor_boundary(previous.ts, step)
    if at <= previous.ts:
        at += step
    if previous.ts == floor_boundary(previous.ts, step) and boundary is None:
        boundary = previous  # the reading sits exactly on a boundary: it opens an interval
    while at <= current.ts:
        point = counter_at(at, previous, current)
        if boundary is not None and boundary.ts == at - step:
            closed.append(IntervalEnergy(meter, boundary.ts, point.imp - boundary.imp, point.exp - boundary.exp, flag))
        boundary = point
        at += step
    return closed, boundary
