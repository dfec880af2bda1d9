"""Benchmark fixtures: a synthetic station of N SDM630 + M SDM120 meters, its simulator and gateway config."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from edge.config import config_toml_from_scenario
from shared.balance import Thresholds
from shared.scenario import Scenario, SimMeter


def synthetic_station(three_phase: int, single_phase: int, period: str = "2026-10") -> Scenario:
    """Unit 1 is the station input, units 2..three_phase feeders of as many lines, then the houses."""
    lines = {str(n): f"Лінія {n}" for n in range(1, max(three_phase, 2))}
    meters = [SimMeter("IN", 1, "eastron-sdm630", "station_input", None, 100_000, start_kwh=200_000)]
    for n in range(1, three_phase):
        meters.append(SimMeter(f"F{n}", n + 1, "eastron-sdm630", "feeder", str(n), 10_000, start_kwh=50_000))
    for i in range(single_phase):
        line = str(i % len(lines) + 1)
        unit = three_phase + 1 + i
        meters.append(SimMeter(f"H{i:03d}", (unit - 1) % 247 + 1, "eastron-sdm120", "subscriber", line, 300,
                               start_kwh=1_000 + i, account=f"{i:05d}"))
    return Scenario(name="bench", period=period, site="BENCH", site_name="bench", organisation={}, tariff={},
                    meters=tuple(meters), line_names=lines, thresholds=Thresholds())


def write_config(scenario: Scenario, folder: Path, port: int, cloud_url: str = "http://127.0.0.1:9",
                 poll_seconds: int = 900) -> Path:
    """A gateway config for the station; past 247 meters the rest go on further buses (one per 247)."""
    path = folder / "gateway.toml"
    text = config_toml_from_scenario(scenario, gateway_id="gw-bench", host="127.0.0.1", port=port,
                                     cloud_url=cloud_url, poll_seconds=poll_seconds)
    extra = (len(scenario.meters) - 1) // 247
    for n in range(1, extra + 1):
        text += f'\n[[bus]]\nname = "station{n}"\nkind = "tcp"\nhost = "127.0.0.1"\nport = {port + n}\n'
    path.write_text(text, encoding="utf-8")
    return path


def period_start(scenario: Scenario) -> datetime:
    return scenario.period_start.astimezone(UTC)
