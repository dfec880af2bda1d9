"""Every benchmark runs in its quick mode and ends with one JSON object carrying its figures.

These are not timed tests: they prove the benchmarks still run against today's code and report what the
issues ask for. The figures themselves are measured at full size (`make bench`) and quoted in the notes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Benchmark → the figures its last line must carry.
EXPECTED = {
    "edge_poll": {"meters", "requests_per_cycle", "min_requests", "seconds", "mbpoll_seconds", "ratio_vs_mbpoll"},
    "edge_balance": {"meters", "days", "rows", "seconds", "day_seconds", "interval_seconds"},
    "edge_drain": {"meters", "days", "readings", "intervals", "batches", "seconds"},
    "edge_rss": {"meters", "readings", "rss_mb", "limit_mb", "ratio"},
    "edge_protocols": {"iec62056_readout", "iec62056_programming", "mbus", "dlms"},
    "cloud_ingest": {"readings", "sqlite", "http_sqlite_ratio", "service_sqlite_ratio"},
    "billing_run": {"accounts", "seconds", "target_seconds", "distributed_uah"},
    "payments_import": {"transactions", "seconds", "limit_seconds", "ratio"},
    "payments_parse": {"transactions", "seconds", "matched", "unmatched"},
    "register_import": {"rows", "limit_s", "sqlite_xlsx", "sqlite_csv", "worst_ratio"},
    "dashboard_pages": {"meters", "p95_ms", "worst_p95_ms", "limit_ms", "ratio"},
}


def test_every_benchmark_is_listed_here():
    found = {path.stem for path in (ROOT / "bench").glob("*.py")} - {"__init__", "station"}
    assert found == set(EXPECTED)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_benchmark_runs_quick_and_reports_its_figures(name):
    result = subprocess.run([sys.executable, "-m", f"bench.{name}", "--quick"], cwd=ROOT, capture_output=True,
                            text=True, timeout=300, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert result.returncode == 0, result.stderr[-2000:]
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    assert EXPECTED[name] <= set(figures), f"{name} misses {EXPECTED[name] - set(figures)}"
    numbers = [value for key, value in figures.items() if key.endswith("seconds") and isinstance(value, float)]
    assert all(value >= 0 for value in numbers)
    if os.environ.get("CI") == "true" and name == "cloud_ingest":
        assert "pg" in figures, "under CI the ingest benchmark must also measure PostgreSQL"
