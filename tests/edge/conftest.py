"""Edge fixtures: a simulated station on a real Modbus TCP port and a gateway configured for it."""

from __future__ import annotations

import socket

import pytest

from edge.clock import VirtualClock
from edge.config import config_toml_from_scenario, load_config


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def station_setup(tmp_path, seed_scenario):
    """(scenario, clock, port, gateway config) — the station is started by the test."""
    port = free_port()
    path = tmp_path / "gateway.toml"
    path.write_text(config_toml_from_scenario(seed_scenario, gateway_id="gw-test", host="127.0.0.1", port=port,
                                              cloud_url="http://127.0.0.1:9", poll_seconds=900), encoding="utf-8")
    return seed_scenario, VirtualClock(seed_scenario.period_start), port, load_config(path)
