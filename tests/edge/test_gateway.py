"""The gateway against a simulated station on a real Modbus TCP socket: energy, a dead meter, the outbox."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from decimal import Decimal

from edge.clock import VirtualClock
from edge.gateway import Gateway
from edge.reports import meter_energy
from edge.simulator import SimulatedStation
from shared.batch import parse_batch, verify_signature
from tests.conftest import free_port


async def run_day(scenario, clock, port, config, silence=(), days=1):
    async with SimulatedStation(scenario, clock, "127.0.0.1", port) as station:
        for unit in silence:
            station.silence(unit)
        gateway = Gateway(config, clock)
        try:
            await gateway.poll_loop(until=scenario.period_start + timedelta(days=days))
            return gateway, gateway.store.read_sync(lambda db: meter_energy(
                db, scenario.period_start, scenario.period_start + timedelta(days=days), 15))
        finally:
            await gateway.close()


def test_a_day_of_15_minute_intervals_is_exact(station_setup):
    scenario, clock, port, config = station_setup
    _, energy = asyncio.run(run_day(scenario, clock, port, config))
    for meter in scenario.meters:
        assert energy[meter.meter].complete, meter.meter
        # One day of a 31-day month: the simulator's daily share, to the Wh (float32 counters allow ±0.008).
        expected = Decimal(meter.monthly_kwh) / 31
        assert abs(energy[meter.meter].import_kwh - expected) < Decimal("0.02"), meter.meter


def test_a_dead_meter_costs_one_timeout_and_is_reported_once(station_setup):
    scenario, clock, port, config = station_setup
    dead = scenario.meters[10]
    gateway, energy = asyncio.run(run_day(scenario, clock, port, config, silence=[dead.unit]))
    assert dead.meter not in energy
    from edge.store import open_database

    db = open_database(config.database)
    kinds = [row[0] for row in db.execute("SELECT kind FROM events WHERE meter = ?", [dead.meter])]
    assert kinds == ["meter_offline"]
    # Back-off: 96 cycles, but the dead meter was asked far fewer times than the live ones.
    failures = db.execute("SELECT failures FROM meter_state WHERE meter = ?", [dead.meter]).fetchone()[0]
    assert 3 <= failures < 20
    assert gateway.cycles == 97


def test_every_row_is_sealed_into_exactly_one_signed_chained_batch(station_setup):
    scenario, clock, port, config = station_setup

    async def scenario_run():
        gateway, _ = await run_day(scenario, clock, port, config)
        return gateway

    gateway = asyncio.run(scenario_run())
    from edge.store import open_database

    db = open_database(config.database)
    assert db.execute("SELECT count(*) FROM readings WHERE seq IS NULL").fetchone()[0] == 0
    assert db.execute("SELECT count(*) FROM intervals WHERE seq IS NULL").fetchone()[0] == 0
    prev = "0" * 64
    rows = 0
    public = gateway.key.public_key()
    for seq, body, signature, stored_prev in db.execute("SELECT seq, body, signature, prev FROM batches ORDER BY seq"):
        verify_signature(public, body, signature)
        document = parse_batch(body)
        assert document["prev"] == prev == stored_prev
        prev = db.execute("SELECT hash FROM batches WHERE seq = ?", [seq]).fetchone()[0]
        rows += len(document["readings"]) + len(document["intervals"])
    readings = db.execute("SELECT count(*) FROM readings").fetchone()[0]
    intervals = db.execute("SELECT count(*) FROM intervals").fetchone()[0]
    assert rows == readings + intervals


def test_an_interruption_at_a_meter_becomes_one_alert_with_start_end_and_extreme(station_setup):
    scenario, clock, port, config = station_setup
    target = scenario.meters[20]

    async def outage():
        async with SimulatedStation(scenario, clock, "127.0.0.1", port) as station:
            gateway = Gateway(config, clock)
            model = station.meters[target.unit].model
            original = model.values
            start = scenario.period_start + timedelta(hours=2)
            end = start + timedelta(hours=1)

            def values(at):
                found = original(at)
                if start <= at < end:  # the line is dead at this house for an hour
                    found = {**found, "voltage_l1": 0.0}
                return found

            model.values = values
            await gateway.poll_loop(until=scenario.period_start + timedelta(hours=4))
            await gateway.close()

    asyncio.run(outage())
    from edge.store import open_database

    db = open_database(config.database)
    rows = db.execute("SELECT kind, priority, detail FROM events WHERE meter = ? AND kind LIKE 'voltage_%'",
                      [target.meter]).fetchall()
    assert [(kind, priority) for kind, priority, _ in rows] == [("voltage_interruption_long", "high")]
    detail = json.loads(rows[0][2])
    assert (detail["start"], detail["end"], detail["extreme_v"]) == (
        "2026-10-01T02:00:00Z", "2026-10-01T03:00:00Z", "0.0")


class JumpingClock(VirtualClock):
    """A Pi without RTC: its wall clock reads 1970 until NTP answers at ``sync``, then jumps to real time."""

    def __init__(self, start, sync):
        super().__init__(start)
        self.sync = sync

    def now(self):
        real = super().now()
        return real if real >= self.sync else real - timedelta(days=20000)


def test_a_clock_jump_is_reported_and_corrupts_no_interval(station_setup):
    scenario, _, port, config = station_setup
    sync = scenario.period_start + timedelta(hours=1)
    clock = JumpingClock(scenario.period_start, sync)

    async def day():
        async with SimulatedStation(scenario, VirtualClockView(clock), "127.0.0.1", port):
            gateway = Gateway(config, clock)
            step = timedelta(minutes=15)
            at = scenario.period_start
            while at < scenario.period_start + timedelta(hours=3):
                await clock.sleep_until(at)
                await gateway.poll_cycle()
                at += step
            await gateway.close()

    asyncio.run(day())
    from edge.store import open_database

    db = open_database(config.database)
    kinds = [row[0] for row in db.execute("SELECT kind FROM events WHERE meter IS NULL ORDER BY id")]
    assert kinds[:2] == ["clock_untrusted", "clock_jump"]
    starts = {row[0] for row in db.execute("SELECT DISTINCT start FROM intervals")}
    assert all(start >= "2026-10-01T01:00:00Z" for start in starts)  # nothing in 1971
    assert "2026-10-01T01:15:00Z" in starts


class VirtualClockView:
    """The simulator's view of real (virtual) time, unaffected by the gateway's broken wall clock."""

    def __init__(self, clock):
        self.clock = clock

    def now(self):
        return VirtualClock.now(self.clock)


def test_the_health_endpoint_says_how_the_gateway_is(station_setup):
    import aiohttp

    from edge.health import serve_health

    scenario, clock, port, config = station_setup

    async def check():
        async with SimulatedStation(scenario, clock, "127.0.0.1", port):
            gateway = Gateway(config, clock)
            health_port = free_port()
            runner = await serve_health(gateway, "127.0.0.1", health_port)
            try:
                async with aiohttp.ClientSession() as session:
                    url = f"http://127.0.0.1:{health_port}/health"
                    async with session.get(url) as before:
                        first = before.status
                    await gateway.poll_cycle()
                    async with session.get(url) as after:
                        return first, after.status, await after.json()
            finally:
                await runner.cleanup()
                await gateway.close()

    before, after, status = asyncio.run(check())
    assert (before, after) == (503, 200)
    assert status["meters"]["online"] == len(scenario.meters) and status["clock"] == "trusted"


def test_logs_are_json_lines_with_context_for_a_service():
    import logging

    from edge.logs import JsonFormatter

    record = logging.LogRecord("balans.edge", logging.WARNING, "", 0, "meter %s is offline", ("M04001",), None)
    record.meter, record.bus = "M04001", "rs485"
    entry = json.loads(JsonFormatter().format(record))
    assert entry["message"] == "meter M04001 is offline" and entry["meter"] == "M04001" and entry["bus"] == "rs485"


def test_rollover_replacement_and_impossible_jumps(tmp_path):
    """A line node's uint32 Wh counter wraps; a meter is swapped; a glitch shows 5 MWh in 15 minutes."""
    from datetime import UTC, datetime

    from edge.config import GatewayConfig, MeterConfig
    from edge.gateway import MeterCoordinator, counter_rollover
    from shared.profiles import load_profiles

    node = load_profiles()["balans-line-node"]
    assert counter_rollover(node) == Decimal("4294967.296")
    config = GatewayConfig("gw", tmp_path / "k", tmp_path / "g.sqlite3", "http://127.0.0.1:9", "S", (), ())
    gateway = Gateway.__new__(Gateway)
    gateway.config, gateway.step, gateway.max_gap = config, timedelta(minutes=15), timedelta(hours=1)
    meter = MeterConfig("N1", "b", 1, "balans-line-node", "subscriber", "1", max_kw=Decimal(20))
    coordinator = MeterCoordinator(meter, rollover=counter_rollover(node))
    from edge.store import open_database

    db = open_database(tmp_path / "store.sqlite3")
    start = datetime(2026, 10, 1, tzinfo=UTC)

    def read(minutes, kwh, serial="7"):
        return gateway._energy(db, coordinator, start + timedelta(minutes=minutes),
                               {"import_kwh": kwh, "serial_number": serial})

    read(0, "4294966.000")
    wrapped = read(15, "0.500")  # 1.296 kWh to the wrap, then 0.500
    assert [row[2] for row in wrapped] == [1796]
    assert read(30, "5000.500") == []  # 5 MWh in 15 minutes on a 20 kW connection: flagged, not billed
    read(45, "5000.600")
    read(60, "12.000", serial="8")  # another meter at this address
    assert read(75, "12.300", serial="8")[0][2] == 300
    kinds = [row[0] for row in db.execute("SELECT kind FROM events ORDER BY id")]
    assert kinds == ["counter_rollover", "implausible_jump", "meter_replaced"]


def test_line_4_raises_a_suspected_theft_alert_after_its_first_full_day(station_setup):
    scenario, clock, port, config = station_setup

    async def two_days():
        async with SimulatedStation(scenario, clock, "127.0.0.1", port):
            gateway = Gateway(config, clock)
            await gateway.poll_loop(until=scenario.period_start + timedelta(days=1, minutes=15))
            await gateway.close()

    asyncio.run(two_days())
    from edge.store import open_database

    db = open_database(config.database)
    alerts = [json.loads(row[0]) for row in db.execute("SELECT detail FROM events WHERE kind = 'suspected_theft'")]
    assert [(a["day"], a["line"], a["loss_pct"]) for a in alerts] == [("2026-10-01", "4", "25.0")]


def test_a_full_disk_loses_no_energy_and_the_lost_polls_reach_the_cloud_as_an_event(station_setup):
    scenario, clock, port, config = station_setup

    async def run():
        async with SimulatedStation(scenario, clock, "127.0.0.1", port):
            gateway = Gateway(config, clock)
            at = scenario.period_start
            for step in range(12):  # three hours of 15-minute polls
                if step == 4:  # the card fills up: SQLite cannot grow the database any more
                    pages = gateway.store.read_sync(lambda db: db.execute("PRAGMA page_count").fetchone()[0])
                    gateway.store.read_sync(lambda db, p=pages: db.execute(f"PRAGMA max_page_count = {p}"))
                if step == 8:  # room again
                    gateway.store.read_sync(lambda db: db.execute("PRAGMA max_page_count = 1073741823"))
                await clock.sleep_until(at)
                await gateway.poll_cycle()
                at += timedelta(minutes=15)
            lost = gateway.cycles
            await gateway.close()
            return lost

    stored_cycles = asyncio.run(run())
    from edge.store import open_database

    db = open_database(config.database)
    events = [json.loads(row[0]) for row in db.execute("SELECT detail FROM events WHERE kind = 'readings_lost'")]
    assert stored_cycles < 12 and len(events) == 1 and events[0]["polls"] == 12 - stored_cycles
    # Energy is whole: every interval from 00:00 to 02:30 is there for every meter, the gap's spread linearly.
    counts = {row[0] for row in db.execute("SELECT count(*) FROM intervals GROUP BY meter")}
    assert counts == {11}


def test_a_meter_configured_with_retries_is_asked_again_within_the_cycle(station_setup):
    from dataclasses import replace

    from edge.gateway import MeterCoordinator, PollResult

    scenario, clock, port, config = station_setup
    silent = scenario.meters[3]

    async def run():
        async with SimulatedStation(scenario, clock, "127.0.0.1", port) as station:
            station.silence(silent.unit)
            gateway = Gateway(config, clock)
            bus = gateway.buses["station"]
            coordinator = MeterCoordinator(replace(gateway.meters[silent.meter].meter, retries=2, timeout=0.2))
            result = PollResult(clock.now(), clock.monotonic())
            await gateway._poll_bus(bus, [coordinator], result)
            requests = bus.requests
            await gateway.close()
            return result, requests

    result, requests = asyncio.run(run())
    assert requests == 3 and "after 2 retries" in result.failed[silent.meter]


def test_ten_minute_voltage_means_are_stored_and_give_the_weekly_compliance(station_setup):
    from edge.reports import voltage_compliance

    scenario, clock, port, config = station_setup

    async def day():
        async with SimulatedStation(scenario, clock, "127.0.0.1", port):
            gateway = Gateway(config, clock)
            await gateway.poll_loop(until=scenario.period_start + timedelta(hours=6))
            await gateway.close()

    asyncio.run(day())
    from edge.store import open_database

    db = open_database(config.database)
    assert db.execute("SELECT count(DISTINCT start) FROM voltage_10min").fetchone()[0] == 25  # a poll each 15 min
    report = voltage_compliance(db, config, scenario.period_start)
    point = next(p for p in report["points"] if p["meter"] == scenario.meters[0].meter and p["phase"] == "l1")
    assert point["means"] == 25 and point["within_band_pct"] == 100.0
