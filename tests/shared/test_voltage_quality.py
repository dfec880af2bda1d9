"""EN 50160 at the far end of a rural line: a good week, a sagging evening line, a long interruption."""

from __future__ import annotations

from datetime import date, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from shared.calendar import day_bounds
from shared.voltage_quality import VoltageTracker, ten_minute_means, weekly_compliance

MONDAY = datetime(2026, 10, 5)


def week(volts_at):
    return [(MONDAY + timedelta(minutes=10 * i), volts_at(i)) for i in range(1008)]


def test_a_good_week_complies():
    result = weekly_compliance(week(lambda i: 229.0 + (i % 7) * 0.5))
    assert result.compliant and result.within_band_pct == 100.0 and result.means == 1008


def test_evening_sags_below_207_on_6_percent_of_means_fail_the_95_percent_rule():
    result = weekly_compliance(week(lambda i: 203.0 if i % 100 < 6 else 226.0))
    assert round(result.within_band_pct, 1) == 93.5  # 66 of 1 008 means below 207 V
    assert result.all_within_limits and not result.compliant


def test_one_mean_below_minus_15_percent_fails_the_week():
    result = weekly_compliance(week(lambda i: 190.0 if i == 500 else 228.0))
    assert result.within_band_pct > 99 and not result.all_within_limits and not result.compliant


def test_ten_minute_means_align_to_the_clock():
    samples = [(MONDAY + timedelta(minutes=m), 220.0 + m) for m in (1, 4, 9, 10, 19)]
    assert ten_minute_means(samples) == [(MONDAY, 224.0 + 2 / 3), (MONDAY + timedelta(minutes=10), 234.5)]


def test_a_long_interruption_then_an_under_voltage_are_two_events_with_their_extremes():
    tracker = VoltageTracker()
    events = []
    for minute, volts in [(0, 229), (1, 0.0), (2, 3.0), (8, 0.0), (9, 195.0), (10, 201.0), (11, 198.0), (12, 228)]:
        events += tracker.observe(MONDAY + timedelta(minutes=minute), volts)
    assert [(e.kind, e.start.minute, e.end.minute, e.extreme) for e in events] == [
        ("interruption_long", 1, 9, 0.0), ("under_voltage", 9, 12, 195.0)]


@given(st.lists(st.floats(min_value=0, max_value=300), max_size=200))
def test_every_episode_is_reported_once_and_ends_after_it_starts(values):
    tracker = VoltageTracker()
    events = []
    for minute, volts in enumerate([*values, 230.0]):
        events += tracker.observe(MONDAY + timedelta(minutes=minute), volts)
    assert all(e.end > e.start for e in events)
    assert all(events[i].end <= events[i + 1].start for i in range(len(events) - 1))


def test_an_open_episode_survives_a_restart():
    tracker = VoltageTracker()
    tracker.observe(MONDAY, 0.0)
    restored = VoltageTracker.restore(tracker.state())
    [event] = restored.observe(MONDAY + timedelta(minutes=10), 229.0)
    assert (event.kind, event.start) == ("interruption_long", MONDAY)
    assert VoltageTracker.restore("").state() == ""


def test_a_kyiv_week_with_the_clock_change_expects_its_own_number_of_means():
    # The week from Monday 19 October 2026 in Kyiv has 169 hours: 1 014 ten-minute means, all of them there.
    start, _ = day_bounds(date(2026, 10, 19))
    _, end = day_bounds(date(2026, 10, 25))
    expected = int((end - start).total_seconds() // 600)
    means = [(start + timedelta(minutes=10 * i), 230.0) for i in range(expected)]
    result = weekly_compliance(means, expected=expected)
    assert (expected, result.means, result.expected, result.compliant) == (1014, 1014, 1014, True)
