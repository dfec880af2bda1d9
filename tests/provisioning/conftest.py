"""Installer fixtures: the small station's simulated meters served from a thread (so the installer's commands
can run as real processes beside it), over Modbus TCP or over a socat PTY pair for RTU."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest

from edge.clock import VirtualClock
from edge.simulator import SimulatedStation
from provisioning.ports import free_port
from shared.scenario import Scenario, load_scenario
from tests.edge.conftest import pty_pair  # noqa: F401 (the serial line, shared with the gateway's tests)

SMALL_STATION = Path(__file__).resolve().parent / "small-station.toml"


class StationThread:
    """A SimulatedStation on its own event loop; silence() unplugs a meter as the test runs."""

    def __init__(self, scenario: Scenario, port: int | None = None, serial_port: str | None = None):
        self.scenario = scenario
        self.port = port or free_port()
        self.loop = asyncio.new_event_loop()
        self.station = SimulatedStation(scenario, VirtualClock(scenario.period_start), "127.0.0.1", self.port,
                                        serial_port=serial_port)
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def __enter__(self) -> StationThread:
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self.station.start(), self.loop).result(10)
        return self

    def silence(self, unit: int) -> None:
        self._on_loop(self.station.silence, unit)

    def revive(self, unit: int) -> None:
        self._on_loop(self.station.revive, unit)

    def _on_loop(self, change, unit: int) -> None:
        async def apply() -> None:
            change(unit)
        asyncio.run_coroutine_threadsafe(apply(), self.loop).result(5)  # done before the test goes on

    def __exit__(self, *exc) -> None:
        asyncio.run_coroutine_threadsafe(self.station.stop(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@pytest.fixture(scope="session")
def small_station() -> Scenario:
    return load_scenario(SMALL_STATION.read_text(encoding="utf-8"), str(SMALL_STATION))


@pytest.fixture
def station(small_station):
    with StationThread(small_station) as running:
        yield running
