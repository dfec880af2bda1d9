"""The gateway's months and days are Kyiv's: the night the clocks go back has 25 hours, and half past midnight
on 1 November in Kyiv (22:30 UTC on 31 October) is November's energy, not October's."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest

from edge.config import GatewayConfig, MeterConfig
from edge.energy import IntervalEnergy
from edge.energy_reports import balances, gateway_balance, meter_energy
from edge.store import open_database
from shared.calendar import day_bounds, period_bounds

STEP = timedelta(minutes=15)
# A small station: the transformer's input, one line's feeder and one house on it.
WH = {"IN": 92, "F1": 90, "H1": 85}


def station(tmp_path) -> GatewayConfig:
    meters = (MeterConfig("IN", "b", 1, "eastron-sdm630", "station_input"),
              MeterConfig("F1", "b", 2, "eastron-sdm630", "feeder", "1"),
              MeterConfig("H1", "b", 3, "eastron-sdm120", "subscriber", "1"))
    return GatewayConfig("gw", tmp_path / "k", tmp_path / "g.sqlite3", "http://127.0.0.1:9", "S", (), meters,
                         lines={"1": "Лінія 1"})


def every_interval(start: datetime, end: datetime, wh: dict[str, int] = WH) -> list[IntervalEnergy]:
    found = []
    at = start
    while at < end:
        found += [IntervalEnergy(meter, at, Decimal(w).scaleb(-3), Decimal(0), "measured") for meter, w in wh.items()]
        at += STEP
    return found


def save(db, intervals: list[IntervalEnergy]) -> None:
    with db.transaction():  # one commit, not one a row
        db.save_intervals(intervals)


@pytest.fixture
def config(tmp_path):
    return station(tmp_path)


def test_the_night_the_clocks_go_back_has_25_hours_of_intervals_and_balances_complete(config):
    # Sunday 25 October 2026, 04:00 summer time in Kyiv is 03:00 winter time: that Kyiv day has 100 intervals.
    db = open_database(config.database)
    save(db, every_interval(datetime(2026, 10, 24, tzinfo=UTC), datetime(2026, 10, 27, tzinfo=UTC)))
    start, end = day_bounds(date(2026, 10, 25))
    assert (start, end) == (datetime(2026, 10, 24, 21, tzinfo=UTC), datetime(2026, 10, 25, 22, tzinfo=UTC))
    house = meter_energy(db, start, end, 15)["H1"]
    assert (house.import_kwh, house.complete) == (Decimal("8.500"), True)  # 100 × 85 Wh
    days = dict(balances(db, config, day_bounds(date(2026, 10, 24))[0], day_bounds(date(2026, 10, 26))[1]))
    assert list(days) == ["2026-10-24", "2026-10-25", "2026-10-26"]
    # The 24th began at 21:00 UTC on the 23rd, before the first interval: it is incomplete, not lossy.
    assert days["2026-10-24"].status == "incomplete"
    for day, hours in (("2026-10-25", 25), ("2026-10-26", 24)):
        result = days[day]
        assert (result.input_kwh, result.feeders_kwh) == (Decimal(hours * 4 * 92).scaleb(-3),
                                                          Decimal(hours * 4 * 90).scaleb(-3)), day
        # Every interval of the day is there: the station loses 2.2 % (normal), line 1 5.6 % (elevated).
        assert (result.status, result.lines[0].status) == ("normal", "elevated"), day
    db.close()


def test_half_past_midnight_on_1_november_in_kyiv_is_novembers_energy(config):
    db = open_database(config.database)
    save(db, every_interval(datetime(2026, 10, 31, 20, tzinfo=UTC), datetime(2026, 11, 1, 2, tzinfo=UTC)))
    # 22:30 UTC on 31 October is 00:30 on 1 November in Kyiv (winter time, UTC+2): a heater goes on.
    db.conn.execute("UPDATE intervals SET imp_wh = 5000 WHERE meter = 'H1' AND start = '2026-10-31T22:30:00Z'")
    october = meter_energy(db, *period_bounds("2026-10"), 15)["H1"]
    november = meter_energy(db, *period_bounds("2026-11"), 15)["H1"]
    assert october.import_kwh == Decimal("0.680")  # 20:00–22:00 UTC: 8 intervals × 85 Wh
    assert november.import_kwh == Decimal("6.275")  # 22:00–02:00 UTC: 15 × 85 Wh + the heater's 5 000 Wh
    assert not october.complete and not november.complete  # a few hours of each month only
    # The month of a balance is the Kyiv month its start falls in.
    nov_start = period_bounds("2026-11")[0]
    assert [key for key, _ in balances(db, config, nov_start, nov_start + STEP, "month")] == ["2026-11"]
    db.close()


def test_a_whole_kyiv_month_balances_complete_across_the_clock_change(config):
    # October 2026 in Kyiv: 30 September 21:00 UTC to 31 October 22:00 UTC, 31 days and 1 hour.
    db = open_database(config.database)
    start, end = period_bounds("2026-10")
    save(db, every_interval(start - timedelta(hours=6), end + timedelta(hours=6)))
    result = gateway_balance(db, config, "2026-10")
    assert result.input_kwh == Decimal((31 * 24 + 1) * 4 * 92).scaleb(-3)  # 2 980 intervals
    assert (result.status, result.lines[0].status) == ("normal", "elevated")
    db.close()
