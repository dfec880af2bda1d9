"""The bus scan on IEC 62056-21 and M-Bus lines, against the meter simulators over TCP (a serial-to-Ethernet
converter) and over a socat PTY pair: every meter found at its address, named by its identification, read by the
profile that fits it best; a silent address costs one timeout; heat meters are proposed outside the electricity
balance, the biggest one as the building's."""

from __future__ import annotations

import asyncio
import json
import time
from decimal import Decimal

import pytest
from click.testing import CliRunner

from edge.config import DLMS_TIMEOUT, IEC_TIMEOUT, MBUS_TIMEOUT, load_config
from edge.dlms_simulator import SimulatedDlmsLine, electricity_meter
from edge.dlms_simulator import serve_tcp as serve_dlms
from edge.iec62056_simulator import SimulatedLine, ce301, obis_meter
from edge.iec62056_simulator import serve_tcp as serve_iec
from edge.mbus_simulator import HYDROMETER, POLLUTHERM, SimulatedMbusLine, SimulatedMbusMeter, serve_serial
from edge.mbus_simulator import serve_tcp as serve_mbus
from edge.scan import scan
from provisioning.cli import main
from provisioning.ports import free_port
from provisioning.site_config import gateway_toml, lines_and_meters_toml, propose
from shared.profiles import load_profiles
from tests.edge.test_meter_profiles import frame

PROFILES = load_profiles()


@pytest.fixture
def iec_line():
    port = free_port()
    server = serve_iec("127.0.0.1", port, SimulatedLine([ce301(address="1001"), obis_meter(address="1002")]))
    yield f"socket://127.0.0.1:{port}"
    server.shutdown()
    server.server_close()


@pytest.fixture
def mbus_pty(pty_pair):
    meter_end, gateway_end, stop = pty_pair
    serve_serial(meter_end, SimulatedMbusLine([SimulatedMbusMeter(8, POLLUTHERM), SimulatedMbusMeter(9, HYDROMETER)]),
                 stop)
    return gateway_end


def test_an_iec_line_gives_each_addressed_meter_its_identification_and_profile(iec_line):
    seen: list[tuple[str, str]] = []
    started = time.monotonic()
    result = asyncio.run(scan(PROFILES, iec=iec_line, iec_addresses=["1001", "1002", "1003"],
                              iec_password="777777", budget=30, progress=lambda kind, text: seen.append((kind, text))))
    elapsed = time.monotonic() - started
    by_address = {m.address: m for m in result.meters}
    assert set(by_address) == {"1001", "1002"} and result.silent == 1 and result.complete
    energomera, nik = by_address["1001"], by_address["1002"]
    assert energomera.identity == "EKT5CE301v12" and nik.identity == "NIK5NIK2303"
    assert all(PROFILES[m.profile].protocol == "iec62056-21" for m in result.meters)
    assert Decimal(energomera.values["import_kwh"]) == Decimal("16907.9477764")
    assert Decimal(nik.values["import_kwh"]) == Decimal("12345.67")
    assert [m.unit for m in result.meters] == [1, 2]  # told apart on the line; chosen by their address
    assert elapsed < 2 * IEC_TIMEOUT + 10, "the silent address cost one timeout, not one per profile"
    assert sum(kind == "found" for kind, _ in seen) == 2 and any("CE301" in text for _, text in seen)
    toml = lines_and_meters_toml(propose(result.as_json()))
    assert 'address = "1001"' in toml and 'address = "1002"' in toml


def test_an_mbus_line_over_a_pty_finds_both_heat_meters_and_proposes_the_building_meter(mbus_pty):
    result = asyncio.run(scan(PROFILES, mbus=mbus_pty, mbus_units=list(range(6, 11)), budget=30))
    found = {m.unit: m for m in result.meters}
    assert set(found) == {8, 9} and result.silent == 3
    assert found[8].values["heat_gcal"] == "7.429063" and "SPX 21050076184E3104" in found[8].identity
    assert "HYD 1234567824232A04" in found[9].identity
    assert result.buses[0].kind == "mbus" and result.buses[0].baudrate == 2400
    proposal = propose(result.as_json())
    roles = {m.unit: (m.role, m.line) for m in proposal.meters}
    # The Hydrometer has counted 2 451 Gcal, the PolluTherm 7.4: the bigger one is the building's meter.
    assert roles[9] == ("heat_building", None) and roles[8][0] == "subscriber"
    assert proposal.lines[roles[8][1]] == "Квартирні теплолічильники"


def test_a_configuration_written_from_both_lines_loads_with_each_protocols_own_timing(iec_line, mbus_pty, tmp_path):
    result = asyncio.run(scan(PROFILES, iec=iec_line, iec_addresses=["1002"], mbus=mbus_pty, mbus_units=[8, 9],
                              budget=30))
    path = tmp_path / "gateway.toml"
    path.write_text(gateway_toml(propose(result.as_json()), gateway_id="gw-heat", site="BLD-1",
                                 cloud_url="http://127.0.0.1:1"), encoding="utf-8")
    config = load_config(path)
    timing = {bus.kind: (bus.baudrate, bus.timeout) for bus in config.buses}
    assert timing == {"iec62056-21": (9600, IEC_TIMEOUT), "mbus": (2400, MBUS_TIMEOUT)}
    # a lone three-phase meter is proposed as the station input (test_scan.py); the heat meters stand apart
    assert sorted(m.role for m in config.meters) == ["heat_building", "station_input", "subscriber"]
    assert next(m for m in config.meters if m.bus.startswith("iec")).address == "1002"


def test_a_meter_that_names_its_maker_or_model_is_given_that_makers_profile(iec_line):
    """Two heat profiles read one heat meter equally well: what the meter says it is decides (identified_by)."""
    iec = asyncio.run(scan(PROFILES, iec=iec_line, iec_addresses=["1001", "1002"], iec_password="777777",
                           budget=30))
    named = {m.identity: m for m in iec.meters}
    assert named["EKT5CE301v12"].profile == "energomera-ce301"
    # The simulated NIK publishes its energy as 1.8.0, not in 15.8.0 where a NIK 2303 keeps it: its maker's
    # profile reads no counter there and is passed over for one of the profiles that read 1.8.0 (a guess the
    # proposal marks for the installer to confirm).
    assert named["NIK5NIK2303"].profile != "nik-2303" and named["NIK5NIK2303"].values["import_kwh"] == "12345.67"
    port = free_port()
    line = SimulatedMbusLine([SimulatedMbusMeter(3, frame("kamstrup_multical_601")),
                              SimulatedMbusMeter(4, frame("sen_pollucom_e")), SimulatedMbusMeter(9, HYDROMETER)])
    server = serve_mbus("127.0.0.1", port, line)
    try:
        mbus = asyncio.run(scan(PROFILES, mbus=f"socket://127.0.0.1:{port}", mbus_units=[3, 4, 9], budget=30))
    finally:
        server.shutdown()
        server.server_close()
    found = {m.unit: m.profile for m in mbus.meters}
    assert found[3] == "kamstrup-multical" and found[4] in ("sensus-pollucom", "sensus-pollustat")
    assert PROFILES[found[9]].protocol == "mbus" and not PROFILES[found[9]].identifies("HYD")
    assert Decimal(next(m for m in mbus.meters if m.unit == 3).values["heat_gcal"]) == (
        Decimal(37351000) / Decimal(1163000)).quantize(Decimal("0.000001"))


def test_a_dlms_line_finds_each_meter_at_its_hdlc_address(tmp_path):
    port = free_port()
    server = serve_dlms("127.0.0.1", port, SimulatedDlmsLine([electricity_meter(17, serial_number="00123456"),
                                                              electricity_meter(18, serial_number="00654321")]))
    try:
        started = time.monotonic()
        result = asyncio.run(scan(PROFILES, dlms=f"socket://127.0.0.1:{port}", dlms_units=[16, 17, 18, 19],
                                  budget=30))
        elapsed = time.monotonic() - started
    finally:
        server.shutdown()
        server.server_close()
    found = {m.unit: m for m in result.meters}
    assert set(found) == {17, 18} and result.silent == 2 and result.complete
    assert {m.serial for m in found.values()} == {"00123456", "00654321"}
    assert all(PROFILES[m.profile].protocol == "dlms" and m.values["import_kwh"] == "12345.67"
               for m in found.values())
    assert elapsed < 2 * DLMS_TIMEOUT + 10, "a silent address costs one timeout"
    path = tmp_path / "gateway.toml"
    path.write_text(gateway_toml(propose(result.as_json()), gateway_id="gw-dlms", site="TP-9",
                                 cloud_url="http://127.0.0.1:1"), encoding="utf-8")
    assert {(bus.kind, bus.timeout) for bus in load_config(path).buses} == {("dlms", DLMS_TIMEOUT)}


def test_the_command_scans_both_lines_and_names_a_bad_iec_address(iec_line):
    port = free_port()
    server = serve_mbus("127.0.0.1", port, SimulatedMbusLine([SimulatedMbusMeter(8, POLLUTHERM)]))
    try:
        done = CliRunner().invoke(main, ["provision", "scan", "--iec", iec_line, "--iec-addresses", "1002",
                                         "--mbus", f"socket://127.0.0.1:{port}", "--mbus-units", "8", "--json"])
        assert done.exit_code == 0, done.output
        document = json.loads(done.stdout)
        assert {(m["bus"], m["identity"].split()[0]) for m in document["meters"]} == {
            ("iec-127-0-0-1-" + iec_line.rsplit(":", 1)[1], "NIK5NIK2303"),
            (f"mbus-127-0-0-1-{port}", "SPX")}
        assert {b["kind"] for b in document["buses"]} == {"iec62056-21", "mbus"}
    finally:
        server.shutdown()
        server.server_close()
    bad = CliRunner().invoke(main, ["provision", "scan", "--iec", iec_line, "--iec-addresses", "10/01"])
    assert bad.exit_code == 2 and "10/01" in bad.output
