"""One read of an IEC 62056-21 meter (a data readout and an Energomera CE301 in programming mode) and of an
M-Bus heat meter and of a DLMS/COSEM meter, over TCP to the simulators, against the wire minimum of the same
bytes on a real line (IEC: sign-on, identification and option select at 300 baud, the rest at 9 600, 10 bits a
character at 7E1; M-Bus: 2 400 baud, 11 bits at 8E1; DLMS over HDLC: 9 600 baud, 10 bits at 8N1 — SNRM, AARQ,
GET-with-list of the generic profile's eight objects, DISC). Modbus is `bench/edge_poll.py`'s (against mbpoll).

Loopback has no wire: the ratio (time here / wire minimum) is what the gateway adds beyond the bytes
themselves — pauses, timeouts, parsing; below 1 means a real line, not the gateway, sets the pace.

Prints a JSON object on its last line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from edge.config import BusConfig, MeterConfig
from edge.dlms_bus import DlmsBus
from edge.dlms_simulator import SimulatedDlmsLine, electricity_meter
from edge.dlms_simulator import serve_tcp as serve_dlms
from edge.iec62056_bus import Iec62056Bus
from edge.iec62056_simulator import SimulatedLine, ce301, obis_meter
from edge.iec62056_simulator import serve_tcp as serve_iec
from edge.mbus_bus import MbusBus
from edge.mbus_simulator import POLLUTHERM, SimulatedMbusLine, SimulatedMbusMeter
from edge.mbus_simulator import serve_tcp as serve_mbus
from provisioning.ports import free_port
from shared.iec62056_21 import option_select, sign_on
from shared.profiles import load_profiles


class Counted:
    """A simulated line that counts the bytes each way."""

    def __init__(self, line):
        self.line, self.received, self.sent = line, 0, 0

    def feed(self, data: bytes) -> bytes:
        answer = self.line.feed(data)
        self.received += len(data)
        self.sent += len(answer)
        return answer


def best_of(reader, meter, rounds: int) -> float:
    best = float("inf")
    for _ in range(rounds):
        started = time.perf_counter()
        asyncio.run(reader.read(meter))
        best = min(best, time.perf_counter() - started)
    return best


def iec(kind: str, rounds: int) -> dict:
    simulated = ce301(password="777777") if kind == "programming" else obis_meter()
    counted = Counted(SimulatedLine([simulated]))
    port = free_port()
    server = serve_iec("127.0.0.1", port, counted)
    profile = "energomera-ce301" if kind == "programming" else "iec62056-obis-readout"
    reader = Iec62056Bus(BusConfig(name="iec", kind="iec62056-21", device=f"socket://127.0.0.1:{port}",
                                   timeout=1.5), load_profiles())
    meter = MeterConfig(id="M", bus="iec", unit=1, profile=profile, role="subscriber", password="777777")
    try:
        seconds = best_of(reader, meter, rounds)
    finally:
        server.shutdown()
        server.server_close()
    per_read = (counted.received + counted.sent) / rounds
    slow = len(sign_on()) + len(simulated.identification) + 2 + len(option_select("5"))
    wire = slow * 10 / 300 + (per_read - slow) * 10 / 9600
    return {"seconds": round(seconds, 4), "bytes": int(per_read), "wire_seconds": round(wire, 4),
            "ratio_vs_wire": round(seconds / wire, 3)}


def mbus(rounds: int) -> dict:
    counted = Counted(SimulatedMbusLine([SimulatedMbusMeter(8, POLLUTHERM)]))
    port = free_port()
    server = serve_mbus("127.0.0.1", port, counted)
    reader = MbusBus(BusConfig(name="heat", kind="mbus", device=f"socket://127.0.0.1:{port}", timeout=0.5),
                     load_profiles())
    meter = MeterConfig(id="H", bus="heat", unit=8, profile="mbus-heat-meter", role="subscriber")
    try:
        seconds = best_of(reader, meter, rounds)
    finally:
        server.shutdown()
        server.server_close()
    per_read = (counted.received + counted.sent) / rounds
    wire = per_read * 11 / 2400
    return {"seconds": round(seconds, 4), "bytes": int(per_read), "wire_seconds": round(wire, 4),
            "ratio_vs_wire": round(seconds / wire, 3)}


def dlms(rounds: int) -> dict:
    counted = Counted(SimulatedDlmsLine([electricity_meter(17)]))
    port = free_port()
    server = serve_dlms("127.0.0.1", port, counted)
    reader = DlmsBus(BusConfig(name="rs485", kind="dlms", device=f"socket://127.0.0.1:{port}", timeout=1.0),
                     load_profiles())
    meter = MeterConfig(id="D", bus="rs485", unit=17, profile="dlms-electricity-meter", role="subscriber")
    try:
        seconds = best_of(reader, meter, rounds)
    finally:
        server.shutdown()
        server.server_close()
    per_read = (counted.received + counted.sent) / rounds
    wire = per_read * 10 / 9600
    return {"seconds": round(seconds, 4), "bytes": int(per_read), "wire_seconds": round(wire, 4),
            "ratio_vs_wire": round(seconds / wire, 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="3 rounds each (CI)")
    rounds = 3 if parser.parse_args().quick else 20
    figures = {"iec62056_readout": iec("readout", rounds), "iec62056_programming": iec("programming", rounds),
               "mbus": mbus(rounds), "dlms": dlms(rounds)}
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
