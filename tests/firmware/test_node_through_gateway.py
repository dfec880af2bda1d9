"""End to end: the gateway reads a line node over Modbus RTU exactly as it reads any meter.

The node runs under MicroPython; a serial line is a socat PTY pair. A small bridge passes each request
frame from the PTY to a fresh MicroPython run of the node (same pulses every time) and writes back the
node's answer — the gateway's pymodbus RTU client sees a real slave on a real serial port.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import threading
import time
from decimal import Decimal

import pytest

from edge.config import BusConfig, MeterConfig
from edge.modbus_bus import ModbusBus
from shared.profiles import load_profiles
from tests.firmware.conftest import PREAMBLE
from tests.firmware.micropython_runner import run_script

NODE = PREAMBLE + """
import gc, machine
gc.disable()
from fake_hardware import FakeHardware
from node import LineNode
hw = FakeHardware(volts=(229.5, 230.0, 230.0))
node = LineNode(hw, {"address": 21})
hw.pulse(0, 1234)
hw.pulse(1, 40, spacing_ms=50)
node.measure_voltage()
uart = machine.UART.instances[-1]
uart.feed(bytes.fromhex("FRAME"))
node.step()
print("ANSWER", uart.take().hex())
"""

pytestmark = pytest.mark.skipif(shutil.which("socat") is None, reason="socat is not installed (apt-get install socat)")


def frame_length(buffer: bytes) -> int | None:
    """Length of a complete read/write request at the start of ``buffer`` (functions 3, 4, 6)."""
    return 8 if len(buffer) >= 8 and buffer[1] in (3, 4, 6) else None


class Bridge(threading.Thread):
    def __init__(self, device: str, root):
        super().__init__(daemon=True)
        self.fd = os.open(device, os.O_RDWR | os.O_NOCTTY)
        self.root = root
        self.stop = threading.Event()
        self.requests = 0

    def run(self) -> None:
        buffer = b""
        while not self.stop.is_set():
            try:
                buffer += os.read(self.fd, 256)
            except BlockingIOError:
                time.sleep(0.005)
                continue
            size = frame_length(buffer)
            if size is None:
                continue
            request, buffer = buffer[:size], buffer[size:]
            self.requests += 1  # counted before answering: the gateway may check the count as soon as it reads
            stdout = run_script(NODE.replace("FRAME", request.hex()), self.root)
            answer = next(line.split()[1] for line in stdout.splitlines() if line.startswith("ANSWER"))
            os.write(self.fd, bytes.fromhex(answer))


@pytest.fixture
def serial_line(tmp_path, mp_root):
    gateway_end, node_end = str(tmp_path / "gateway-tty"), str(tmp_path / "node-tty")
    socat = subprocess.Popen(["socat", f"pty,raw,echo=0,link={gateway_end}", f"pty,raw,echo=0,link={node_end}"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(100):
        if os.path.exists(gateway_end) and os.path.exists(node_end):
            break
        time.sleep(0.05)
    os.set_blocking(os.open(node_end, os.O_RDWR | os.O_NOCTTY), False)
    bridge = Bridge(node_end, mp_root)
    os.set_blocking(bridge.fd, False)
    bridge.start()
    yield gateway_end, bridge
    bridge.stop.set()
    socat.terminate()
    socat.wait(timeout=5)


def test_the_gateway_reads_a_line_node_like_any_meter(serial_line):
    device, bridge = serial_line
    bus = ModbusBus(BusConfig(name="rs485", kind="rtu", device=device, baudrate=9600, timeout=5.0), load_profiles())
    meters = [MeterConfig(id=f"NODE21-{ch}", bus="rs485", unit=21, profile="balans-line-node", role="subscriber",
                          line="1", channel=ch) for ch in (0, 1)]

    async def read_all():
        try:
            return [await bus.read(meter) for meter in meters]
        finally:
            bus.close()

    first, second = asyncio.run(read_all())
    assert Decimal(first["import_kwh"]) == Decimal("1.234")
    assert Decimal(second["import_kwh"]) == Decimal("0.040")
    assert Decimal(first["voltage_l1"]) == Decimal("229.5")
    assert first["serial_number"] == str(0x00C0FFEE)
    assert first["firmware_version"] == "256"
    assert bridge.requests == 2  # one coalesced request per meter
