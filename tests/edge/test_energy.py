"""Interval energy from counter readings, pure: intervals telescope to the counter's change, a wrapped counter
is followed across the wrap, a reset, an impossible jump or another meter starts a new segment unbilled."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from edge.energy import (
    ESTIMATED,
    MEASURED,
    CounterPoint,
    MeterCounter,
    advance_counter,
    counter_at,
    counter_rollover,
    floor_boundary,
)
from shared.profiles import load_profiles

START = datetime(2026, 10, 1, tzinfo=UTC)
STEP = timedelta(minutes=15)
HOUR = timedelta(hours=1)
PROFILES = load_profiles()
NODE_WRAP = counter_rollover(PROFILES["balans-line-node"])


class House:
    """One meter read now and then: keeps its counter state and everything the readings closed or showed."""

    def __init__(self, max_kw: str = "20", rollover: Decimal | None = None):
        self.counter = MeterCounter()
        self.max_kw, self.rollover = Decimal(max_kw), rollover
        self.intervals, self.events = [], []

    def read(self, minutes: float, kwh: str, serial: str | None = "7", export: str = "0") -> list[int]:
        """The Wh of each interval this reading closed."""
        reading = CounterPoint(START + timedelta(minutes=minutes), Decimal(kwh), Decimal(export))
        advance = advance_counter("H1", self.counter, reading, serial, max_kw=self.max_kw, rollover=self.rollover,
                                  step=STEP, max_gap=HOUR)
        self.counter = advance.counter
        self.intervals += advance.intervals
        self.events += advance.events
        return [int(i.imp * 1000) for i in advance.intervals]

    def kinds(self) -> list[str]:
        return [e.kind for e in self.events]


def test_a_line_nodes_uint32_counter_wraps_and_float_counters_do_not():
    assert counter_rollover(PROFILES["balans-line-node"]) == Decimal("4294967.296")  # 2^32 Wh
    assert counter_rollover(PROFILES["eastron-sdm630"]) is None


def test_rollover_replacement_and_impossible_jumps():
    """A line node's uint32 Wh counter wraps; a meter is swapped; a glitch shows 5 MWh in 15 minutes."""
    house = House(rollover=NODE_WRAP)
    house.read(0, "4294966.000")
    assert house.read(15, "0.500") == [1796]  # 1.296 kWh to the wrap, then 0.500
    assert house.read(30, "5000.500") == []  # 5 MWh in 15 minutes on a 20 kW connection: flagged, not billed
    house.read(45, "5000.600")
    house.read(60, "12.000", serial="8")  # another meter at this address
    assert house.read(75, "12.300", serial="8") == [300]
    assert house.kinds() == ["counter_rollover", "implausible_jump", "meter_replaced"]
    assert [e.alert for e in house.events] == [False, True, True]  # a wrap is normal, the others are alerts
    replaced = house.events[2].detail
    assert replaced == {"old_serial": "7", "new_serial": "8", "reading": "12.000"}


def test_a_counter_that_goes_back_starts_a_new_segment_and_says_so():
    house = House()
    house.read(0, "100.000")
    assert house.read(15, "100.250") == [250]
    assert house.read(30, "3.000") == []  # reset to almost zero: nothing billed
    assert house.counter.boundary is None
    assert house.read(45, "3.100") == [100]  # the new segment counts from its own first boundary
    assert house.read(60, "3.300", export="0") == [200]
    assert house.read(75, "3.400", export="1") == [100]
    assert house.read(90, "3.500", export="0") == []  # export going back is a reset too
    assert house.kinds() == ["counter_reset", "counter_reset"]
    assert house.events[0].detail == {"before": "100.250", "after": "3.000"}


def test_a_drop_on_a_float_register_is_a_reset_not_a_wrap():
    house = House(rollover=None)
    house.read(0, "4294966.000")
    assert house.read(15, "0.500") == []
    assert house.kinds() == ["counter_reset"]


def test_a_wrap_that_would_need_more_than_the_connection_can_carry_is_a_reset():
    house = House(max_kw="20", rollover=NODE_WRAP)
    house.read(0, "4294900.000")  # 67 kWh before the wrap: 268 kW for 15 minutes on a 20 kW connection
    assert house.read(15, "0.500") == []
    assert house.kinds() == ["counter_reset"]


def test_a_reading_no_later_than_the_last_changes_nothing_but_the_last_reading():
    house = House()
    house.read(0, "10.000")
    house.read(15, "10.100")
    before = house.counter.boundary
    assert house.read(15, "10.100") == [] and house.read(10, "10.050") == []
    assert house.counter.boundary == before and house.events == []


def test_a_gap_longer_than_max_gap_is_spread_linearly_and_flagged_estimated():
    house = House()
    house.read(0, "10.000")
    assert house.read(15, "10.200") == [200]
    assert house.read(75, "11.000") == [200, 200, 200, 200]  # 60 minutes: still measured
    assert house.read(150, "11.500") == [100, 100, 100, 100, 100]  # 75 minutes: estimated
    assert [i.flag for i in house.intervals] == [MEASURED] * 5 + [ESTIMATED] * 5


def test_boundaries_are_interpolated_to_the_wh():
    before = CounterPoint(START, Decimal("1.0000"), Decimal(0))
    after = CounterPoint(START + timedelta(minutes=30), Decimal("1.0013"), Decimal(0))
    assert counter_at(START + STEP, before, after).imp == Decimal("1.001")  # 1.00065 rounds half up
    assert floor_boundary(START + timedelta(minutes=44, seconds=59), STEP) == START + timedelta(minutes=30)


readings = st.lists(st.tuples(st.integers(1, 5400), st.integers(0, 1000)), min_size=1, max_size=60)


@settings(deadline=None)
@given(start_minute=st.integers(0, 30), first=st.integers(0, 2_000_000), steps=readings,
       wrap=st.booleans())
def test_intervals_telescope_to_the_counters_change_even_across_a_wrap(start_minute, first, steps, wrap):
    """Readings at any times, rising at most what the connection carries: the intervals are one per step,
    back to back, from the first boundary after the first reading to the last before the last one, and they
    add up to the counter's change between those two boundaries — to the Wh, across a wrap too."""
    house = House(max_kw="20", rollover=NODE_WRAP)
    origin = NODE_WRAP - Decimal(first).scaleb(-3) if wrap else Decimal(first).scaleb(-3)
    points = [CounterPoint(START + timedelta(minutes=start_minute), origin, Decimal(0))]
    for seconds, wh_per_kw_hour in steps:
        # At most 20 kW over the gap (wh_per_kw_hour ‰ of it): never an impossible jump.
        gained = (Decimal(20) * seconds / 3600 * wh_per_kw_hour / 1000).quantize(Decimal("0.001"))
        last = points[-1]
        points.append(CounterPoint(last.ts + timedelta(seconds=seconds), last.imp + gained, Decimal(0)))
    for point in points:
        shown = point.imp % NODE_WRAP  # what the register shows
        house.read((point.ts - START).total_seconds() / 60, f"{shown:f}")
    assert house.kinds() in ([], ["counter_rollover"])
    first_boundary = floor_boundary(points[0].ts, STEP)
    first_boundary += STEP if first_boundary < points[0].ts else timedelta()
    last_boundary = floor_boundary(points[-1].ts, STEP)
    if last_boundary <= first_boundary:
        assert house.intervals == []
        return
    starts = [i.start for i in house.intervals]
    assert starts == [first_boundary + STEP * n for n in range(len(starts))]
    assert starts[-1] + STEP == last_boundary

    def unwrapped_at(at: datetime) -> Decimal:
        before = max((p for p in points if p.ts <= at), key=lambda p: p.ts)
        after = min((p for p in points if p.ts >= at), key=lambda p: p.ts)
        return counter_at(at, before, after).imp

    assert sum(i.imp for i in house.intervals) == unwrapped_at(last_boundary) - unwrapped_at(first_boundary)
    assert all(i.imp >= 0 for i in house.intervals)
