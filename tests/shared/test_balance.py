"""The micro-balance: the seed's cottage town, missing data, solar subscribers."""

from __future__ import annotations

from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from shared.balance import (
    ELEVATED,
    INCOMPLETE,
    NORMAL,
    SUSPECTED_THEFT,
    LineTopology,
    MeterEnergy,
    StationTopology,
    Thresholds,
    line_balance,
    station_balance,
)

SEED_LINES = {  # line: (feeder kWh, Σ subscribers kWh) — BRIEF.md, seed 003
    "1": (20000, 19600), "2": (18000, 17100), "3": (15000, 14850), "4": (16000, 12000), "5": (13000, 12870),
}


def seed_station():
    lines = tuple(LineTopology(n, f"F{n}", (f"S{n}",)) for n in SEED_LINES)
    energies = {"IN": MeterEnergy(Decimal(100000))}
    for n, (feeder, subs) in SEED_LINES.items():
        energies[f"F{n}"] = MeterEnergy(Decimal(feeder))
        energies[f"S{n}"] = MeterEnergy(Decimal(subs))
    return StationTopology("IN", lines), energies


def test_the_seed_cottage_town_balances_as_the_seed_says():
    topology, energies = seed_station()
    result = station_balance(topology, energies)
    assert result.input_kwh == 100000 and result.feeders_kwh == 82000
    assert result.loss_kwh == 18000 and result.loss_pct == Decimal("18.0")
    assert [(b.line, b.loss_pct, b.status) for b in result.lines] == [
        ("1", Decimal("2.0"), NORMAL), ("2", Decimal("5.0"), ELEVATED), ("3", Decimal("1.0"), NORMAL),
        ("4", Decimal("25.0"), SUSPECTED_THEFT), ("5", Decimal("1.0"), NORMAL),
    ]
    assert sum(b.subscribers_kwh for b in result.lines) == 76420


def test_a_missing_meter_makes_the_line_incomplete_never_theft():
    topology, energies = seed_station()
    del energies["S4"]  # the meters of line 4 did not report
    line4 = station_balance(topology, energies).lines[3]
    assert line4.status == INCOMPLETE
    assert line4.missing == ("S4",)


def test_a_partly_reported_meter_is_incomplete_too():
    line = LineTopology("1", "F", ("A", "B"))
    energies = {"F": MeterEnergy(Decimal(100)), "A": MeterEnergy(Decimal(50)),
                "B": MeterEnergy(Decimal(10), complete=False)}
    assert line_balance(line, energies).status == INCOMPLETE


def test_a_solar_subscriber_is_netted_on_its_line():
    # The feeder sees the net flow: 300 in, and the house's 120 kWh export feeds the neighbours.
    line = LineTopology("5", "F", ("house", "solar-house"))
    energies = {"F": MeterEnergy(Decimal(300)), "house": MeterEnergy(Decimal(400)),
                "solar-house": MeterEnergy(Decimal(10), export_kwh=Decimal(120))}
    result = line_balance(line, energies)
    assert result.subscribers_kwh == 290
    assert result.loss_kwh == 10


def test_a_line_without_feeder_counts_its_subscribers_into_the_station():
    topology = StationTopology("IN", (LineTopology("1", None, ("A", "B")),))
    energies = {"IN": MeterEnergy(Decimal(1000)), "A": MeterEnergy(Decimal(500)), "B": MeterEnergy(Decimal(450))}
    result = station_balance(topology, energies)
    assert result.feeders_kwh == 950
    assert result.loss_pct == Decimal("5.0")
    assert result.lines[0].loss_kwh is None


def test_thresholds_are_configurable():
    line = LineTopology("2", "F", ("S",))
    energies = {"F": MeterEnergy(Decimal(18000)), "S": MeterEnergy(Decimal(17100))}
    assert line_balance(line, energies, Thresholds(Decimal(6), Decimal(12))).status == NORMAL


energy = st.decimals(min_value=0, max_value=10**6, places=3, allow_nan=False, allow_infinity=False)


@given(feeder=energy, subscribers=st.lists(energy, min_size=1, max_size=30))
def test_input_equals_outputs_plus_losses(feeder, subscribers):
    line = LineTopology("1", "F", tuple(f"S{i}" for i in range(len(subscribers))))
    energies = {"F": MeterEnergy(feeder)} | {f"S{i}": MeterEnergy(v) for i, v in enumerate(subscribers)}
    result = line_balance(line, energies)
    assert result.feeder_kwh == result.subscribers_kwh + result.loss_kwh
    assert result.status != INCOMPLETE
