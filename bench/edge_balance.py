"""Micro-balance of 300 meters × 31 days × 96 intervals from the gateway's own store.

Prints a JSON object on its last line: rows, the seconds to write them (the daily totals are kept up then),
and seconds for the month, per day and per interval (target: the month under 1 s on a 2-core machine).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.station import synthetic_station, write_config
from edge.config import load_config
from edge.reports import balances, gateway_balance, iso
from edge.store import open_database


def fill(db, scenario, days: int) -> int:
    start = scenario.period_start
    rows = []
    for index in range(days * 96):
        ts = iso(start + timedelta(minutes=15 * index))
        rows.extend((m.meter, ts, 100 + (index + m.unit) % 37, 0, "measured") for m in scenario.meters)
    db.conn.execute("BEGIN")
    db.conn.executemany("INSERT INTO intervals(meter, start, imp_wh, exp_wh, flag) VALUES (?, ?, ?, ?, ?)", rows)
    db.conn.execute("COMMIT")
    return len(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="60 meters × 3 days (CI)")
    args = parser.parse_args()
    meters, days = (60, 3) if args.quick else (300, 31)
    scenario = synthetic_station(11, meters - 11)
    folder = Path(tempfile.mkdtemp(prefix="balans-bench-"))
    config = load_config(write_config(scenario, folder, 5020))
    db = open_database(config.database)
    started = time.perf_counter()
    rows = fill(db, scenario, days)
    # What the daily totals cost where they are kept up: at write time, by the store's triggers.
    figures = {"meters": len(scenario.meters), "days": days, "rows": rows,
               "write_seconds": round(time.perf_counter() - started, 3)}
    started = time.perf_counter()
    month = gateway_balance(db, config, scenario.period)
    figures["seconds"] = round(time.perf_counter() - started, 3)
    end = scenario.period_start + timedelta(days=days)
    for resolution in ("day", "interval"):
        started = time.perf_counter()
        result = balances(db, config, scenario.period_start, end, resolution)
        figures[f"{resolution}_seconds"] = round(time.perf_counter() - started, 3)
        figures[f"{resolution}_balances"] = len(result)
    assert month.feeders_kwh > 0
    db.conn.close()
    shutil.rmtree(folder, ignore_errors=True)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
