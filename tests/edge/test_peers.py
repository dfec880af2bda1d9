"""Real peers: the gateway over Modbus RTU on a socat PTY pair, and mbpoll as an independent master."""

from __future__ import annotations

import asyncio
import os
import shutil
import struct
import subprocess
import time
from dataclasses import replace
from datetime import UTC, datetime

import pytest
from pymodbus.framer import FramerSocket
from pymodbus.pdu import DecodePDU
from pymodbus.pdu.register_message import ReadInputRegistersResponse

from edge.clock import VirtualClock
from edge.config import BusConfig, GatewayConfig, MeterConfig
from edge.gateway import Gateway, MeterCoordinator
from edge.modbus_bus import MeterUnavailable, ModbusBus
from edge.simulator import SimulatedStation
from edge.store import open_database
from provisioning.ports import free_port
from shared.profiles import load_profiles


def meter(scenario_meter, bus="line") -> MeterConfig:
    return MeterConfig(id=scenario_meter.meter, bus=bus, unit=scenario_meter.unit, profile=scenario_meter.profile,
                       role=scenario_meter.role, line=scenario_meter.line)


@pytest.mark.skipif(shutil.which("socat") is None, reason="socat is not installed (apt-get install socat)")
def test_the_gateway_reads_meters_over_rtu_on_a_serial_line(tmp_path, seed_scenario):
    station_end, gateway_end = str(tmp_path / "station-tty"), str(tmp_path / "gateway-tty")
    socat = subprocess.Popen(["socat", f"pty,raw,echo=0,link={station_end}", f"pty,raw,echo=0,link={gateway_end}"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            if os.path.exists(station_end) and os.path.exists(gateway_end):
                break
            time.sleep(0.05)
        clock = VirtualClock(seed_scenario.period_start)

        async def read():
            async with SimulatedStation(seed_scenario, clock, serial_port=station_end) as station:
                bus = ModbusBus(BusConfig(name="line", kind="rtu", device=gateway_end, baudrate=9600, timeout=1.0),
                                load_profiles())
                try:
                    values = [await bus.read(meter(m)) for m in seed_scenario.meters[:3]]
                    station.silence(seed_scenario.meters[3].unit)
                    started = time.monotonic()
                    with pytest.raises(MeterUnavailable):
                        await bus.read(meter(seed_scenario.meters[3]))
                    silent = time.monotonic() - started
                    after = await bus.read(meter(seed_scenario.meters[4]))  # the bus is not stalled
                    return values, silent, after, bus.requests
                finally:
                    bus.close()

        values, silent, after, requests = asyncio.run(read())
    finally:
        socat.terminate()
        socat.wait(timeout=5)
    assert [v["import_kwh"] for v in values] == [f"{m.start_kwh}.000" for m in seed_scenario.meters[:3]]
    assert silent < 2.5  # one short timeout, not retries
    assert after["import_kwh"] == f"{seed_scenario.meters[4].start_kwh}.000"
    # At 9600 baud a gap of more than 18 registers costs more than a new request: an SDM630 or SDM120 map
    # is read in two requests (2 + 2 + 2), the silent meter costs one, the next meter two again.
    assert requests == 2 + 2 + 2 + 1 + 2


@pytest.mark.skipif(shutil.which("mbpoll") is None, reason="mbpoll is not installed (apt-get install mbpoll)")
def test_mbpoll_reads_the_same_values_as_the_gateway(seed_scenario):
    port = free_port()
    clock = VirtualClock(seed_scenario.period_start)
    target = seed_scenario.meters[7]

    async def both():
        async with SimulatedStation(seed_scenario, clock, "127.0.0.1", port):
            bus = ModbusBus(BusConfig(name="line", kind="tcp", host="127.0.0.1", port=port), load_profiles())
            ours = await bus.read(meter(target))
            bus.close()
            process = await asyncio.create_subprocess_exec(
                "mbpoll", "-m", "tcp", "-p", str(port), "-a", str(target.unit), "-t", "3:float", "-B", "-r", "73",
                "-c", "1", "-1", "127.0.0.1", stdout=asyncio.subprocess.PIPE)
            output, _ = await process.communicate()
            return ours, output.decode()

    ours, output = asyncio.run(both())
    # mbpoll numbers registers from 1: reference 73 is PDU address 0x48, the import counter.
    line = next(line for line in output.splitlines() if line.startswith("[73]"))
    assert float(line.split()[1]) == pytest.approx(float(ours["import_kwh"]), abs=0.001)
    assert struct.pack(">f", float(ours["import_kwh"]))  # a float32 the meter can hold


def test_garbage_and_truncated_frames_cost_one_timeout_each_and_the_bus_recovers(seed_scenario):
    """A peer that answers noise, then half a frame, then properly: the reader reports and goes on."""
    target = seed_scenario.meters[0]  # an SDM630
    profile = load_profiles()[target.profile]
    answers = ["garbage", "truncated", "good"]

    async def handle(reader, writer):
        while True:
            request = await reader.read(260)
            if not request:
                break
            mode = answers.pop(0) if answers else "good"
            tid, count = int.from_bytes(request[:2], "big"), int.from_bytes(request[10:12], "big")
            response = ReadInputRegistersResponse(registers=[0x4700] * count, dev_id=request[6], transaction_id=tid)
            frame = FramerSocket(DecodePDU(False)).buildFrame(response)
            if mode == "garbage":
                writer.write(b"\x13\x37 not modbus at all \xff\xfe")
            elif mode == "truncated":
                writer.write(frame[: len(frame) // 2])
            else:
                writer.write(frame)
            await writer.drain()

    async def run():
        port = free_port()
        server = await asyncio.start_server(handle, "127.0.0.1", port)
        bus = ModbusBus(BusConfig(name="noisy", kind="tcp", host="127.0.0.1", port=port, timeout=0.5),
                        {target.profile: profile})
        outcomes = []
        try:
            for _ in range(3):
                started = time.monotonic()
                try:
                    await bus.read(meter(target, "noisy"))
                    outcomes.append(("ok", time.monotonic() - started))
                except MeterUnavailable:
                    outcomes.append(("unavailable", time.monotonic() - started))
        finally:
            bus.close()
            server.close()
        return outcomes

    outcomes = asyncio.run(run())
    assert [kind for kind, _ in outcomes] == ["unavailable", "unavailable", "ok"]
    assert all(seconds < 2 for _, seconds in outcomes)


def test_a_bus_that_disappears_is_reopened_without_a_restart(seed_scenario):
    port = free_port()
    clock = VirtualClock(seed_scenario.period_start)
    target = seed_scenario.meters[2]

    async def run():
        bus = ModbusBus(BusConfig(name="usb", kind="tcp", host="127.0.0.1", port=port, timeout=0.5), load_profiles())
        try:
            async with SimulatedStation(seed_scenario, clock, "127.0.0.1", port):
                first = await bus.read(meter(target, "usb"))
            with pytest.raises(MeterUnavailable):  # the adapter is gone
                await bus.read(meter(target, "usb"))
            async with SimulatedStation(seed_scenario, clock, "127.0.0.1", port):  # plugged back in
                again = await bus.read(meter(target, "usb"))
            return first, again
        finally:
            bus.close()

    first, again = asyncio.run(run())
    assert first == again


def test_a_meter_with_its_own_short_timeout(seed_scenario):
    """A slow meter on a patient bus: its own timeout is honoured, the others are unaffected."""
    port = free_port()
    clock = VirtualClock(seed_scenario.period_start)
    slow, fast = seed_scenario.meters[5], seed_scenario.meters[6]

    async def run():
        async with SimulatedStation(seed_scenario, clock, "127.0.0.1", port) as station:
            station.silence(slow.unit)
            bus = ModbusBus(BusConfig(name="b", kind="tcp", host="127.0.0.1", port=port, timeout=2.0), load_profiles())
            try:
                started = time.monotonic()
                with pytest.raises(MeterUnavailable, match=r"no answer in 0\.2 s"):
                    await bus.read(replace(meter(slow, "b"), timeout=0.2))
                waited = time.monotonic() - started
                return waited, await bus.read(meter(fast, "b"))
            finally:
                bus.close()

    waited, values = asyncio.run(run())
    assert waited < 1.0  # the meter's 0.2 s, not the bus's 2 s
    assert values["import_kwh"] == f"{fast.start_kwh}.000"


def test_a_line_node_refusing_a_settings_write_raises_one_tamper_alert(tmp_path):
    db = open_database(tmp_path / "g.sqlite3")
    gateway = Gateway.__new__(Gateway)
    gateway.config = GatewayConfig("gw", tmp_path / "k", tmp_path / "g.sqlite3", "http://127.0.0.1:9", "S", (), ())
    coordinator = MeterCoordinator(MeterConfig("N1", "b", 10, "balans-line-node", "subscriber", "1"))
    at = datetime(2026, 10, 1, tzinfo=UTC)
    for flags in ("1", "5", "5", "1", "5"):
        gateway._tamper(db, coordinator, at, {"status_flags": flags})
    assert [row[0] for row in db.conn.execute("SELECT kind FROM events")] == ["tamper", "tamper"]
