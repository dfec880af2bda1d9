"""A 7-day backlog of 500 meters at 15-minute intervals drained from the gateway to a loopback cloud.

The cloud is the real app behind waitress on SQLite; the gateway seals its backlog into signed batches
and forwards them over HTTP. Prints a JSON object on its last line: readings, intervals, batches,
seconds (target: under 60 s).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import sys
import tempfile
import time
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from datetime import date

from bench.station import synthetic_station, write_config
from cloud import create_app
from cloud.accounts.organisations import create_organisation, create_site, set_tariff
from cloud.db import session_scope
from cloud.ingest.enrolment import issue_token
from cloud.migrate import upgrade
from edge.clock import VirtualClock
from edge.config import load_config
from edge.energy import MEASURED, IntervalEnergy
from edge.gateway import Gateway
from edge.store import GatewayDatabase
from provisioning.demo import start_cloud
from provisioning.enrolment import enrol
from provisioning.ports import free_port


def set_up_cloud(url: str, scenario) -> str:

    upgrade(url)
    app = create_app({"DATABASE_URL": url, "SECRET_KEY": "bench"})
    with session_scope(app) as db:
        org = create_organisation(db, "Bench", "cooperative")
        site = create_site(db, org, scenario.site)
        set_tariff(db, org, "cooperative", Decimal("4.20"), Decimal("1.15"), date(2026, 1, 1))
        return issue_token(db, site)


def backlog(gateway: Gateway, scenario, days: int) -> tuple[int, int]:
    """Readings every 15 minutes for ``days`` days, and the intervals they close, all unsent."""
    start = scenario.period_start

    def write(db: GatewayDatabase) -> tuple[int, int]:
        readings = intervals = 0
        for index in range(days * 96):
            at = start + timedelta(minutes=15 * index)
            values = {m.meter: {"import_kwh": f"{Decimal(m.start_kwh) + Decimal(index * 120 + m.unit).scaleb(-3):.3f}",
                                "export_kwh": "0.000", "voltage_l1": "229.700"} for m in scenario.meters}
            db.save_readings(at, float(index * 900), values)
            db.save_intervals([IntervalEnergy(m.meter, at, Decimal("0.120"), Decimal(0), MEASURED)
                               for m in scenario.meters])
            readings += len(values)
            intervals += len(values)
        return readings, intervals

    return gateway.store.write_sync(write)


async def drain(gateway: Gateway) -> int:
    await gateway.seal()
    try:
        return await gateway.forward_pending()
    finally:
        await gateway.uplink.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="50 meters × 1 day (CI)")
    args = parser.parse_args()
    meters, days = (50, 1) if args.quick else (500, 7)
    scenario = synthetic_station(21, meters - 21)
    folder = Path(tempfile.mkdtemp(prefix="balans-drain-"))
    url = f"sqlite:///{folder / 'cloud.sqlite3'}"
    token = set_up_cloud(url, scenario)
    port = free_port()
    server = start_cloud(url, port, folder)
    try:
        config = load_config(write_config(scenario, folder, 5020, cloud_url=f"http://127.0.0.1:{port}"))
        enrol(config, token)
        gateway = Gateway(config, VirtualClock(scenario.period_start))
        readings, intervals = backlog(gateway, scenario, days)
        started = time.perf_counter()
        batches = asyncio.run(drain(gateway))
        seconds = time.perf_counter() - started
        counts = gateway.store.read_sync(GatewayDatabase.batch_counts)
        pending = sum(counts.values()) - counts.get("sent", 0)
        assert pending == 0, f"{pending} batches not delivered"
        gateway.store.close()
    finally:
        server.terminate()
        server.wait(timeout=10)
        shutil.rmtree(folder, ignore_errors=True)
    print(json.dumps({"meters": meters, "days": days, "readings": readings, "intervals": intervals,
                      "batches": batches, "seconds": round(seconds, 2),
                      "rows_per_second": round((readings + intervals) / seconds)}))


if __name__ == "__main__":
    main()
