"""The gateway against a simulated station on a real Modbus TCP socket: energy, a dead meter, the outbox."""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import replace
from datetime import timedelta
from decimal import Decimal

import aiohttp

from edge.clock import VirtualClock
from edge.energy_reports import meter_energy, voltage_compliance
from edge.gateway import Gateway, MeterCoordinator, PollResult
from edge.health import serve_health
from edge.logs import JsonFormatter
from edge.simulator import SimulatedStation
from edge.store import open_database
from provisioning.ports import free_port
from shared.batch import parse_batch, verify_signature
from shared.calendar import iso_utc, kyiv_day


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
    models = SimulatedStation(scenario, clock).meters  # what each simulated meter's counter shows, unrounded
    start, end = scenario.period_start, scenario.period_start + timedelta(days=1)
    for meter in scenario.meters:
        assert energy[meter.meter].complete, meter.meter
        # The intervals add up to the counter's change over the day, to the Wh (float32 counters allow ±0.008
        # a reading).
        model = models[meter.unit].model
        expected = Decimal(repr(model.values(end)["import_kwh"] - model.values(start)["import_kwh"]))
        assert abs(energy[meter.meter].import_kwh - expected) < Decimal("0.02"), meter.meter


def test_a_dead_meter_costs_one_timeout_and_is_reported_once(station_setup):
    scenario, clock, port, config = station_setup
    dead = scenario.meters[10]
    gateway, energy = asyncio.run(run_day(scenario, clock, port, config, silence=[dead.unit]))
    assert dead.meter not in energy
    db = open_database(config.database)
    kinds = [row[0] for row in db.conn.execute("SELECT kind FROM events WHERE meter = ?", [dead.meter])]
    assert kinds == ["meter_offline"]
    # Back-off: 96 cycles, but the dead meter was asked far fewer times than the live ones.
    state = db.meter_states()[dead.meter]
    assert not state.online and 3 <= state.failures < 20
    assert gateway.cycles == 97


def test_every_row_is_sealed_into_exactly_one_signed_chained_batch(station_setup):
    scenario, clock, port, config = station_setup

    async def scenario_run():
        gateway, _ = await run_day(scenario, clock, port, config)
        return gateway

    gateway = asyncio.run(scenario_run())
    db = open_database(config.database)
    assert db.unsealed_row_count() == 0
    prev = "0" * 64
    rows = 0
    public = gateway.key.public_key()
    for seq, body, signature, stored_prev in db.conn.execute(
            "SELECT seq, body, signature, prev FROM batches ORDER BY seq"):
        verify_signature(public, body, signature)
        document = parse_batch(body)
        assert document["prev"] == prev == stored_prev
        prev = db.conn.execute("SELECT hash FROM batches WHERE seq = ?", [seq]).fetchone()[0]
        rows += len(document["readings"]) + len(document["intervals"])
    readings = db.conn.execute("SELECT count(*) FROM readings").fetchone()[0]
    intervals = db.conn.execute("SELECT count(*) FROM intervals").fetchone()[0]
    assert rows == readings + intervals
    assert db.chain_head() == (seq, prev)


def test_an_interruption_at_a_meter_becomes_one_alert_with_start_end_and_extreme(station_setup):
    scenario, clock, port, config = station_setup
    target = scenario.meters[20]
    start = scenario.period_start + timedelta(hours=2)
    end = start + timedelta(hours=1)

    async def outage():
        async with SimulatedStation(scenario, clock, "127.0.0.1", port) as station:
            gateway = Gateway(config, clock)
            model = station.meters[target.unit].model
            original = model.values

            def values(at):
                found = original(at)
                if start <= at < end:  # the line is dead at this house for an hour
                    found = {**found, "voltage_l1": 0.0}
                return found

            model.values = values
            await gateway.poll_loop(until=scenario.period_start + timedelta(hours=4))
            await gateway.close()

    asyncio.run(outage())
    db = open_database(config.database)
    rows = db.conn.execute("SELECT kind, priority, detail FROM events WHERE meter = ? AND kind LIKE 'voltage_%'",
                           [target.meter]).fetchall()
    assert [(kind, priority) for kind, priority, _ in rows] == [("voltage_interruption_long", "high")]
    detail = json.loads(rows[0][2])
    assert (detail["start"], detail["end"], detail["extreme_v"]) == (iso_utc(start), iso_utc(end), "0.0")


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
    db = open_database(config.database)
    kinds = [row[0] for row in db.conn.execute("SELECT kind FROM events WHERE meter IS NULL ORDER BY id")]
    assert kinds[:2] == ["clock_untrusted", "clock_jump"]
    starts = {row[0] for row in db.conn.execute("SELECT DISTINCT start FROM intervals")}
    assert all(start >= iso_utc(sync) for start in starts)  # nothing in 1971
    assert iso_utc(sync + timedelta(minutes=15)) in starts


class VirtualClockView:
    """The simulator's view of real (virtual) time, unaffected by the gateway's broken wall clock."""

    def __init__(self, clock):
        self.clock = clock

    def now(self):
        return VirtualClock.now(self.clock)


def test_the_health_endpoint_says_how_the_gateway_is(station_setup):
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
    record = logging.LogRecord("balans.edge", logging.WARNING, "", 0, "meter %s is offline", ("M04001",), None)
    record.meter, record.bus = "M04001", "rs485"
    entry = json.loads(JsonFormatter().format(record))
    assert entry["message"] == "meter M04001 is offline" and entry["meter"] == "M04001" and entry["bus"] == "rs485"


def test_line_4_raises_a_suspected_theft_alert_after_its_first_full_day(station_setup):
    scenario, clock, port, config = station_setup

    async def two_days():
        async with SimulatedStation(scenario, clock, "127.0.0.1", port):
            gateway = Gateway(config, clock)
            await gateway.poll_loop(until=scenario.period_start + timedelta(days=1, minutes=15))
            await gateway.close()

    asyncio.run(two_days())
    db = open_database(config.database)
    alerts = [json.loads(row[0]) for row in db.conn.execute("SELECT detail FROM events WHERE kind = 'suspected_theft'")]
    # The check runs at the first poll of each Kyiv day, on the Kyiv day before.
    assert [(a["day"], a["line"], a["loss_pct"]) for a in alerts] == [("2026-10-01", "4", "25.0")]


def test_a_full_disk_loses_no_energy_and_the_lost_polls_reach_the_cloud_as_an_event(station_setup):
    scenario, clock, port, config = station_setup

    async def run():
        async with SimulatedStation(scenario, clock, "127.0.0.1", port):
            gateway = Gateway(config, clock)
            at = scenario.period_start
            for step in range(12):  # three hours of 15-minute polls
                if step == 4:  # the card fills up: SQLite cannot grow the database any more
                    pages = gateway.store.read_sync(lambda db: db.conn.execute("PRAGMA page_count").fetchone()[0])
                    gateway.store.read_sync(lambda db, p=pages: db.conn.execute(f"PRAGMA max_page_count = {p}"))
                if step == 8:  # room again
                    gateway.store.read_sync(lambda db: db.conn.execute("PRAGMA max_page_count = 1073741823"))
                await clock.sleep_until(at)
                await gateway.poll_cycle()
                at += timedelta(minutes=15)
            lost = gateway.cycles
            await gateway.close()
            return lost

    stored_cycles = asyncio.run(run())
    db = open_database(config.database)
    events = [json.loads(row[0]) for row in db.conn.execute("SELECT detail FROM events WHERE kind = 'readings_lost'")]
    assert stored_cycles < 12 and len(events) == 1 and events[0]["polls"] == 12 - stored_cycles
    # Energy is whole: every interval of the first 2 h 45 min is there for every meter, the gap's spread linearly.
    counts = {row[0] for row in db.conn.execute("SELECT count(*) FROM intervals GROUP BY meter")}
    assert counts == {11}


def test_a_meter_configured_with_retries_is_asked_again_within_the_cycle(station_setup):
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
    scenario, clock, port, config = station_setup

    async def day():
        async with SimulatedStation(scenario, clock, "127.0.0.1", port):
            gateway = Gateway(config, clock)
            await gateway.poll_loop(until=scenario.period_start + timedelta(hours=6))
            await gateway.close()

    asyncio.run(day())
    db = open_database(config.database)
    assert db.conn.execute("SELECT count(DISTINCT start) FROM voltage_10min").fetchone()[0] == 25  # a poll each 15 min
    report = voltage_compliance(db, config, kyiv_day(scenario.period_start))
    assert report["week_start"] == iso_utc(scenario.period_start)  # the Kyiv week starts at Kyiv midnight
    point = next(p for p in report["points"] if p["meter"] == scenario.meters[0].meter and p["phase"] == "l1")
    assert point["means"] == 25 and point["within_band_pct"] == 100.0
