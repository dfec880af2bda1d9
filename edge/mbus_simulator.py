"""M-Bus heat meters to read without a meter: a line of simulated meters answering SND_NKE, secondary-address
selection and REQ_UD2 with the RSP_UD frame a real meter sent (its address and checksum rewritten to where it
sits on the simulated line), on a serial device — one end of a socat PTY pair — or on TCP. A meter can be
told to stay silent, stop half-way or send a wrong checksum.

    python -m edge.mbus_simulator --tcp 127.0.0.1:7002      # a Sensus PolluTherm at primary address 8
"""

from __future__ import annotations

import argparse
import socketserver
import threading
from collections.abc import Callable
from dataclasses import dataclass

import meterbus
import serial

from edge import line_server
from edge.mbus_bus import ACK, NETWORK_LAYER

# The RSP_UD of a Sensus PolluTherm heat meter at primary address 8 (libmbus's test-frames corpus):
# 8 640 kWh, 7 998.92 m³, flow 75.5 °C, return 59.4 °C.
POLLUTHERM = bytes.fromhex(
    "684242680808727600052118 4E310451000000 0C0764080000 0C1492987900 0C7B02030000 0C2C58540000 0A5A5507"
    " 0A5E9405 0B60766001 0C7876000521 0CFD1076000521 1FB316".replace(" ", ""))
# A heat meter of Hydrometer (HYD) from the OMS examples in the same corpus: 2 850 427 kWh, 703.476 m³,
# flow 44.3 °C, return 25.1 °C, no error flags.
HYDROMETER = bytes.fromhex(
    "683C3C6808FD72785634122423 2A04260000000C0627048502 0C13763470004C0619544401 426CFF0C0B3B2701000B2A973200"
    " 0A5A43040A5E510202FD170000C816".replace(" ", ""))
FAULTS = ("silent", "truncate", "bad_checksum")
ELECTRICITY = 0x02  # EN 13757-3 medium


def rsp_ud(identification: str, records: bytes, medium: int = ELECTRICITY, manufacturer: bytes = b"\x2e\x38",
           address: int = 1) -> bytes:
    """An RSP_UD long frame with a variable data structure (CI 0x72) around ``records``."""
    body = (bytes([0x08, address, 0x72]) + bytes.fromhex(identification)[::-1] + manufacturer
            + bytes([0x01, medium, 0x00, 0x00, 0x00, 0x00]) + records)
    return bytes([0x68, len(body), len(body), 0x68]) + body + bytes([sum(body) & 0xFF, 0x16])


def energy_record(wh: int) -> bytes:
    """Energy import to the Wh: DIF 0x07 (64-bit integer), VIF 0x03 (Wh)."""
    return bytes([0x07, 0x03]) + wh.to_bytes(8, "little")


@dataclass
class SimulatedMbusMeter:
    primary: int
    frame: bytes  # a real RSP_UD (its own address and checksum are replaced)
    fault: str = ""
    live: Callable[[], bytes] | None = None  # the RSP_UD now, for a meter whose counters move


    @property
    def secondary(self) -> str:
        return meterbus.load(self.frame).secondary_address

    def answer(self, address: int) -> bytes:
        source = self.live() if self.live is not None else self.frame
        body = bytearray(source[4:-2])
        body[1] = address
        frame = bytes(source[:4]) + bytes(body) + bytes([sum(body) & 0xFF, 0x16])
        if self.fault == "bad_checksum":
            frame = frame[:-2] + bytes([frame[-2] ^ 0x01, 0x16])
        if self.fault == "truncate":
            frame = frame[: len(frame) // 2]
        return frame


class SimulatedMbusLine:
    def __init__(self, meters: list[SimulatedMbusMeter]):
        self.meters = meters
        self.selected: SimulatedMbusMeter | None = None
        self.buffer = b""
        self.lock = threading.Lock()

    def feed(self, data: bytes) -> bytes:
        with self.lock:
            self.buffer += data
            answer = b""
            while self.buffer:
                if self.buffer[0] == 0x10:
                    if len(self.buffer) < 5:
                        break
                    frame, self.buffer = self.buffer[:5], self.buffer[5:]
                    answer += self._short(frame[1], frame[2])
                elif self.buffer[0] == 0x68:
                    if len(self.buffer) < 4 or len(self.buffer) < self.buffer[1] + 6:
                        break
                    length = self.buffer[1] + 6
                    frame, self.buffer = self.buffer[:length], self.buffer[length:]
                    answer += self._long(frame)
                else:
                    self.buffer = self.buffer[1:]  # line noise
            return answer

    def _meter(self, address: int) -> SimulatedMbusMeter | None:
        if address == NETWORK_LAYER:
            return self.selected
        return next((m for m in self.meters if m.primary == address), None)

    def _short(self, control: int, address: int) -> bytes:
        meter = self._meter(address)
        if meter is None or meter.fault == "silent":
            return b""
        if control == 0x40:  # SND_NKE: initialised (and, to the network layer, deselected)
            if address == NETWORK_LAYER:
                self.selected = None
            return bytes([ACK])
        if control in (0x5B, 0x7B):
            return meter.answer(address)
        return b""

    def _long(self, frame: bytes) -> bytes:
        body = frame[4:-2]
        if sum(body) & 0xFF != frame[-2] or len(body) < 11 or body[1] != NETWORK_LAYER or body[2] != 0x52:
            return b""
        wanted = bytes(body[3:7])[::-1].hex().upper() + bytes(body[7:11]).hex().upper()
        self.selected = next((m for m in self.meters if m.secondary.upper() == wanted), None)
        return bytes([ACK]) if self.selected is not None and self.selected.fault != "silent" else b""


def serve_serial(device: str, line, stop: threading.Event) -> threading.Thread:
    """Answer on a serial device (one end of a socat PTY pair) until ``stop`` is set."""
    return line_server.serve_serial(device, line.feed, stop, baudrate=2400, parity=serial.PARITY_EVEN)


def serve_tcp(host: str, port: int, line) -> socketserver.ThreadingTCPServer:
    """Answer on TCP, as a serial-to-Ethernet converter in front of the line would; ``shutdown()`` to stop."""
    return line_server.serve_tcp(host, port, line.feed)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--serial")
    where.add_argument("--tcp", help="host:port")
    args = parser.parse_args()
    line = SimulatedMbusLine([SimulatedMbusMeter(8, POLLUTHERM), SimulatedMbusMeter(9, HYDROMETER)])
    if args.serial:
        serve_serial(args.serial, line, threading.Event()).join()
    else:
        host, _, port = args.tcp.rpartition(":")
        serve_tcp(host, int(port), line)
        threading.Event().wait()


if __name__ == "__main__":
    main()
