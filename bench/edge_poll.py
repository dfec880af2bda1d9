"""One poll cycle of 32 SDM630 + 200 SDM120 on a Modbus TCP simulator, against mbpoll doing the same reads.

Prints a JSON object on its last line: requests_per_cycle, min_requests, seconds, mbpoll_seconds,
ratio_vs_mbpoll (our cycle time / mbpoll's for the same registers with the same number of requests).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.station import synthetic_station, write_config
from edge.clock import VirtualClock
from edge.config import load_config
from edge.gateway import Gateway
from edge.simulator import SimulatedStation
from provisioning.ports import free_port


def mbpoll_cycle(port: int, units: list[int], count: int) -> float:
    """mbpoll reading input registers 0..count-1 of every unit once, one request each."""
    command = ["mbpoll", "-m", "tcp", "-p", str(port), "-a", f"{min(units)}:{max(units)}", "-t", "3", "-r", "0",
               "-c", str(count), "-1", "-0", "127.0.0.1"]
    started = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - started


async def measure(three_phase: int, single_phase: int, cycles: int) -> dict:
    scenario = synthetic_station(three_phase, single_phase)
    folder = Path(tempfile.mkdtemp(prefix="balans-bench-"))
    port = free_port()
    config = load_config(write_config(scenario, folder, port))
    clock = VirtualClock(scenario.period_start)
    async with SimulatedStation(scenario, clock, "127.0.0.1", port):
        gateway = Gateway(config, clock)
        await gateway.poll_cycle()  # connect and warm up
        bus = gateway.buses["station"]
        bus.requests = 0
        timings = []
        for _ in range(cycles):
            started = time.perf_counter()
            result = await gateway.poll_cycle()
            timings.append(time.perf_counter() - started)
            assert not result.failed, result.failed
        requests = bus.requests // cycles
        await gateway.close()
        # The fewest requests Modbus allows: each meter's map fits in one ≤125-register read.
        min_requests = len(scenario.meters)
        mbpoll = None
        if shutil.which("mbpoll"):
            units = [m.unit for m in scenario.meters]
            assert units == list(range(1, len(units) + 1))
            await asyncio.to_thread(mbpoll_cycle, port, units, 0x4C)  # warm up
            mbpoll = min([await asyncio.to_thread(mbpoll_cycle, port, units, 0x4C) for _ in range(cycles)])
    shutil.rmtree(folder, ignore_errors=True)
    seconds = min(timings)
    return {
        "meters": len(scenario.meters),
        "requests_per_cycle": requests,
        "min_requests": min_requests,
        "seconds": round(seconds, 4),
        "mbpoll_seconds": None if mbpoll is None else round(mbpoll, 4),
        "ratio_vs_mbpoll": None if mbpoll is None else round(seconds / mbpoll, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a smaller station and fewer cycles (CI)")
    args = parser.parse_args()
    figures = asyncio.run(measure(8, 40, 2) if args.quick else measure(32, 200, 5))
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
