"""kill -9 of the gateway at random moments: the cloud ends with every reading exactly once."""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from edge.config import config_toml_from_scenario, load_config
from provisioning.demo import seed_cloud, start_cloud
from provisioning.enrolment import enrol
from provisioning.ports import free_port

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]


def balans(*args: str, log: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "provisioning.cli", *args], cwd=ROOT,
                            stdout=open(log, "ab"), stderr=subprocess.STDOUT)


@pytest.mark.timeout(240)
def test_kill_9_at_random_moments_loses_and_doubles_nothing(tmp_path, seed_scenario):
    url = f"sqlite:///{tmp_path / 'cloud.sqlite3'}"
    token, _ = seed_cloud(url, seed_scenario)
    cloud_port, modbus_port = free_port(), free_port()
    cloud = start_cloud(url, cloud_port, tmp_path)
    # The station runs an hour of simulated time per real second; the gateway polls every second.
    sim = balans("sim", "--scenario", str(ROOT / "examples" / "seed-cottage-town.toml"), "--port",
                 str(modbus_port), "--speed", "3600", log=tmp_path / "sim.log")
    config_path = tmp_path / "gateway.toml"
    config_path.write_text(config_toml_from_scenario(
        seed_scenario, gateway_id="gw-crash", host="127.0.0.1", port=modbus_port,
        cloud_url=f"http://127.0.0.1:{cloud_port}", poll_seconds=1), encoding="utf-8")
    config = load_config(config_path)
    gateway = None
    try:
        time.sleep(1.5)
        enrol(config, token)
        rng = random.Random(20261122)
        for _ in range(6):
            gateway = balans("edge", "run", "--config", str(config_path), "--log-level", "WARNING",
                             log=tmp_path / "gateway.log")
            time.sleep(rng.uniform(1.5, 4.0))
            os.kill(gateway.pid, signal.SIGKILL)
            gateway.wait()
        # A last, clean run lets the outbox drain.
        with sqlite3.connect(config.database) as db:
            before = db.execute("SELECT count(*) FROM readings").fetchone()[0]
        gateway = balans("edge", "run", "--config", str(config_path), "--log-level", "WARNING",
                         log=tmp_path / "gateway.log")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            time.sleep(1)
            with sqlite3.connect(config.database) as db:
                pending = db.execute("SELECT count(*) FROM batches WHERE status = 'pending'").fetchone()[0]
                unsealed = db.execute("SELECT count(*) FROM readings WHERE seq IS NULL").fetchone()[0]
                read = db.execute("SELECT count(*) FROM readings").fetchone()[0]
            if read > before and pending == 0 and unsealed == 0:
                break
        gateway.send_signal(signal.SIGTERM)
        assert gateway.wait(timeout=20) == 0
    finally:
        for process in (gateway, sim, cloud):
            if process is not None and process.poll() is None:
                process.kill()
                process.wait()
    with sqlite3.connect(config.database) as db:
        local = set(db.execute("SELECT meter, ts FROM readings"))
        local_intervals = set(db.execute("SELECT meter, start FROM intervals"))
        batches = db.execute("SELECT count(*) FROM batches").fetchone()[0]
    engine = create_engine(url)
    with engine.connect() as conn:
        remote = conn.execute(text(
            "SELECT m.code, strftime('%Y-%m-%dT%H:%M:%SZ', r.ts) FROM readings r JOIN meters m ON m.id = r.meter_id"
        )).all()
        remote_intervals = conn.execute(text("SELECT count(*) FROM interval_energy")).scalar_one()
        stored_batches = conn.execute(text("SELECT count(*) FROM batches")).scalar_one()
    engine.dispose()
    assert len(local) > 300  # the gateway really read through the kills
    assert len(remote) == len(set(remote))  # nothing twice
    assert set(remote) == local  # nothing lost
    assert remote_intervals == len(local_intervals)
    assert stored_batches == batches
