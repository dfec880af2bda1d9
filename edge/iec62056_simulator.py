"""IEC 62056-21 meters to read without a meter: a line of simulated meters (mode C, data readout or
programming mode with a password) answering on a serial device — one end of a socat PTY pair — or on TCP, as
an RS-485-to-Ethernet converter would. A meter can be told to fail the ways real ones do: stay silent, stop
half-way through a block, or send a block whose check is wrong.

    python -m edge.iec62056_simulator --tcp 127.0.0.1:7001     # one CE301-like meter in programming mode
"""

from __future__ import annotations

import argparse
import re
import socketserver
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

import serial

from edge import line_server
from shared.iec62056_21 import (
    ACK,
    ETX,
    NAK,
    SOH,
    Iec62056Error,
    command,
    data_block,
    parse_command,
)

FAULTS = ("silent", "truncate", "bad_check")
_SIGN_ON = re.compile(rb"/\?([0-9A-Za-z ]{0,32})!\r\n")
_OPTION = re.compile(rb"\x060([0-6])([01])\r\n")


@dataclass
class SimulatedMeter:
    """One meter: its address, what it says it is, how it checks blocks, and what it knows."""

    address: str = ""
    identification: str = "/EKT5CE301v12"
    check: str = "xor"
    password: str = ""
    serial_number: str = "00123456"
    parameters: dict[str, list[str]] = field(default_factory=dict)  # programming mode: R1 name → its lines
    readout: list[str] = field(default_factory=list)  # data readout: its lines, e.g. "1.8.0(012345.67*kWh)"
    fault: str = ""  # one of FAULTS, or none
    live: Callable[[], list[str]] | None = None  # the readout's lines now, when they change with time

    def lines(self) -> list[str]:
        return self.live() if self.live is not None else self.readout

    def block(self, text: str) -> bytes:
        frame = data_block(text, self.check)
        if self.fault == "bad_check":
            frame = frame[:-1] + bytes([frame[-1] ^ 0x01])
        if self.fault == "truncate":
            frame = frame[: len(frame) // 2]
        return frame


class SimulatedLine:
    """The conversation on one line: bytes in from the master, bytes out from the meter it woke."""

    def __init__(self, meters: list[SimulatedMeter]):
        self.meters = meters
        self.buffer = b""
        self.meter: SimulatedMeter | None = None
        self.state = "idle"  # idle → identified → (readout done | programming) → idle
        self.lock = threading.Lock()

    def feed(self, data: bytes) -> bytes:
        with self.lock:
            self.buffer += data
            answer = b""
            while True:
                step = self._step()
                if step is None:
                    return answer
                answer += step

    def _step(self) -> bytes | None:
        sign_on = _SIGN_ON.search(self.buffer)
        if sign_on is not None:  # a sign-on restarts any session, as on a real line
            self.buffer = self.buffer[sign_on.end():]
            address = sign_on.group(1).decode("ascii")
            self.meter = next((m for m in self.meters if m.address == address or not address), None)
            if self.meter is None or self.meter.fault == "silent":
                self.state = "idle"
                return b""
            self.state = "identified"
            return self.meter.identification.encode("ascii") + b"\r\n"
        if self.state == "identified":
            option = _OPTION.search(self.buffer)
            if option is None:
                return None
            self.buffer = self.buffer[option.end():]
            if option.group(1).decode() > self.meter.identification[4]:  # a rate it did not offer
                self.state = "idle"
                return b""
            if option.group(2) == b"0":
                self.state = "idle"
                return self.meter.block("".join(f"{line}\r\n" for line in self.meter.lines()) + "!\r\n")
            self.state = "programming"
            return command("P0", f"({self.meter.serial_number})", self.meter.check)
        if self.state == "programming":
            start = self.buffer.find(bytes([SOH]))
            end = self.buffer.find(bytes([ETX]), max(start, 0))
            if start < 0 or end < 0 or len(self.buffer) < end + 2:
                return None
            frame, self.buffer = self.buffer[start:end + 2], self.buffer[end + 2:]
            return self._command(frame)
        return None

    def _command(self, frame: bytes) -> bytes:
        meter = self.meter
        try:
            name, data = parse_command(frame, meter.check)
        except Iec62056Error:
            return bytes([NAK])  # the master repeats, or gives up
        if name == "B0":
            self.state = "idle"
            return b""
        if name == "P1":
            return bytes([ACK]) if data == f"({meter.password})" else bytes([NAK])
        if name == "R1":
            parameter = data.split("(", 1)[0]
            lines = meter.parameters.get(parameter)
            if lines is None:
                return meter.block("(ERR12)\r\n")
            return meter.block("".join(f"{parameter}({value})\r\n" for value in lines))
        return meter.block("(ERR01)\r\n")


def serve_serial(device: str, line, stop: threading.Event) -> threading.Thread:
    """Answer on a serial device (one end of a socat PTY pair) until ``stop`` is set."""
    return line_server.serve_serial(device, line.feed, stop, baudrate=300, bytesize=serial.SEVENBITS, parity=serial.PARITY_EVEN)


def serve_tcp(host: str, port: int, line) -> socketserver.ThreadingTCPServer:
    """Answer on TCP, as a serial-to-Ethernet converter in front of the line would; ``shutdown()`` to stop."""
    return line_server.serve_tcp(host, port, line.feed)


def ce301(password: str = "777777", fault: str = "", address: str = "") -> SimulatedMeter:
    """An Energomera CE301 as it answers (its parameter names, its sum-mod-128 block check)."""
    return SimulatedMeter(
        address=address, identification="/EKT5CE301v12", check="sum7", password=password, fault=fault,
        parameters={"ET0PE": ["16907.9477764", "11504.3875082", "3628.2698795", "1775.2903887", "0.0", "0.0"],
                    "VOLTA": ["233.751", "235.418", "234.796"], "CURRE": ["1.479", "2.8716", "0.782"],
                    "POWEP": ["0.5266"], "FREQU": ["49.96"]})


def obis_meter(fault: str = "", address: str = "") -> SimulatedMeter:
    """A meter that publishes OBIS codes in a data readout."""
    return SimulatedMeter(
        address=address, identification="/NIK5NIK2303", check="xor", fault=fault,
        readout=["0.0.0(12345678)", "1.8.0(012345.67*kWh)", "1.8.1(008000.01*kWh)", "1.8.2(004345.66*kWh)",
                 "1.8.0*01(011900.00*kWh)", "2.8.0(000000.00*kWh)", "32.7.0(229.8*V)", "52.7.0(231.0*V)",
                 "72.7.0(228.4*V)", "31.7.0(4.12*A)", "1.7.0(0.944*kW)", "14.7.0(50.01*Hz)"])


# What a readout meter publishes for each quantity of a simulated meter's model.
OBIS_OF = {"import_kwh": ("1.8.0", "kWh"), "export_kwh": ("2.8.0", "kWh"), "voltage_l1": ("32.7.0", "V"),
           "current_l1": ("31.7.0", "A"), "frequency_hz": ("14.7.0", "Hz")}


def readout_lines(values: dict[str, float]) -> list[str]:
    """A model's values now as readout lines (energy to the Wh, as a meter's display shows it)."""
    lines = ["0.0.0(00000001)"]
    for meaning, (code, unit) in OBIS_OF.items():
        if meaning in values:
            lines.append(f"{code}({values[meaning]:011.3f}*{unit})")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--serial", help="a serial device, e.g. one end of `socat pty,link=… pty,link=…`")
    where.add_argument("--tcp", help="host:port to listen on")
    parser.add_argument("--kind", choices=("ce301", "obis"), default="ce301")
    args = parser.parse_args()
    line = SimulatedLine([ce301() if args.kind == "ce301" else obis_meter()])
    if args.serial:
        stop = threading.Event()
        serve_serial(args.serial, line, stop).join()
    else:
        host, _, port = args.tcp.rpartition(":")
        serve_tcp(host, int(port), line)
        threading.Event().wait()


if __name__ == "__main__":
    main()

