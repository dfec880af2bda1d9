"""IEC 62056-21 mode C: the frames against a real meter's traffic, and meters read over a socat PTY pair and
over TCP — a data readout by OBIS code, an Energomera CE301 in programming mode with its password — with the
failures a line has: silence, a block cut short, a wrong check, a wrong password."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from edge.config import BusConfig, ConfigError, MeterConfig, load_config
from edge.iec62056_bus import Iec62056Bus
from edge.iec62056_simulator import SimulatedLine, ce301, obis_meter, serve_serial, serve_tcp
from edge.meter_reader import MeterUnavailable, open_bus
from provisioning.ports import free_port
from shared.iec62056_21 import (
    Iec62056Error,
    block_text,
    command,
    option_select,
    parse_command,
    parse_data,
    parse_identification,
    password,
    read,
    sign_on,
)
from shared.profiles import load_profiles

PROFILES = load_profiles()

# Frames exchanged with a real Energomera CE301 (firmware v12), as published with the tests of the
# energomera-hass-mqtt package: Energomera's block check is the sum of the bytes modulo 128.
CE301_READ_ET0PE = b"\x01R1\x02ET0PE()\x037"
CE301_READ_ENMPE = b"\x01R1\x02ENMPE(04.22)\x03D"
CE301_PASSWORD = b"\x01P1\x02(dummy)\x03\x03"
CE301_ASKS_PASSWORD = b"\x01P0\x02(777777)\x03\x20"
CE301_ET0PE = (b"\x02ET0PE(16907.9477764)\r\nET0PE(11504.3875082)\r\nET0PE(3628.2698795)\r\n"
               b"ET0PE(1775.2903887)\r\nET0PE(0.0)\r\nET0PE(0.0)\r\n\x03\x04")
CE301_VOLTA = b"\x02VOLTA(233.751)\r\nVOLTA(235.418)\r\nVOLTA(234.796)\r\n\x03\x02"


def test_the_frames_are_byte_for_byte_those_of_a_real_ce301():
    assert parse_identification(b"/EKT5CE301v12\r\n").baud == 9600
    assert option_select("5", "1") == b"\x06051\r\n"
    assert read("ET0PE", check="sum7") == CE301_READ_ET0PE
    assert read("ENMPE", "04.22", check="sum7") == CE301_READ_ENMPE
    assert password("dummy", check="sum7") == CE301_PASSWORD
    assert parse_command(CE301_ASKS_PASSWORD, "sum7") == ("P0", "(777777)")
    totals = parse_data(block_text(CE301_ET0PE, "sum7"))
    assert [d.value for d in totals][:4] == ["16907.9477764", "11504.3875082", "3628.2698795", "1775.2903887"]
    assert [d.value for d in parse_data(block_text(CE301_VOLTA, "sum7"))] == ["233.751", "235.418", "234.796"]


def test_the_standard_check_is_an_xor_and_a_wrong_one_is_named():
    assert command("B0") == b"\x01B0\x03\x71"  # "B0" ETX: 0x42 ^ 0x30 ^ 0x03
    with pytest.raises(Iec62056Error, match="BCC is 0x04, the data gives"):
        block_text(CE301_ET0PE, "xor")  # Energomera's sum is not the standard's XOR
    broken = CE301_ET0PE[:-1] + b"\x05"
    with pytest.raises(Iec62056Error, match="BCC"):
        block_text(broken, "sum7")


def test_a_readout_is_parsed_into_obis_codes_with_units():
    text = "0.0.0(12345678)\r\n1-0:1.8.0*255(012345.67*kWh)\r\n32.7.0(229.8*V)31.7.0(4.12*A)\r\n!\r\n"
    found = parse_data(text)
    assert [(d.name, d.value, d.unit) for d in found] == [
        ("0.0.0", "12345678", ""), ("1-0:1.8.0*255", "012345.67", "kWh"), ("32.7.0", "229.8", "V"),
        ("31.7.0", "4.12", "A")]
    with pytest.raises(Iec62056Error, match="line 2"):
        parse_data("1.8.0(1*kWh)\r\ngarbage here\r\n")
    with pytest.raises(Iec62056Error, match="address"):
        sign_on("12345678!/?")


def bus(device: str, timeout: float = 0.3, baudrate: int = 9600) -> Iec62056Bus:
    return Iec62056Bus(BusConfig(name="iec", kind="iec62056-21", device=device, timeout=timeout,
                                 baudrate=baudrate), PROFILES)


def meter(profile: str, password: str = "", address: str = "", meter_id: str = "M1") -> MeterConfig:
    return MeterConfig(id=meter_id, bus="iec", unit=1, profile=profile, role="subscriber", address=address,
                       password=password)


def on_pty(pty_pair, *meters) -> Iec62056Bus:
    meter_end, gateway_end, stop = pty_pair
    serve_serial(meter_end, SimulatedLine(list(meters)), stop)
    # A pseudo-terminal refuses a rate change on a 7E1 line (EINVAL), so both ends stay at 300 baud: the
    # meter offers 9600 and the gateway agrees on its own highest, 300. The switch is exercised over TCP.
    return bus(gateway_end, baudrate=300)


def test_a_ce301_is_read_over_a_serial_line_in_programming_mode(pty_pair):
    line = on_pty(pty_pair, ce301(password="777777"))
    values = asyncio.run(line.read(meter("energomera-ce301", password="777777")))
    assert values["import_kwh"] == "16907.9477764"
    assert (values["import_kwh_t1"], values["import_kwh_t2"]) == ("11504.3875082", "3628.2698795")
    assert (values["voltage_l1"], values["voltage_l2"], values["voltage_l3"]) == ("233.751", "235.418", "234.796")
    assert values["power_w"] == "526.6000" and values["frequency_hz"] == "49.96"
    # The line is free again after the break: a second session reads the same.
    assert asyncio.run(line.read(meter("energomera-ce301", password="777777")))["import_kwh"] == "16907.9477764"


def test_a_wrong_password_is_named_and_costs_one_session(pty_pair):
    line = on_pty(pty_pair, ce301(password="777777"))
    with pytest.raises(MeterUnavailable, match="refused the password"):
        asyncio.run(line.read(meter("energomera-ce301", password="000000")))
    assert asyncio.run(line.read(meter("energomera-ce301", password="777777"), ("import_kwh",))) == {
        "import_kwh": "16907.9477764"}


@pytest.mark.parametrize(("fault", "message"), [
    ("silent", "no answer to the sign-on within 0.3 s"),
    ("truncate", "stopped after"),
    ("bad_check", "BCC"),
])
def test_a_failing_meter_costs_one_timeout_and_says_why(pty_pair, fault, message):
    line = on_pty(pty_pair, obis_meter(fault=fault, address="2"), obis_meter(address="1"))
    started = time.monotonic()
    with pytest.raises(MeterUnavailable, match=message):
        asyncio.run(line.read(meter("iec62056-obis-readout", address="2")))
    assert time.monotonic() - started < 2.0
    # The other meter on the same line answers at once.
    assert asyncio.run(line.read(meter("iec62056-obis-readout", address="1")))["import_kwh"] == "12345.67"


def test_an_obis_readout_over_tcp_gives_every_value_of_the_profile():
    port = free_port()
    server = serve_tcp("127.0.0.1", port, SimulatedLine([obis_meter()]))
    try:
        values = asyncio.run(bus(f"socket://127.0.0.1:{port}").read(meter("iec62056-obis-readout")))
    finally:
        server.shutdown()
        server.server_close()
    assert values == {
        "import_kwh": "12345.67",  # the current total, not the last billing period's 1.8.0*01
        "import_kwh_t1": "8000.01", "import_kwh_t2": "4345.66", "export_kwh": "0.00",
        "voltage_l1": "229.8", "voltage_l2": "231.0", "voltage_l3": "228.4", "current_l1": "4.12",
        "power_w": "944.000", "frequency_hz": "50.01"}


def test_a_profile_the_meter_does_not_know_is_named():
    line = SimulatedLine([ce301(password="1")])
    line.feed(sign_on())
    line.feed(option_select("5", "1"))
    assert line.feed(password("1", "sum7")) == b"\x06"
    assert parse_data(block_text(line.feed(read("NOSUCH", check="sum7")), "sum7"))[0].value == "ERR12"


def test_the_configuration_opens_an_iec_bus_and_refuses_a_modbus_profile_on_it(tmp_path: Path):
    path = tmp_path / "gateway.toml"
    head = ('[gateway]\nid = "gw-1"\ndata_dir = "data"\n[cloud]\nurl = "http://127.0.0.1:1"\n'
            '[[bus]]\nname = "optical"\nkind = "iec62056-21"\ndevice = "/dev/ttyUSB0"\n')
    path.write_text(head + '[[meter]]\nid = "CE-1"\nbus = "optical"\nprofile = "energomera-ce301"\n'
                    'role = "subscriber"\nline = "1"\naccount = "001"\npassword = "777777"\n', encoding="utf-8")
    config = load_config(path)
    assert config.buses[0].timeout == 1.5  # the standard's longest reaction time, unless set
    assert config.meters[0].password == "777777"
    assert isinstance(open_bus(config.buses[0], PROFILES), Iec62056Bus)
    path.write_text(head + '[[meter]]\nid = "SDM"\nbus = "optical"\nunit = 3\nprofile = "eastron-sdm120"\n'
                    'role = "subscriber"\nline = "1"\naccount = "001"\n', encoding="utf-8")
    with pytest.raises(ConfigError, match="profile 'eastron-sdm120' is for modbus meters, bus 'optical' speaks"):
        load_config(path)
