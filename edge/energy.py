"""Interval energy from counter readings: boundaries interpolated, intervals telescoping, and a counter's
continuity (a wrap past its largest value, a reset, an impossible jump, another meter at the address).

Pure: values in, values out; the gateway stores what comes out. The counter is interpolated at each
interval boundary (15 minutes by default) and rounded to the Wh, so Σ intervals over any span equals
counter(end) − counter(start) exactly.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal

from shared.profiles import MeterProfile

WH = Decimal("0.001")

MEASURED = "measured"  # readings close around both boundaries
ESTIMATED = "estimated"  # spread linearly over a gap longer than max_gap

# A drop from above this share of the wrap-around value is a wrap, not a reset (if the rest is plausible).
ROLLOVER_ZONE = Decimal("0.9")
# What a connection can carry is exceeded by this factor, plus 1 kWh of slack, before a rise is impossible.
PLAUSIBLE_FACTOR = Decimal("1.5")


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


def counter_rollover(profile: MeterProfile) -> Decimal | None:
    """Where an integer energy register wraps, in kWh (2^bits × scale); None for float registers."""
    register = profile.register("import_kwh")
    bits = {"uint16": 16, "uint32": 32, "uint64": 64}.get(register.type if register else "")
    return None if bits is None else Decimal(2**bits) * Decimal(register.scale)


@dataclass(frozen=True)
class MeterCounter:
    """What the gateway remembers of one meter's energy counter between two readings."""

    last: CounterPoint | None = None  # the last reading taken
    boundary: CounterPoint | None = None  # the counter at the last boundary passed; None: a new segment starts
    serial: str | None = None  # the serial number that answered last


@dataclass(frozen=True)
class CounterEvent:
    """Something a reading showed about the counter, for the event log (and the cloud)."""

    kind: str  # counter_rollover | counter_reset | implausible_jump | meter_replaced
    detail: dict[str, str]
    alert: bool = True  # an alert is sealed alone and sent first


@dataclass(frozen=True)
class CounterAdvance:
    """One reading taken into a meter's counter: its new state, the intervals it closed, what it showed."""

    counter: MeterCounter
    intervals: list[IntervalEnergy]
    events: list[CounterEvent]


def advance_counter(
    meter: str,
    counter: MeterCounter,
    reading: CounterPoint,
    serial: str | None,
    *,
    max_kw: Decimal,
    rollover: Decimal | None,
    step: timedelta,
    max_gap: timedelta,
) -> CounterAdvance:
    """Take a new counter reading: close the intervals it completes, or start a new segment.

    A counter that went back (reset, replaced meter) or rose faster than the connection can carry
    (``max_kw``) starts a new segment and is reported, never billed; one that wrapped past its largest
    value (``rollover``, an integer register) is counted across the wrap; another serial number at the
    address is another meter, whose counter is never subtracted from the old one's.
    """
    events: list[CounterEvent] = []
    last, boundary = counter.last, counter.boundary
    if serial is not None and counter.serial is not None and serial != counter.serial:
        events.append(CounterEvent("meter_replaced", {"old_serial": counter.serial, "new_serial": serial,
                                                      "reading": str(reading.imp)}))
        last = boundary = None
    closed: list[IntervalEnergy] = []
    previous = last
    if previous is not None and reading.ts > previous.ts:
        delta = reading.imp - previous.imp
        hours = Decimal((reading.ts - previous.ts).total_seconds()) / 3600
        plausible = max_kw * hours * PLAUSIBLE_FACTOR + 1
        if delta < 0 and rollover is not None and previous.imp > rollover * ROLLOVER_ZONE \
                and rollover - previous.imp + reading.imp <= plausible:
            # The counter wrapped past its largest value: continue on the unwrapped scale.
            events.append(CounterEvent("counter_rollover", {"before": str(previous.imp), "after": str(reading.imp)},
                                       alert=False))
            previous = replace(previous, imp=previous.imp - rollover)
            if boundary is not None:
                boundary = replace(boundary, imp=boundary.imp - rollover)
            delta = reading.imp - previous.imp
        if delta < 0 or reading.exp < previous.exp:
            events.append(CounterEvent("counter_reset", {"before": str(previous.imp), "after": str(reading.imp)}))
            boundary = None
        elif delta > plausible:
            events.append(CounterEvent("implausible_jump", {"kwh": str(delta), "hours": f"{hours:.2f}",
                                                            "max_kw": str(max_kw)}))
            boundary = None
        else:
            closed, boundary = intervals_between(meter, previous, reading, boundary, step, max_gap)
    elif previous is None:
        _, boundary = intervals_between(meter, reading, reading, None, step, max_gap)
    next_serial = serial if serial is not None else counter.serial
    return CounterAdvance(MeterCounter(reading, boundary, next_serial), closed, events)
