"""M-Bus heat meters: real meters' frames (libmbus's test-frames corpus) decoded into Gcal and m³ exactly, and
meters read over a socat PTY pair and over TCP by primary and by secondary address, with the failures a line
has: silence, a frame cut short, a wrong checksum."""

from __future__ import annotations

import asyncio
import io
import time
from decimal import Decimal

import meterbus
import pytest

from edge.config import BusConfig, MeterConfig, load_config
from edge.mbus_bus import MbusBus, MbusError, records_of, select_frame, short_frame, values_of
from edge.mbus_simulator import (
    HYDROMETER,
    POLLUTHERM,
    SimulatedMbusLine,
    SimulatedMbusMeter,
    serve_serial,
    serve_tcp,
)
from edge.meter_reader import MeterUnavailable, open_bus
from provisioning.ports import free_port
from shared.profiles import load_profiles

PROFILES = load_profiles()
HEAT = PROFILES["mbus-heat-meter"].records


def meter(unit: int = 8, address: str = "", meter_id: str = "HM-1") -> MeterConfig:
    return MeterConfig(id=meter_id, bus="mbus", unit=unit, profile="mbus-heat-meter", role="subscriber",
                       address=address)


def test_a_pollutherm_frame_gives_its_heat_in_gcal_exactly():
    secondary, records = records_of(POLLUTHERM, 8)
    assert secondary == "21050076184E3104"
    values = values_of(records, HEAT, meter())
    # 8 640 kWh = 8 640 000 Wh / 1 163 000 Wh per Gcal, to a millionth of a Gcal
    assert values == {"heat_gcal": "7.429063", "volume_m3": "7998.92", "flow_temp_c": "75.5",
                      "return_temp_c": "59.4"}
    assert Decimal(values["heat_gcal"]) == (Decimal(8640000) / Decimal(1163000)).quantize(Decimal("0.000001"))


def test_a_frame_checked_before_it_is_believed():
    broken = POLLUTHERM[:-2] + bytes([POLLUTHERM[-2] ^ 0xFF, 0x16])
    with pytest.raises(MbusError, match="checksum"):
        records_of(broken, 8)
    with pytest.raises(MbusError, match="answer from address 8, asked 9"):
        records_of(POLLUTHERM, 9)
    _, records = records_of(HYDROMETER, None)
    with pytest.raises(MbusError, match="no FLOW_TEMPERATURE record \\(storage 1\\)"):
        values_of(records, tuple(r.__class__(r.meaning, r.types, 1) for r in HEAT if r.meaning == "flow_temp_c"),
                  meter())


def test_the_request_frames_are_the_standards():
    assert short_frame(0x40, 8) == bytes.fromhex("1040084816")  # SND_NKE to 8
    assert short_frame(0x5B, 0xFD) == bytes.fromhex("105BFD5816")  # REQ_UD2 to the network layer
    assert select_frame("21050076184E3104") == bytes.fromhex("680B0B6873FD5276000521184E3104F916")
    written = io.BytesIO()
    meterbus.send_select_frame(written, "21050076184E3104")  # the library's own, as an independent peer
    assert written.getvalue() == select_frame("21050076184E3104")
    with pytest.raises(MbusError, match="16 hex digits"):
        select_frame("2105")


def line_on_pty(pty_pair, *meters) -> MbusBus:
    meter_end, gateway_end, stop = pty_pair
    serve_serial(meter_end, SimulatedMbusLine(list(meters)), stop)
    return MbusBus(BusConfig(name="mbus", kind="mbus", device=gateway_end, baudrate=2400, timeout=0.3), PROFILES)


def test_two_heat_meters_on_one_line_by_primary_and_by_secondary_address(pty_pair):
    line = line_on_pty(pty_pair, SimulatedMbusMeter(8, POLLUTHERM), SimulatedMbusMeter(9, HYDROMETER))
    assert asyncio.run(line.read(meter(8)))["heat_gcal"] == "7.429063"
    by_secondary = asyncio.run(line.read(meter(address="1234567824232A04", meter_id="HM-2")))
    assert by_secondary == {"heat_gcal": str((Decimal(2850427000) / 1163000).quantize(Decimal("0.000001"))),
                            "volume_m3": "703.476", "flow_temp_c": "44.3", "return_temp_c": "25.1"}


@pytest.mark.parametrize(("fault", "message"), [
    ("silent", "no answer to SND_NKE within 0.3 s"),
    ("truncate", "stopped after"),
    ("bad_checksum", "checksum"),
])
def test_a_failing_heat_meter_costs_one_timeout_and_says_why(pty_pair, fault, message):
    line = line_on_pty(pty_pair, SimulatedMbusMeter(8, POLLUTHERM, fault), SimulatedMbusMeter(9, HYDROMETER))
    started = time.monotonic()
    with pytest.raises(MeterUnavailable, match=message):
        asyncio.run(line.read(meter(8)))
    assert time.monotonic() - started < 2.0
    assert asyncio.run(line.read(meter(9)))["volume_m3"] == "703.476"  # the next meter answers at once


def test_an_unknown_secondary_address_is_named():
    port = free_port()
    server = serve_tcp("127.0.0.1", port, SimulatedMbusLine([SimulatedMbusMeter(8, POLLUTHERM)]))
    try:
        line = MbusBus(BusConfig(name="mbus", kind="mbus", device=f"socket://127.0.0.1:{port}", timeout=0.3),
                       PROFILES)
        assert asyncio.run(line.read(meter(8)))["flow_temp_c"] == "75.5"
        with pytest.raises(MeterUnavailable, match="no answer to the selection"):
            asyncio.run(line.read(meter(address="9999999999999999")))
    finally:
        server.shutdown()
        server.server_close()


def test_a_scan_finds_every_meter_on_the_line_and_what_it_is(pty_pair):
    line = line_on_pty(pty_pair, SimulatedMbusMeter(8, POLLUTHERM), SimulatedMbusMeter(9, HYDROMETER))
    line.config = BusConfig(name="mbus", kind="mbus", device=line.config.device, timeout=0.05)
    seen = []
    found = asyncio.run(line.scan(range(5, 12), progress=lambda done, total: seen.append((done, total))))
    assert [(m.primary, m.secondary, m.manufacturer, m.medium) for m in found] == [
        (8, "21050076184E3104", "SPX", "0x4"), (9, "1234567824232A04", "HYD", "0x4")]
    assert seen[-1] == (7, 7) and len(seen) == 7


def test_a_building_heat_meter_on_an_mbus_line_is_configured_outside_the_electricity_balance(tmp_path):
    path = tmp_path / "gateway.toml"
    path.write_text('[gateway]\nid = "gw-heat"\ndata_dir = "data"\n[cloud]\nurl = "http://127.0.0.1:1"\n'
                    '[[bus]]\nname = "heat"\nkind = "mbus"\ndevice = "/dev/ttyUSB1"\n'
                    '[[meter]]\nid = "BLD-3"\nbus = "heat"\nunit = 250\nprofile = "mbus-heat-meter"\n'
                    'role = "heat_building"\n', encoding="utf-8")
    config = load_config(path)
    assert (config.buses[0].baudrate, config.buses[0].timeout) == (2400, 0.5)
    assert config.meters[0].role == "heat_building"
    assert config.topology().input_meter is None and all(not line.subscribers for line in config.topology().lines)
    assert isinstance(open_bus(config.buses[0], PROFILES), MbusBus)


def test_flats_heat_meters_on_a_line_of_their_own_stay_out_of_the_electricity_balance(tmp_path):
    path = tmp_path / "gateway.toml"
    path.write_text('[gateway]\nid = "gw-mixed"\ndata_dir = "data"\n[cloud]\nurl = "http://127.0.0.1:1"\n'
                    '[[bus]]\nname = "station"\nkind = "tcp"\n[[bus]]\nname = "heat"\nkind = "mbus"\n'
                    'device = "/dev/ttyUSB1"\n'
                    '[[line]]\nnumber = "1"\nname = "Лінія 1"\n[[line]]\nnumber = "2"\nname = "Квартирні теплолічильники"\n'
                    '[[meter]]\nid = "IN"\nbus = "station"\nunit = 1\nprofile = "eastron-sdm630"\nrole = "station_input"\n'
                    '[[meter]]\nid = "F1"\nbus = "station"\nunit = 2\nprofile = "eastron-sdm630"\nrole = "feeder"\n'
                    'line = "1"\n'
                    '[[meter]]\nid = "S1"\nbus = "station"\nunit = 3\nprofile = "eastron-sdm120"\nrole = "subscriber"\n'
                    'line = "1"\n'
                    '[[meter]]\nid = "HM-2"\nbus = "heat"\nunit = 8\nprofile = "mbus-heat-meter"\nrole = "subscriber"\n'
                    'line = "2"\n', encoding="utf-8")
    topology = load_config(path).topology()
    assert topology.input_meter == "IN"
    assert [(line.line, line.feeder, line.subscribers) for line in topology.lines] == [("1", "F1", ("S1",))]
