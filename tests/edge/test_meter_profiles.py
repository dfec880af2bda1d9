"""The profiles of meters common in Ukraine (issue 20): every one loads and names its source; each M-Bus heat
meter's profile decodes a real frame of its make from libmbus's test-frames corpus, exactly, also read over a
socat PTY pair by primary and by secondary address; each IEC 62056-21 profile's codes are read off a simulated
meter's data readout or programming-mode answers over TCP, every value where the profile says it is."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from importlib import resources

import pytest

from edge.config import BusConfig, MeterConfig
from edge.iec62056_bus import Iec62056Bus
from edge.iec62056_simulator import SimulatedLine, SimulatedMeter
from edge.iec62056_simulator import serve_tcp as serve_iec
from edge.mbus_bus import MbusBus, records_of, values_of
from edge.mbus_simulator import SimulatedMbusLine, SimulatedMbusMeter, serve_serial
from provisioning.ports import free_port
from shared.profiles import load_profiles, parse_profile

PROFILES = load_profiles()
HEAT = ("kamstrup-multical", "sensus-pollucom", "sensus-pollustat", "danfoss-sonometer")
ELECTRICITY = ("nik-2102-2104", "nik-2303", "energomera-ce102m", "energomera-ce303", "elgama-gama100",
               "elgama-gama300", "teletec-mtx1", "teletec-mtx3")

# RSP_UD frames of real meters, from libmbus's test-frames corpus (github.com/rscada/libmbus, test/test-frames).
FRAMES = {
    # kamstrup_multical_601.hex: a MULTICAL 601 at primary address 0x11 (E1 37 351 kWh, V1 561.08 m³).
    "kamstrup_multical_601": (
        "68 F7 F7 68 08 11 72 17 58 85 06 2D 2C 08 04 04 00 00 00 0C 78 17 58 85 06 04 06 E7 91 00 00 04 "
        "14 2C DB 00 00 04 22 D9 03 00 00 04 59 B9 27 00 00 04 5D 08 12 00 00 04 61 B1 15 00 00 04 2D 5B "
        "01 00 00 14 2D C0 01 00 00 04 3B 1F 02 00 00 14 3B 74 02 00 00 84 10 06 00 00 00 00 84 20 06 00 "
        "00 00 00 84 40 14 00 00 00 00 84 80 40 14 00 00 00 00 84 C0 40 06 00 00 00 00 04 6D 1A 2F 65 11 "
        "44 06 51 82 00 00 44 14 B2 C3 00 00 54 2D 26 02 00 00 54 3B 03 04 00 00 C4 10 06 00 00 00 00 C4 "
        "20 06 00 00 00 00 C4 40 14 00 00 00 00 C4 80 40 14 00 00 00 00 C4 C0 40 06 00 00 00 00 42 6C 5F "
        "1C 0F 00 00 00 00 E7 E4 00 00 63 66 00 00 00 00 00 00 00 00 00 00 00 00 00 00 5B C9 A5 02 34 53 "
        "00 00 E0 B2 03 00 89 9C 68 00 00 00 00 00 01 00 01 07 07 09 01 03 00 00 00 00 00 98 16"),
    # sen_pollucom_e.hex: a PolluCom E (19 019 kWh, 1 621.119 m³, flow 35.9 °C, return 23.3 °C).
    "sen_pollucom_e": (
        "68 42 42 68 08 00 72 45 00 94 63 AE 4C 08 04 F9 00 00 00 0C 06 19 90 01 00 0C 13 19 11 62 01 0C "
        "3B 00 00 00 00 0C 2B 00 00 00 00 02 5A 67 01 02 5E E9 00 03 60 46 31 00 0C 78 45 00 94 63 0C FD "
        "10 45 00 94 63 1F B6 16"),
    # SEN_Pollustat.hex: a heat/cooling PolluStat (39 831 kWh, 6 162.878 m³, flow 3.230039 m³/h).
    "SEN_Pollustat": (
        "68 71 71 68 08 04 72 88 17 01 00 AE 4C 06 0D 3E 00 00 00 04 6D 3B 0E E7 14 34 6D 00 00 01 01 34 "
        "FD 17 00 00 00 04 04 20 92 22 F1 00 04 24 A4 1A E7 00 04 86 3B 97 9B 00 00 04 13 BE 09 5E 00 05 "
        "2E B1 D1 2E BE 05 3E F5 B8 4E 40 05 5B B8 2D F9 41 05 5F 78 8B F9 41 05 63 00 80 3B BD 04 BE 50 "
        "71 BB B0 00 04 BE 58 F4 02 00 00 0C 78 88 17 01 00 02 7F 10 B5 5D 16"),
    # SEN_Sensus-PolluStat-E.hex: a PolluStat E, its counters still at zero (flow 20.1 °C, return 20.2 °C).
    "SEN_Sensus-PolluStat-E": (
        "68 42 42 68 08 00 72 95 50 26 21 AE 4C 0E 04 B5 10 00 00 0C 06 00 00 00 00 0C 13 00 00 00 00 0C "
        "3B 00 00 00 00 0C 2B 00 00 00 00 02 5A C9 00 02 5E CA 00 03 60 00 00 00 0C 78 95 50 26 21 0C FD "
        "10 95 50 26 21 1F EC 16"),
}


def frame(name: str) -> bytes:
    return bytes.fromhex(FRAMES[name].replace(" ", ""))


# What each make's profile reads from its frame: Gcal to the millionth (1 Gcal = 1 163 kWh), m³, °C, m³/h.
DECODED = [
    ("kamstrup-multical", "kamstrup_multical_601", {
        "heat_gcal": "32.116079", "volume_m3": "561.08", "flow_temp_c": "101.69", "return_temp_c": "46.16",
        "flow_m3h": "0.543"}),
    ("sensus-pollucom", "sen_pollucom_e", {
        "heat_gcal": "16.353396", "volume_m3": "1621.119", "flow_temp_c": "35.9", "return_temp_c": "23.3",
        "flow_m3h": "0"}),
    ("sensus-pollustat", "SEN_Pollustat", {
        "heat_gcal": "34.248495", "volume_m3": "6162.878", "flow_temp_c": "31.147324", "return_temp_c": "31.1931",
        "flow_m3h": "3.230039"}),
    ("sensus-pollustat", "SEN_Sensus-PolluStat-E", {
        "heat_gcal": "0.000000", "volume_m3": "0", "flow_temp_c": "20.1", "return_temp_c": "20.2", "flow_m3h": "0"}),
]


def heat_meter(profile: str, unit: int = 5, address: str = "") -> MeterConfig:
    return MeterConfig(id="HM-1", bus="mbus", unit=unit, profile=profile, role="subscriber", line="1",
                       address=address)


@pytest.mark.parametrize("name", HEAT + ELECTRICITY)
def test_every_profile_loads_and_names_where_its_codes_come_from(name):
    text = (resources.files("shared.profiles") / f"{name}.toml").read_text(encoding="utf-8")
    profile = parse_profile(text, f"shared/profiles/{name}.toml")
    assert profile == PROFILES[name]
    assert profile.protocol == ("mbus" if name in HEAT else "iec62056-21")
    head = text.split("[profile]")[0]
    assert "# Source:" in head, f"{name}: the header names no source"
    assert "heat_gcal" in profile.meanings if name in HEAT else "import_kwh" in profile.meanings


def test_a_sonometer_without_a_frame_of_its_own_reads_the_standard_records():
    # No SonoMeter frame in the corpus: its profile keeps to the standard heat meter's records (EN 13757-3).
    assert PROFILES["danfoss-sonometer"].records == PROFILES["mbus-heat-meter"].records


@pytest.mark.parametrize(("profile", "name", "expected"), DECODED)
def test_a_heat_meters_profile_decodes_a_real_frame_of_its_make_exactly(profile, name, expected):
    _, records = records_of(frame(name), None)
    assert values_of(records, PROFILES[profile].records, heat_meter(profile)) == expected


@pytest.mark.parametrize(("profile", "name", "expected"), DECODED[:3])
def test_a_real_frame_is_read_over_a_pty_by_primary_and_by_secondary_address(pty_pair, profile, name, expected):
    meter_end, gateway_end, stop = pty_pair
    real = SimulatedMbusMeter(5, frame(name))
    serve_serial(meter_end, SimulatedMbusLine([real, SimulatedMbusMeter(6, frame("SEN_Sensus-PolluStat-E"))]), stop)
    line = MbusBus(BusConfig(name="mbus", kind="mbus", device=gateway_end, baudrate=2400, timeout=0.3), PROFILES)
    try:
        assert asyncio.run(line.read(heat_meter(profile))) == expected
        assert asyncio.run(line.read(heat_meter(profile, address=real.secondary))) == expected
    finally:
        line.close()


def iec_answers(profile_name: str) -> tuple[SimulatedMeter, dict[str, str]]:
    """A simulated meter that knows every code the profile lists, each value distinct, and what the profile
    should read from it (the value at the profile's index, times its scale)."""
    profile = PROFILES[profile_name]
    answers: dict[str, list[str]] = {}
    expected = {}
    for number, value in enumerate(profile.values, start=1):
        known = answers.setdefault(value.code, [])
        while len(known) <= value.index:
            known.append(f"{number}{len(known)}.{number:03d}")
        expected[value.meaning] = str(Decimal(known[value.index]) * Decimal(value.scale))
    if profile.mode == "programming":
        return SimulatedMeter(identification="/EKT5CE303v11", check=profile.check, password="777777",
                              parameters=answers), expected
    readout = [f"{code}({found[0]})" for code, found in answers.items()]
    return SimulatedMeter(identification="/NIK5NIK2303", check=profile.check, readout=readout), expected


@pytest.mark.parametrize("name", ELECTRICITY)
def test_an_iec_profiles_codes_are_read_where_it_says(name):
    simulated, expected = iec_answers(name)
    port = free_port()
    server = serve_iec("127.0.0.1", port, SimulatedLine([simulated]))
    bus = Iec62056Bus(BusConfig(name="iec", kind="iec62056-21", device=f"socket://127.0.0.1:{port}", timeout=1.0),
                      PROFILES)
    meter = MeterConfig(id="M1", bus="iec", unit=1, profile=name, role="subscriber", line="1",
                        password="777777" if PROFILES[name].mode == "programming" else "")
    try:
        assert asyncio.run(bus.read(meter)) == expected
    finally:
        bus.close()
        server.shutdown()
        server.server_close()


def test_a_nik_readout_gives_its_energy_from_the_registers_its_display_shows():
    # What a NIK meter shows (and the distribution company asks for): 15.8.0 total, 15.8.1 day, 15.8.2 night.
    simulated = SimulatedMeter(identification="/NIK5NIK2303", readout=[
        "0.0.0(00412377)", "15.8.0(012345.67*kWh)", "15.8.1(008000.01*kWh)", "15.8.2(004345.66*kWh)",
        "32.7.0(229.8*V)", "52.7.0(231.0*V)", "72.7.0(228.4*V)"])
    port = free_port()
    server = serve_iec("127.0.0.1", port, SimulatedLine([simulated]))
    bus = Iec62056Bus(BusConfig(name="iec", kind="iec62056-21", device=f"socket://127.0.0.1:{port}", timeout=1.0),
                      PROFILES)
    try:
        values = asyncio.run(bus.read(MeterConfig(id="M1", bus="iec", unit=1, profile="nik-2303", role="subscriber",
                                                  line="1")))
    finally:
        bus.close()
        server.shutdown()
        server.server_close()
    assert values == {"import_kwh": "12345.67", "import_kwh_t1": "8000.01", "import_kwh_t2": "4345.66",
                      "voltage_l1": "229.8", "voltage_l2": "231.0", "voltage_l3": "228.4"}
