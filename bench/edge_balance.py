"""Micro-balance of 300 meters over a Kyiv month (October 2026: 31 days and the hour the clocks go back,
2 980 intervals a meter) from the gateway's own store.

Prints a JSON object on its last line: rows, the seconds to write them through the store (the daily totals are
kept up then), and seconds for the month, per Kyiv day and per interval (target: the month under 1 s on a
2-core machine).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.station import synthetic_station, write_config
from edge.config import load_config
from edge.energy import MEASURED, IntervalEnergy
from edge.energy_reports import balances, gateway_balance
from edge.store import open_database
from shared.calendar import period_bounds

STEP = timedelta(minutes=15)


def intervals(scenario, start: datetime, end: datetime) -> list[IntervalEnergy]:
    """Every meter's intervals in [start, end)."""
    rows = []
    for index in range((end - start) // STEP):
        at = start + STEP * index
        rows.extend(IntervalEnergy(m.meter, at, Decimal(100 + (index + m.unit) % 37).scaleb(-3), Decimal(0), MEASURED)
                    for m in scenario.meters)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="60 meters × 3 days (CI)")
    args = parser.parse_args()
    meters = 60 if args.quick else 300
    scenario = synthetic_station(11, meters - 11)
    start, end = period_bounds(scenario.period)
    if args.quick:
        end = start + timedelta(days=3)
    folder = Path(tempfile.mkdtemp(prefix="balans-bench-"))
    config = load_config(write_config(scenario, folder, 5020))
    db = open_database(config.database)
    rows = intervals(scenario, start, end)
    # What the daily totals cost where they are kept up: at write time, by the store's triggers (the whole
    # month in one transaction).
    started = time.perf_counter()
    with db.transaction():
        db.save_intervals(rows)
    figures = {"meters": len(scenario.meters), "days": round((end - start) / timedelta(days=1)), "rows": len(rows),
               "write_seconds": round(time.perf_counter() - started, 3)}
    started = time.perf_counter()
    month = gateway_balance(db, config, scenario.period)
    figures["seconds"] = round(time.perf_counter() - started, 3)
    for resolution in ("day", "interval"):
        started = time.perf_counter()
        result = balances(db, config, start, end, resolution)
        figures[f"{resolution}_seconds"] = round(time.perf_counter() - started, 3)
        figures[f"{resolution}_balances"] = len(result)
    assert month.feeders_kwh > 0
    db.close()
    shutil.rmtree(folder, ignore_errors=True)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
