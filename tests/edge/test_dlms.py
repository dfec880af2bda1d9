"""DLMS/COSEM electricity meters over HDLC: the Green Book's association frames (dlms-cosem's own test vectors)
decoded and answered byte for byte, frames checked before they are believed, and meters read over a socat PTY
pair and over TCP — energy by tariff zone and voltage exactly, the lowest security and low-level security with
a right and a wrong password, and the failures a line has: silence, a frame cut short, a wrong FCS."""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal

import pytest
from dlms_cosem import dlms_data, enumerations
from dlms_cosem.hdlc import frames
from dlms_cosem.hdlc.address import HdlcAddress
from dlms_cosem.protocol import acse
from hypothesis import given
from hypothesis import strategies as st

from edge.config import BusConfig, ConfigError, MeterConfig, load_config
from edge.dlms_bus import DlmsBus, DlmsError, check_frame, plain, register_value
from edge.dlms_simulator import (
    SimulatedDlmsLine,
    electricity_meter,
    serve_serial,
    serve_tcp,
)
from edge.meter_reader import MeterUnavailable, open_bus
from provisioning.ports import free_port
from shared.profiles import DlmsObjectDef, ProfileError, load_profiles, parse_profile

PROFILES = load_profiles()
# What the simulated meter holds, read through the generic profile: every value exact, as the meter scales it.
READING = {"serial_number": "00123456", "import_kwh": "12345.67", "import_kwh_t1": "8000.012",
           "import_kwh_t2": "4345.658", "export_kwh": "0.000", "voltage_l1": "229.8", "voltage_l2": "231.0",
           "voltage_l3": "228.4"}

# The Green Book's examples, as dlms-cosem's tests carry them (tests/test_acse/test_aarq.py, test_aare.py).
AARQ_LOWEST = bytes.fromhex("601DA109060760857405080101BE10040E01000000065F1F0400007E1F04B0")
AARQ_LLS = bytes.fromhex("6036A1090607608574050801018A0207808B0760857405080201AC0A80083132333435363738"
                         "BE10040E01000000065F1F0400007E1F04B0")
AARE_ACCEPTED = bytes.fromhex("6129A109060760857405080101A203020100A305A103020100BE10040E0800065F1F040000501F01F40007")
AARE_WRONG_CONTEXT = bytes.fromhex("6129A109060760857405080101A203020101A305A103020102BE10040E0800065F1F040000501F01F40007")
SNRM = bytes.fromhex("7EA0070321930F017E")  # client 16 to server 1: the classic first frame


def meter(unit: int = 17, password: str = "", meter_id: str = "EM-1", profile: str = "dlms-electricity-meter"):
    return MeterConfig(id=meter_id, bus="dlms", unit=unit, profile=profile, role="subscriber", password=password)


def bus_at(device: str, timeout: float = 1.0) -> DlmsBus:
    return open_bus(BusConfig(name="dlms", kind="dlms", device=device, timeout=timeout), PROFILES)


def line_on_pty(pty_pair, *meters, timeout: float = 1.0) -> DlmsBus:
    meter_end, gateway_end, stop = pty_pair
    serve_serial(meter_end, SimulatedDlmsLine(list(meters)), stop)
    return bus_at(gateway_end, timeout)


@pytest.fixture
def tcp_line():
    servers = []

    def start(*meters) -> DlmsBus:
        port = free_port()
        servers.append(serve_tcp("127.0.0.1", port, SimulatedDlmsLine(list(meters))))
        return bus_at(f"socket://127.0.0.1:{port}")

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def test_the_green_books_association_frames_decode_and_the_simulated_meter_answers_them_byte_for_byte():
    lowest, lls = acse.ApplicationAssociationRequest.from_bytes(AARQ_LOWEST), \
        acse.ApplicationAssociationRequest.from_bytes(AARQ_LLS)
    assert lowest.authentication is None
    assert (lls.authentication, bytes(lls.authentication_value)) == (enumerations.AuthenticationMechanism.LLS,
                                                                      b"12345678")
    accepted, refused = acse.ApplicationAssociationResponse.from_bytes(AARE_ACCEPTED), \
        acse.ApplicationAssociationResponse.from_bytes(AARE_WRONG_CONTEXT)
    assert accepted.result is enumerations.AssociationResult.ACCEPTED
    assert (refused.result, refused.result_source_diagnostics) == (
        enumerations.AssociationResult.REJECTED_PERMANENT,
        enumerations.AcseServiceUserDiagnostics.APPLICATION_CONTEXT_NAME_NOT_SUPPORTED)

    # The simulated meter at HDLC address 1 (no physical address), offering the Green Book's conformance, opens
    # the link to the classic SNRM and answers the Green Book's AARQ with the Green Book's AARE.
    simulated = electricity_meter(physical=0, with_list=False)
    line = SimulatedDlmsLine([simulated])
    client, server = HdlcAddress(16, None, "client"), HdlcAddress(1, None, "server")
    ua = line.feed(SNRM)
    assert frames.UnNumberedAcknowledgmentFrame.from_bytes(ua).payload.startswith(b"\x81\x80")
    request = frames.InformationFrame(server, client, b"\xe6\xe6\x00" + AARQ_LOWEST, 0, 0).to_bytes()
    answer = frames.InformationFrame.from_bytes(line.feed(request))
    assert answer.payload == b"\xe6\xe7\x00" + AARE_ACCEPTED


def test_an_hdlc_frame_is_checked_before_it_is_believed():
    assert check_frame(SNRM) == (b"\x21", 0x93)  # from client 16, SNRM with the poll bit
    damaged = SNRM[:-2] + bytes([SNRM[-2] ^ 0x01]) + SNRM[-1:]
    with pytest.raises(DlmsError, match="bad FCS"):
        check_frame(damaged)
    client, server = HdlcAddress(16, None, "client"), HdlcAddress(1, 17, "server")
    good = frames.InformationFrame(client, server, b"\xe6\xe7\x00" + AARE_ACCEPTED, 0, 1).to_bytes()
    assert check_frame(good)[0] == server.to_bytes()
    header_broken = bytearray(good)
    header_broken[7] ^= 0xFF  # the HCS; the FCS is made right again, as a meter with a bug would send it
    header_broken[-3:-1] = frames.FCS.calculate_for(bytes(header_broken[1:-3]))
    with pytest.raises(DlmsError, match="bad HCS"):
        check_frame(bytes(header_broken))


def test_energy_by_tariff_zone_and_voltage_exactly_over_a_serial_line(pty_pair):
    line = line_on_pty(pty_pair, electricity_meter())
    values = asyncio.run(line.read(meter()))
    assert values == READING
    # the total (kept with scaler 1, in tens of Wh) is the sum of the zones (kept in Wh), to the Wh
    assert Decimal(values["import_kwh"]) == Decimal(values["import_kwh_t1"]) + Decimal(values["import_kwh_t2"])


def test_two_meters_on_one_line_over_tcp_one_without_get_with_list(tcp_line):
    # the second at a physical address past 127, which takes HDLC's four-byte address form
    line = tcp_line(electricity_meter(17), electricity_meter(4660, with_list=False, serial_number="00999999"))
    assert asyncio.run(line.read(meter(17))) == READING
    before = line.requests
    assert asyncio.run(line.read(meter(4660, meter_id="EM-2"))) == {**READING, "serial_number": "00999999"}
    assert line.requests - before == 1 + 1 + 15  # the session, the AARQ, one GET per attribute


def test_low_level_security_with_the_right_and_a_wrong_password(tcp_line):
    line = tcp_line(electricity_meter(password="12345678", public_registers=False))
    assert asyncio.run(line.read(meter(password="12345678"))) == READING
    started = time.monotonic()
    with pytest.raises(MeterUnavailable, match=r"refused the association with low-level security "
                                               r"\(rejected_permanent, authentication-failed\): the password is wrong"):
        asyncio.run(line.read(meter(password="00000000")))
    assert time.monotonic() - started < 1.0  # a refusal is an answer, not a timeout
    with pytest.raises(MeterUnavailable, match=r"denies 1\.0\.1\.8\.0\.255 \(import_kwh\) to the lowest security "
                                               r"association \(read-write-denied\): give meter EM-1 its password"):
        asyncio.run(line.read(meter()))
    assert asyncio.run(line.read(meter(), ("serial_number",))) == {"serial_number": "00123456"}  # public


@pytest.mark.parametrize(("fault", "message", "timeouts"), [
    ("silent", "no answer to the SNRM within 0.5 s", 1),
    ("truncate", "the answer to the AARQ stopped after", 1),
    ("bad_fcs", "the answer to the AARQ: bad FCS", 0),  # refused as it arrives: no waiting at all
])
def test_a_failing_meter_costs_one_timeout_and_says_why(pty_pair, fault, message, timeouts):
    timeout = 0.5
    line = line_on_pty(pty_pair, electricity_meter(17, fault=fault), electricity_meter(18), timeout=timeout)
    started = time.monotonic()
    with pytest.raises(MeterUnavailable, match=message):
        asyncio.run(line.read(meter(17)))
    assert timeouts * timeout <= time.monotonic() - started < (timeouts + 1) * timeout
    started = time.monotonic()
    assert asyncio.run(line.read(meter(18, meter_id="EM-2"))) == READING  # the next meter answers at once
    assert time.monotonic() - started < timeout


def test_an_answer_longer_than_an_hdlc_frame_comes_in_segments_and_a_missing_object_is_left_out(tcp_line, caplog):
    # a 120-letter serial number makes the answer outgrow the 128-byte information field: it comes in segments
    simulated = electricity_meter(serial_number="EKT" + "9" * 117)
    del simulated.objects["1.0.52.7.0.255"], simulated.objects["1.0.72.7.0.255"]  # a single-phase meter
    line = tcp_line(simulated)
    values = asyncio.run(line.read(meter()))
    assert values["import_kwh"] == "12345.67" and values["voltage_l1"] == "229.8"
    assert "voltage_l2" not in values
    # a batch carries numbers only (the cloud refuses anything else): a serial with letters is left out, and said
    assert "serial_number" not in values and "0.0.96.1.0.255 (serial_number) is 'EKT999" in caplog.text
    with pytest.raises(MeterUnavailable, match=r"has none of 1\.0\.52\.7\.0\.255, 1\.0\.72\.7\.0\.255"):
        asyncio.run(line.read(meter(), ("voltage_l2", "voltage_l3")))


def test_a_value_holding_the_flag_byte_is_read_whole(tcp_line):
    # HDLC in DLMS does not escape 0x7E inside a frame: 0x7E7E7E7E Wh exported must not end the frame early.
    simulated = electricity_meter()
    simulated.objects["1.0.2.8.0.255"].value = dlms_data.DoubleLongUnsignedData(0x7E7E7E7E)
    line = tcp_line(simulated)
    assert asyncio.run(line.read(meter()))["export_kwh"] == "2122219.134"


@given(value=st.integers(0, 2**32 - 1), scaler=st.integers(-6, 3))  # to 4.3 × 10^12 Wh: what a reading holds
def test_a_registers_value_is_exact_in_the_profiles_unit(value, scaler):
    energy = DlmsObjectDef("import_kwh", "1.0.1.8.0.255", 3, "kWh")
    scaler_unit = dlms_data.DataStructure([dlms_data.IntegerData(scaler), dlms_data.EnumData(30)])
    kwh = register_value(energy, dlms_data.DoubleLongUnsignedData(value), scaler_unit)
    assert kwh == Decimal(value) * Decimal(10) ** scaler / 1000
    text = plain(kwh, "1.0.1.8.0.255")  # as a batch carries it: fixed-point, the same number
    assert "E" not in text and Decimal(text) == kwh


def test_a_value_a_reading_cannot_hold_is_refused_not_rounded():
    with pytest.raises(DlmsError, match=r"1\.0\.1\.8\.0\.255 = 4294967295000 is outside what a reading holds"):
        plain(Decimal(2**32 - 1).scaleb(3), "1.0.1.8.0.255")
    assert plain(Decimal("1.24E+6"), "x") == "1240000" and plain(Decimal("0.0000012300"), "x") == "0.00000123"


def test_a_register_in_a_unit_the_profile_does_not_keep_is_refused():
    voltage = DlmsObjectDef("voltage_l1", "1.0.32.7.0.255", 3, "V")
    in_amperes = dlms_data.DataStructure([dlms_data.IntegerData(-2), dlms_data.EnumData(33)])
    with pytest.raises(DlmsError, match=r"1\.0\.32\.7\.0\.255 \(voltage_l1\) is in A, the profile keeps it in V"):
        register_value(voltage, dlms_data.UnsignedLongData(2298), in_amperes)


def test_a_dlms_bus_in_the_gateway_configuration(tmp_path):
    path = tmp_path / "gateway.toml"
    path.write_text('[gateway]\nid = "gw-dlms"\n[cloud]\nurl = "http://127.0.0.1:1"\n'
                    '[[bus]]\nname = "rs485"\nkind = "dlms"\ndevice = "/dev/ttyUSB2"\n'
                    '[[meter]]\nid = "CE308-1"\nbus = "rs485"\nunit = 4660\nprofile = "energomera-ce308-dlms"\n'
                    'password = "12345678"\nrole = "subscriber"\nline = "1"\n', encoding="utf-8")
    config = load_config(path)
    assert (config.buses[0].kind, config.buses[0].timeout, config.buses[0].baudrate) == ("dlms", 1.0, 9600)
    assert (config.meters[0].unit, config.meters[0].password) == (4660, "12345678")
    assert isinstance(open_bus(config.buses[0], PROFILES), DlmsBus)
    path.write_text(path.read_text().replace("energomera-ce308-dlms", "mbus-heat-meter"), encoding="utf-8")
    with pytest.raises(ConfigError, match="profile 'mbus-heat-meter' is for mbus meters, bus 'rs485' speaks dlms"):
        load_config(path)


def test_a_dlms_profile_names_what_is_wrong_with_it():
    head = '[profile]\nname = "x"\nprotocol = "dlms"\n'
    with pytest.raises(ProfileError, match=r"x.toml: \[\[object\]\] #1 \(import_kwh\): obis must be six groups"):
        parse_profile(head + '[[object]]\nmeaning = "import_kwh"\nobis = "1.8.0"\n', "x.toml")
    with pytest.raises(ProfileError, match="unit must be one of"):
        parse_profile(head + '[[object]]\nmeaning = "serial_number"\nobis = "0.0.96.1.0.255"\nclass = 1\n'
                      'unit = "kWh"\n', "x.toml")
    with pytest.raises(ProfileError, match="has no \\[\\[object\\]\\] entries"):
        parse_profile(head, "x.toml")
