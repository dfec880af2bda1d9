"""The gateway daemon's memory while polling 232 meters (32 SDM630 + 200 SDM120) once a second.

Runs the simulator and `balans edge run` as separate processes and samples the daemon's RSS.
Prints a JSON object on its last line: rss_mb (peak), cycles, seconds (target: rss under 100 MB).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.station import synthetic_station, write_config  # noqa: E402
from provisioning.ports import free_port  # noqa: E402

SIMULATOR = """
import asyncio, sys
sys.path.insert(0, {root!r})
from bench.station import synthetic_station
from edge.clock import AcceleratedClock
from edge.simulator import SimulatedStation, serve_forever
scenario = synthetic_station(32, 200)
asyncio.run(serve_forever(SimulatedStation(scenario, AcceleratedClock(scenario.period_start, 900), "127.0.0.1", {port})))
"""


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="10 s instead of 60 s (CI)")
    args = parser.parse_args()
    duration = 10 if args.quick else 60
    folder = Path(tempfile.mkdtemp(prefix="balans-rss-"))
    port = free_port()
    config = write_config(synthetic_station(32, 200), folder, port, poll_seconds=1)
    sim = subprocess.Popen([sys.executable, "-c", SIMULATOR.format(root=str(ROOT), port=port)])
    time.sleep(2)
    daemon = subprocess.Popen([sys.executable, "-m", "provisioning.cli", "edge", "run", "--config", str(config),
                               "--log-level", "ERROR"], cwd=ROOT)
    peak = 0.0
    try:
        started = time.monotonic()
        while time.monotonic() - started < duration:
            time.sleep(0.5)
            peak = max(peak, rss_mb(daemon.pid))
    finally:
        daemon.terminate()
        daemon.wait(timeout=20)
        sim.terminate()
        sim.wait(timeout=10)
    with sqlite3.connect(folder / "gateway.sqlite3") as db:
        readings = db.execute("SELECT count(*) FROM readings").fetchone()[0]
    shutil.rmtree(folder, ignore_errors=True)
    print(json.dumps({"meters": 232, "seconds": duration, "cycles": readings // 232, "readings": readings,
                      "rss_mb": round(peak, 1), "limit_mb": 100, "ratio": round(peak / 100, 2)}))


if __name__ == "__main__":
    main()
