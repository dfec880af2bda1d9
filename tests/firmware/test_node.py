"""The line node under a real MicroPython: pulses, flash records, voltage, and Modbus RTU frames from pymodbus."""

from __future__ import annotations

import importlib.util
import struct
from pathlib import Path

import pytest
from pymodbus.framer import FramerRTU
from pymodbus.pdu import DecodePDU
from pymodbus.pdu.register_message import (
    ReadHoldingRegistersRequest,
    ReadInputRegistersRequest,
    WriteSingleRegisterRequest,
)

UNIT = 10
NODE = """
import json, machine
from fake_hardware import FakeHardware, FakeFlash
from node import LineNode
import register_map as rm
hw = FakeHardware(volts=(230.0, 226.4, 231.8))
node = LineNode(hw, {"address": {UNIT}})
uart = machine.UART.instances[-1]

def exchange(frame_hex):
    uart.feed(bytes.fromhex(frame_hex))
    node.step()
    return uart.take().hex()
""".replace("{UNIT}", str(UNIT))


def frame(request) -> str:
    return FramerRTU(DecodePDU(True)).buildFrame(request).hex()


def answer(response_hex: str):
    _, pdu = FramerRTU(DecodePDU(False)).handleFrame(bytes.fromhex(response_hex), UNIT, 0)
    assert pdu is not None, f"no valid RTU frame (CRC, unit) in {response_hex}"
    return pdu


def test_pulses_are_debounced_and_counted_in_wh(micropython):
    [result] = micropython("""
import json
from pulses import PulseCounter
counter = PulseCounter(3, [1000, 800, 3200], debounce_ms=20)
accepted = [counter.edge(0, t) for t in (0, 5, 19, 20, 60)]   # bounce at 5 and 19 ms is ignored
for t in range(1600):
    counter.edge(1, 1000 + t * 50)
for t in range(3200):
    counter.edge(2, 1000 + t * 50)
print(json.dumps({"accepted": accepted, "pulses": counter.pulses, "wh": [counter.energy_wh(i) for i in range(3)]}))
""")
    assert result["accepted"] == [True, False, False, True, True]
    assert result["pulses"] == [3, 1600, 3200]
    assert result["wh"] == [3, 2000, 1000]


def test_the_newest_valid_record_wins_after_a_torn_write_at_every_byte(micropython):
    [result] = micropython("""
import json
from fake_hardware import FakeFlash
from storage import CounterStore, RECORD
outcomes = []
for cut in range(RECORD):
    flash = FakeFlash(8192)
    store = CounterStore(flash, flash.size)
    store.save([100, 200, 300, 0, 0, 0, 0, 7])
    flash.tear_after = cut
    store.save([150, 250, 350, 0, 0, 0, 0, 8])
    outcomes.append(CounterStore(flash, flash.size).load())
print(json.dumps(outcomes))
""")
    assert len(result) == 64
    # Cut at any byte before the CRC is complete: the previous record is what comes back.
    torn = [outcome for cut, outcome in enumerate(result) if cut < 46]
    assert all(outcome == [100, 200, 300, 0, 0, 0, 0, 7] for outcome in torn)
    # Past the CRC (only padding left unwritten) the new record is whole and wins.
    assert all(outcome == [150, 250, 350, 0, 0, 0, 0, 8] for outcome in result[46:])


def test_the_ring_wraps_across_sectors_and_erases_only_the_oldest(micropython):
    [result] = micropython("""
import json
from fake_hardware import FakeFlash
from storage import CounterStore
flash = FakeFlash(8192)                     # two sectors, 128 records
store = CounterStore(flash, flash.size)
for n in range(1, 301):
    store.save([n, 0, 0, 0, 0, 0, 0, 0])
    if n in (64, 65, 128, 129):
        assert CounterStore(flash, flash.size).load()[0] == n
print(json.dumps({"loaded": CounterStore(flash, flash.size).load()[0], "erases": flash.erases, "writes": flash.writes}))
""")
    assert result == {"loaded": 300, "erases": 5, "writes": 300}


def test_a_power_cut_loses_at_most_the_configured_pulses(micropython):
    [result] = micropython("""
import json
from fake_hardware import FakeHardware
from node import LineNode
hw = FakeHardware()
node = LineNode(hw, {"save_every_pulses": 100})
for n in range(250):
    hw.pulse(0)
    node.maybe_save()
# power cut: a new node boots from the same flash
again = LineNode(FakeHardware(flash=hw.flash), {"save_every_pulses": 100})
print(json.dumps({"before": node.counter.pulses[0], "after": again.counter.pulses[0]}))
""")
    assert result["before"] == 250
    assert 250 - 100 <= result["after"] <= 250


def test_voltage_rms_over_whole_cycles_and_10_second_window(micropython):
    [result] = micropython("""
import json
from fake_hardware import FakeHardware
from node import LineNode
hw = FakeHardware(volts=(230.0, 207.5, 244.0))
node = LineNode(hw)
for second in range(11):
    if second == 5:
        hw.volts[0] = 221.0
    node.measure_voltage()
    hw.advance(1000)
w = node.voltages[0]
print(json.dumps({"mean": w.mean, "min": w.minimum, "max": w.maximum, "l2": node.voltages[1].mean}))
""")
    assert result["min"] == pytest.approx(221.0, abs=0.3)
    assert result["max"] == pytest.approx(230.0, abs=0.3)
    assert result["mean"] == pytest.approx((5 * 230.0 + 5 * 221.0) / 10, abs=0.3)
    assert result["l2"] == pytest.approx(207.5, abs=0.3)


def test_modbus_input_registers_answer_with_valid_crc_and_values(micropython):
    requests = [frame(ReadInputRegistersRequest(address=0, count=0x26, dev_id=UNIT)),
                frame(ReadInputRegistersRequest(address=0x0200, count=2, dev_id=UNIT))]
    [result] = micropython(NODE + f"""
hw.pulse(0, 1234)
hw.pulse(3, 5)
node.measure_voltage()
hw.advance(11000)
node.measure_voltage()
print(json.dumps([exchange(f) for f in {requests!r}]))
""")
    registers = answer(result[0]).registers
    wh = [(registers[2 * i] << 16) | registers[2 * i + 1] for i in range(8)]
    assert wh == [1234, 0, 0, 5, 0, 0, 0, 0]
    assert registers[0x10] == 2300 and registers[0x13] == 2264 and registers[0x16] == 2318  # volts × 10
    assert (registers[0x23] << 16 | registers[0x24]) == 0x00C0FFEE
    assert registers[0x22] == 0x0100
    assert registers[0x25] & 0x0001  # storage OK
    refused = bytes.fromhex(result[1])
    assert refused[1] == 0x84 and refused[2] == 0x02  # illegal data address


def test_settings_are_writable_only_after_the_unlock_code(micropython):
    read = frame(ReadHoldingRegistersRequest(address=0x0110, count=2, dev_id=UNIT))
    status = frame(ReadInputRegistersRequest(address=0x25, count=1, dev_id=UNIT))
    locked = frame(WriteSingleRegisterRequest(address=0x0110, registers=[2000], dev_id=UNIT))
    unlock = frame(WriteSingleRegisterRequest(address=0x0100, registers=[0xB417], dev_id=UNIT))
    [result] = micropython(NODE + f"""
print(json.dumps([exchange(f) for f in {[locked, read, status, unlock, locked, read, status]!r}]))
""")
    assert answer(result[1]).registers == [1000, 1000]  # the locked write was undone
    assert answer(result[2]).registers[0] & 0x0004  # … and the status says so
    assert answer(result[5]).registers == [2000, 1000]  # unlocked: pulses per kWh of input 1 changed
    assert answer(result[6]).registers[0] & 0x0002  # unlocked flag


def test_the_watchdog_is_armed_and_fed(micropython):
    [result] = micropython(NODE + """
for _ in range(3):
    node.step()
print(json.dumps({"timeout": hw.watchdog_ms, "fed": hw.fed}))
""")
    assert result == {"timeout": 8000, "fed": 3}


def test_the_record_layout_is_what_the_docs_say():
    # The firmware's own module, loaded from its file (the firmware is not a package of this project).
    spec = importlib.util.spec_from_file_location("storage", Path(__file__).resolve().parents[2] / "firmware" / "storage.py")
    storage = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(storage)
    record = storage.encode(7, [1, 2, 3])
    assert len(record) == storage.RECORD == 64
    assert struct.unpack("<H", record[:2])[0] == 0xB1A5
    assert storage.decode(record) == (7, [1, 2, 3, 0, 0, 0, 0, 0], 0)
