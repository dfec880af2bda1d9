"""The gateway's store opened by two processes at once (the gateway starting while `balans edge status` or the
installer's check reads it): each migration runs once and both open the same, complete store."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

from edge.store import MIGRATIONS, open_database

OPEN = "import sys; from edge.store import open_database; open_database(sys.argv[1]).batch_counts()"


def test_four_processes_opening_a_new_store_at_once_all_succeed(tmp_path):
    for trial in range(5):
        path = tmp_path / f"gateway-{trial}.sqlite3"
        opening = [subprocess.Popen([sys.executable, "-c", OPEN, str(path)], stderr=subprocess.PIPE, text=True)
                   for _ in range(4)]
        failures = [p.stderr.read() for p in opening if p.wait(timeout=60) != 0]
        assert not failures, failures[0]
        store = open_database(path)
        assert store.conn.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
        tables = {row[0] for row in store.conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        assert {"meta", "readings", "intervals"} <= tables


def test_the_gateway_refuses_a_store_a_newer_balans_migrated_saying_so(tmp_path):
    store = tmp_path / "gateway.sqlite3"
    connection = sqlite3.connect(store)
    connection.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 1}")
    connection.commit()
    connection.close()
    config = tmp_path / "gateway.toml"
    example = (Path(__file__).resolve().parents[2] / "examples" / "gateway.toml").read_text(encoding="utf-8")
    config.write_text(example.replace("/var/lib/balans/gateway.sqlite3", str(store)), encoding="utf-8")
    run = subprocess.run([sys.executable, "-c", "from provisioning.cli import main; main()", "edge", "run", "--config",
                          str(config)],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 1 and "Traceback" not in run.stderr
    assert f"schema version {len(MIGRATIONS) + 1}, this balans knows only up to {len(MIGRATIONS)}" in run.stderr
