"""The bus scan against simulated meters: every meter and its profile found over Modbus TCP and over RTU on a
serial line, a silent unit id costs one timeout, the budget holds, and the proposal makes the input the
three-phase meter that has counted the most."""

from __future__ import annotations

import asyncio
import json
import time

from click.testing import CliRunner

from edge.scan import parse_hosts, parse_units, scan
from provisioning.cli import main
from provisioning.site_config import propose
from shared.profiles import load_profiles

from .conftest import StationThread


def expected(scenario) -> dict[int, str]:
    return {m.unit: m.profile for m in scenario.meters}


def test_a_tcp_scan_finds_every_meter_and_its_profile_and_proposes_the_lines(station, small_station):
    result = asyncio.run(scan(load_profiles(), hosts=["127.0.0.1"], port=station.port, units=list(range(1, 11)),
                              timeout=0.2, budget=30))
    assert {m.unit: m.profile for m in result.meters} == expected(small_station)
    node = next(m for m in result.meters if m.profile == "balans-line-node")
    assert node.serial and node.values["import_kwh"] == "3300"
    assert result.complete and result.silent == 2  # units 9 and 10
    roles = {m.unit: (m.role, m.line) for m in propose(result.as_json()).meters}
    assert roles == {1: ("station_input", None), 2: ("feeder", "1"), 3: ("subscriber", "1"), 4: ("subscriber", "1"),
                     5: ("subscriber", "1"), 6: ("feeder", "2"), 7: ("subscriber", "2"), 8: ("subscriber", "2")}


def test_a_silent_unit_costs_one_timeout_and_a_closed_host_costs_no_more(station):
    station.silence(3)
    started = time.monotonic()
    result = asyncio.run(scan(load_profiles(), hosts=["127.0.0.1"], port=station.port, units=[3], timeout=0.3))
    silent = time.monotonic() - started
    assert result.meters == [] and result.silent == 1 and silent < 0.3 * 2 + 0.3
    started = time.monotonic()
    result = asyncio.run(scan(load_profiles(), hosts=parse_hosts(["127.0.0.2/31"]), port=station.port,
                              units=list(range(1, 33)), timeout=0.3))
    assert result.meters == [] and time.monotonic() - started < 1.5  # two hosts refused: no unit is asked


def test_the_budget_stops_the_scan_with_what_it_found(station):
    for unit in range(1, 9):
        station.silence(unit)
    started = time.monotonic()
    result = asyncio.run(scan(load_profiles(), hosts=["127.0.0.1"], port=station.port, units=list(range(1, 33)),
                              timeout=0.3, budget=1.0))
    assert not result.complete and result.probed < 32
    assert time.monotonic() - started < 1.0 + 0.3 * 2 + 0.3


def test_an_rtu_scan_on_a_serial_line_tries_each_baud_rate_once_per_unit(small_station, pty_pair):
    meter_end, gateway_end, _ = pty_pair
    with StationThread(small_station, serial_port=meter_end):
        result = asyncio.run(scan(load_profiles(), serial=gateway_end, bauds=[9600, 19200], units=parse_units("1-9"),
                                  timeout=0.3, budget=30))
    assert {m.unit: m.profile for m in result.meters} == expected(small_station)
    assert result.probed == 9 + 1  # at 19200 only unit 9, silent at 9600, is asked again
    assert {b.baudrate for b in result.buses} == {9600}


def test_the_scan_command_prints_a_table_the_proposal_and_json(station, tmp_path):
    runner = CliRunner()
    answer = runner.invoke(main, ["provision", "scan", "--tcp", "127.0.0.1", "--port", str(station.port),
                                  "--units", "1-8", "--timeout", "0.2", "-o", str(tmp_path / "scan.json")])
    assert answer.exit_code == 0, answer.output
    assert "found 127.0.0.1 unit 5: balans-line-node" in answer.output
    assert "station_input" in answer.output and "# proposed by the scan" in answer.output
    assert "8 meters; 8 of 8 probes, 0 silent" in answer.output
    document = json.loads((tmp_path / "scan.json").read_text(encoding="utf-8"))
    assert len(document["meters"]) == 8 and len(document["proposal"]["meters"]) == 8
    answer = runner.invoke(main, ["provision", "scan", "--tcp", "127.0.0.1", "--port", str(station.port),
                                  "--units", "2", "--json"])
    assert json.loads(answer.stdout)["meters"][0]["profile"] == "eastron-sdm630"
    answer = runner.invoke(main, ["provision", "scan", "--tcp", "127.0.0.1", "--units", "0-300"])
    assert answer.exit_code == 2 and "--units" in answer.output
