"""The gateway daemon: poll every bus, store readings, close intervals, seal and forward batches.

A coordinator: the interval maths is pure (``edge.energy``), every SQL statement is the store's
(``edge.store``), sealing is the outbox's and sending the uplink's. One coordinator per meter keeps its
schedule and availability: a silent meter is retried with back-off and reported offline once, then online
once when it answers again.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from functools import partial
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edge.clock import Clock, SystemClock
from edge.config import GatewayConfig, MeterConfig
from edge.energy import CounterPoint, IntervalEnergy, MeterCounter, advance_counter, counter_rollover
from edge.energy_reports import balances
from edge.health import serve_health
from edge.meter_reader import BusReader, MeterUnavailable, open_bus
from edge.outbox import seal_pending
from edge.remote import Remote
from edge.retention import check_disk, prune
from edge.store import HIGH, NORMAL, GatewayDatabase, Store
from edge.uplink import RefusedError, TransientUplinkError, Uplink
from shared.batch import load_private_key, private_key_pem
from shared.calendar import day_bounds, iso_utc, kyiv_day
from shared.voltage_quality import VoltageTracker

log = logging.getLogger("balans.edge")

MAX_BACKOFF_CYCLES = 16
# A Pi without a real-time clock boots at 1970 (or its last shutdown) until NTP answers: before this date
# the wall clock is not trusted, and a jump between polls larger than CLOCK_TOLERANCE is reported.
SANE_EPOCH = datetime(2024, 1, 1, tzinfo=UTC)
CLOCK_TOLERANCE = timedelta(seconds=120)


def poll_time(at: datetime, step: timedelta, after: bool = False) -> datetime:
    """The first poll at or (``after``) past ``at``: polls run every ``step`` from each Kyiv midnight, and every
    Kyiv midnight is a poll, so each day's and each billing period's bound is read (a day of 23 or 25 hours,
    or a step that does not divide a day, only shortens the day's last step)."""
    start, end = day_bounds(kyiv_day(at))
    steps = -((start - at) // step)  # ceil((at - start) / step)
    if after and start + steps * step == at:
        steps += 1
    found = start + steps * step
    return found if found < end else end


@dataclass
class MeterCoordinator:
    """Schedule, failure and recovery of one meter (logged once each way)."""

    meter: MeterConfig
    online: bool | None = None
    failures: int = 0
    skip: int = 0
    counter: MeterCounter = field(default_factory=MeterCounter)
    voltage: dict[str, VoltageTracker] = field(default_factory=dict)
    tamper_reported: bool = False
    rollover: Decimal | None = None  # the counter's wrap-around value in kWh, when its register has one

    def due(self) -> bool:
        if self.skip > 0:
            self.skip -= 1
            return False
        return True

    def failed(self) -> bool:
        """Record a failure; True when the meter has just gone offline."""
        self.failures += 1
        self.skip = min(2 ** (self.failures - 1) - 1, MAX_BACKOFF_CYCLES)
        went_offline = self.online is not False
        self.online = False
        return went_offline

    def answered(self) -> bool:
        """Record an answer; True when the meter has just come back online."""
        came_back = self.online is False
        self.online = True
        self.failures = 0
        self.skip = 0
        return came_back


@dataclass
class PollResult:
    at: datetime
    mono: float
    values: dict[str, dict[str, str]] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)


def load_or_create_key(path: Path) -> Ed25519PrivateKey:
    if path.exists():
        return load_private_key(path.read_bytes())
    path.parent.mkdir(parents=True, exist_ok=True)
    key = Ed25519PrivateKey.generate()
    path.write_bytes(private_key_pem(key))
    path.chmod(0o600)
    return key


class Gateway:
    def __init__(self, config: GatewayConfig, clock: Clock | None = None, key: Ed25519PrivateKey | None = None):
        self.config = config
        self.clock = clock or SystemClock()
        self.key = key or load_or_create_key(config.key_path)
        self.store = Store(config.database)
        profiles = config.profiles()
        self.buses: dict[str, BusReader] = {b.name: open_bus(b, profiles) for b in config.buses}
        self.meters = {m.id: MeterCoordinator(m, rollover=counter_rollover(profiles[m.profile]))
                       for m in config.meters}
        self.step = timedelta(minutes=config.interval_minutes)
        self.max_gap = timedelta(minutes=config.max_gap_minutes)
        self.uplink = Uplink(config.cloud_url, config.gateway_id)
        self.outbox_changed = asyncio.Event()
        self.refused: RefusedError | None = None
        self.last_upload: datetime | None = None
        self.cycles = 0
        self.clock_state = "unknown"  # trusted | untrusted | jumped
        self.last_cycle: float | None = None  # monotonic time of the last finished poll
        self.lost_cycles = 0  # polls that could not be stored (disk full), reported when there is room again
        self.lost_since: datetime | None = None
        self._last_clock: tuple[datetime, float] | None = None
        self.polling = asyncio.Lock()  # the poll loop, a remote re-read and a configuration's trial take turns
        self.store.read_sync(self._restore)

    def reconfigure(self, config: GatewayConfig, buses: dict[str, BusReader]) -> None:
        """Run on ``config`` from the next poll (a site configuration from the cloud, edge/remote.py): its buses
        (already opened and tried), its meters — a meter kept keeps its counter and availability. Called with
        ``polling`` held."""
        profiles = config.profiles()
        for bus in self.buses.values():
            bus.close()
        self.buses = buses
        self.meters = {m.id: replace(self.meters[m.id], meter=m, rollover=counter_rollover(profiles[m.profile]))
                       if m.id in self.meters
                       else MeterCoordinator(m, rollover=counter_rollover(profiles[m.profile])) for m in config.meters}
        self.config = config

    def _restore(self, db: GatewayDatabase) -> None:
        """Each meter's counter and availability as last stored (after a restart, or a poll that was lost)."""
        counters = db.counters()
        for meter_id, coordinator in self.meters.items():
            stored = counters.get(meter_id, MeterCounter())
            coordinator.counter = replace(coordinator.counter, last=stored.last, boundary=stored.boundary)
        for meter_id, state in db.meter_states().items():
            if meter_id in self.meters:
                self.meters[meter_id].online = state.online
                self.meters[meter_id].failures = state.failures

    # --- polling -----------------------------------------------------------------------------
    async def poll_cycle(self) -> PollResult:
        """Read every due meter once (buses in parallel, one transaction at a time per bus) and store."""
        async with self.polling:
            return await self._poll_cycle()

    async def _poll_cycle(self) -> PollResult:
        result = PollResult(self.clock.now(), self.clock.monotonic())
        by_bus: dict[str, list[MeterCoordinator]] = {}
        for coordinator in self.meters.values():
            if coordinator.due():
                by_bus.setdefault(coordinator.meter.bus, []).append(coordinator)
        await asyncio.gather(*(self._poll_bus(self.buses[name], group, result) for name, group in by_bus.items()))
        try:
            await self.store.write(partial(self._record, result))
        except sqlite3.OperationalError as exc:
            if "full" not in str(exc):
                raise
            # The disk is full: this cycle's readings cannot be kept. Roll the meters' state back to what is
            # stored, so the next cycle that can write closes the intervals across the gap (none is lost),
            # and say how many polls were lost as soon as there is room again.
            self.lost_cycles += 1
            self.lost_since = self.lost_since or result.at
            log.error("disk full: poll at %s not stored (%d so far)", iso_utc(result.at), self.lost_cycles)
            await self.store.read(self._restore)
            return result
        self.cycles += 1
        self.lost_cycles, self.lost_since = 0, None
        self.last_cycle = time.monotonic()
        return result

    async def _poll_bus(self, bus: BusReader, group: list[MeterCoordinator], result: PollResult) -> None:
        for coordinator in group:
            for attempt in range(coordinator.meter.retries + 1):
                try:
                    result.values[coordinator.meter.id] = await bus.read(coordinator.meter)
                    result.failed.pop(coordinator.meter.id, None)
                    break
                except MeterUnavailable as exc:
                    result.failed[coordinator.meter.id] = str(exc) + (f" (after {attempt} retries)" if attempt else "")

    def _check_clock(self, db: GatewayDatabase, result: PollResult) -> bool:
        """True when interval boundaries may be taken from this cycle's wall-clock time."""
        trusted = result.at >= SANE_EPOCH
        jumped = False
        if self._last_clock is not None:
            wall0, mono0 = self._last_clock
            drift = (result.at - wall0) - timedelta(seconds=result.mono - mono0)
            if abs(drift) > CLOCK_TOLERANCE:
                jumped = True
                log.warning("wall clock jumped by %s s between polls", int(drift.total_seconds()))
                db.add_event(result.at, "clock_jump", None, {"seconds": int(drift.total_seconds()),
                                                             "from": iso_utc(wall0), "to": iso_utc(result.at)}, HIGH)
        self._last_clock = (result.at, result.mono)
        state = "jumped" if jumped else "trusted" if trusted else "untrusted"
        if state != self.clock_state and state == "untrusted":
            db.add_event(result.at, "clock_untrusted", None, {"wall": iso_utc(result.at)}, HIGH)
        self.clock_state = state
        db.set_meta("clock_state", state)
        if not trusted or jumped:
            # Readings are kept, but no interval is cut from a time base that is wrong or has just changed:
            # energy counting restarts at the next boundary (the gap shows as missing, never as consumption).
            for coordinator in self.meters.values():
                coordinator.counter = replace(coordinator.counter, last=None, boundary=None)
            return False
        return True

    def _record(self, result: PollResult, db: GatewayDatabase) -> None:
        """One poll into the store, in one transaction: readings, the intervals they close, events, state."""
        if self.lost_cycles:
            db.add_event(result.at, "readings_lost", None, {"polls": self.lost_cycles,
                                                            "from": iso_utc(self.lost_since),
                                                            "to": iso_utc(result.at), "reason": "disk full"}, HIGH)
        clock_ok = self._check_clock(db, result)
        intervals: list[IntervalEnergy] = []
        voltage: list[tuple[str, str, datetime, float]] = []
        for meter_id, values in result.values.items():
            coordinator = self.meters[meter_id]
            if coordinator.answered():
                log.info("meter %s is back online", meter_id, extra={"meter": meter_id, "gateway": self.config.gateway_id})
                db.add_event(result.at, "meter_online", meter_id)
            voltage += self._voltage(db, coordinator, result.at, values)
            self._tamper(db, coordinator, result.at, values)
            if "import_kwh" in values and clock_ok:
                intervals += self._energy(db, coordinator, result.at, values)
        db.save_readings(result.at, result.mono, result.values)
        for meter_id, reason in result.failed.items():
            coordinator = self.meters[meter_id]
            if coordinator.failed():
                log.warning("meter %s is offline: %s", meter_id, reason,
                            extra={"meter": meter_id, "bus": coordinator.meter.bus, "gateway": self.config.gateway_id})
                db.add_event(result.at, "meter_offline", meter_id, {"reason": reason}, HIGH)
                db.mark_offline(meter_id, result.at, coordinator.failures)
            else:
                db.set_failures(meter_id, coordinator.failures)
        db.add_voltage_samples(voltage)
        db.save_intervals(intervals)

    def _voltage(self, db: GatewayDatabase, coordinator: MeterCoordinator, at: datetime,
                 values: dict[str, str]) -> list[tuple[str, str, datetime, float]]:
        """Over-/under-voltage and interruptions (EN 50160) as alerts, each when its episode has ended; returns
        the samples for the 10-minute means.

        An open episode is kept in the store, so a restart in the middle of an outage does not split it.
        """
        samples = []
        window = at.replace(minute=at.minute - at.minute % 10, second=0, microsecond=0)
        for phase in ("l1", "l2", "l3"):
            value = values.get(f"voltage_{phase}")
            if value is None:
                continue
            samples.append((coordinator.meter.id, phase, window, float(value)))
            key = f"voltage:{coordinator.meter.id}:{phase}"
            tracker = coordinator.voltage.get(phase)
            if tracker is None:
                tracker = coordinator.voltage[phase] = VoltageTracker.restore(db.get_meta(key))
            for event in tracker.observe(at, float(value)):
                db.add_event(at, f"voltage_{event.kind}", coordinator.meter.id, {"phase": phase, **event.as_json()},
                             HIGH)
            state = tracker.state()
            if state or db.get_meta(key):
                db.set_meta(key, state)
        return samples

    def _tamper(self, db: GatewayDatabase, coordinator: MeterCoordinator, at: datetime, values: dict[str, str]) -> None:
        """A line node that refused a settings write without the unlock code: someone is tampering."""
        flags = values.get("status_flags")
        refused = flags is not None and int(flags) & 0x0004
        if refused and not coordinator.tamper_reported:
            db.add_event(at, "tamper", coordinator.meter.id, {"status_flags": flags, "reason": "settings write refused"},
                         HIGH)
        coordinator.tamper_reported = bool(refused)

    def _energy(self, db: GatewayDatabase, coordinator: MeterCoordinator, at: datetime,
                values: dict[str, str]) -> list[IntervalEnergy]:
        """The intervals this reading closes (``edge.energy.advance_counter``); what it showed becomes events."""
        meter = coordinator.meter
        reading = CounterPoint(at, Decimal(values["import_kwh"]), Decimal(values.get("export_kwh", "0")))
        advance = advance_counter(meter.id, coordinator.counter, reading, values.get("serial_number"),
                                  max_kw=meter.max_kw, rollover=coordinator.rollover, step=self.step,
                                  max_gap=self.max_gap)
        for event in advance.events:
            db.add_event(at, event.kind, meter.id, event.detail, HIGH if event.alert else NORMAL)
        coordinator.counter = advance.counter
        db.save_counter(meter.id, advance.counter)
        return advance.intervals

    async def seal(self) -> int:
        now = self.clock.now()
        sealed = await self.store.write(
            lambda db: seal_pending(db, self.key, self.config.gateway_id, now, self.config.batch_max_rows,
                                    config_version=self.config.config_version)
        )
        if sealed:
            self.outbox_changed.set()
        return len(sealed)

    # --- forwarding --------------------------------------------------------------------------
    async def forward_pending(self) -> int:
        """Send pending batches until none is left; returns how many were delivered."""
        delivered = 0
        while self.refused is None:
            row = await self.store.read(GatewayDatabase.pending_batch)
            if row is None:
                return delivered
            seq, body, signature = row
            try:
                outcome = await self.uplink.post(seq, body, signature)
            except RefusedError as exc:
                self.refused = exc
                log.error("cloud refused batch %s: %s; sending stops, everything is kept", seq, exc.body)
                await self.store.write(partial(self._mark_refused, seq, exc, self.clock.now()))
                return delivered
            await self.store.write(partial(_mark_sent, seq, outcome.status, self.clock.now()))
            self.last_upload = self.clock.now()
            delivered += 1
        return delivered

    def _housekeeping(self, now: datetime, db: GatewayDatabase) -> None:
        """Once a day: delete what the retention policy allows, and say so when the disk is still short."""
        removed = prune(db, now)
        if any(removed.values()):
            log.info("retention: %s", removed)
        check_disk(db, self.config.database, now)
        self._theft_alerts(db, now)

    def _theft_alerts(self, db: GatewayDatabase, now: datetime) -> None:
        """Yesterday's micro-balance (the Kyiv day before ``now``'s), offline: a line whose losses suggest theft
        raises a high-priority alert."""
        day_start, day_end = day_bounds(kyiv_day(now) - timedelta(days=1))
        for day, result in balances(db, self.config, day_start, day_end, "day"):
            for line in result.lines:
                if line.status == "suspected_theft":
                    db.add_event(now, "suspected_theft", None,
                                 {"day": day, "line": line.line, "feeder_kwh": f"{line.feeder_kwh:f}",
                                  "subscribers_kwh": f"{line.subscribers_kwh:f}", "loss_pct": f"{line.loss_pct:.1f}"},
                                 HIGH)

    @staticmethod
    def _mark_refused(seq: int, error: RefusedError, at: datetime, db: GatewayDatabase) -> None:
        db.mark_batch_refused(seq, error.body)
        db.add_event(at, "uplink_refused", None, {"seq": seq, "status": error.status, **error.body}, HIGH)

    async def forward_loop(self) -> None:
        while True:
            try:
                await self.forward_pending()
            except TransientUplinkError as exc:
                log.warning("uplink: %s; will retry", exc)
                await asyncio.sleep(5)
                continue
            if self.refused is not None:
                return
            self.outbox_changed.clear()
            await self.outbox_changed.wait()

    async def poll_loop(self, until: datetime | None = None) -> None:
        step = timedelta(seconds=self.config.poll_seconds)
        next_poll = poll_time(self.clock.now(), step)
        last_housekeeping = None
        while until is None or next_poll <= until:
            await self.clock.sleep_until(next_poll)
            await self.poll_cycle()
            await self.seal()
            if last_housekeeping != kyiv_day(next_poll):  # the first poll of each Kyiv day
                last_housekeeping = kyiv_day(next_poll)
                await self.store.write(partial(self._housekeeping, next_poll))
            step = timedelta(seconds=self.config.poll_seconds)  # a new configuration's, from the next poll
            next_poll = poll_time(next_poll, step, after=True)

    async def run(self) -> None:
        forward = asyncio.create_task(self.forward_loop(), name="balans-forward")
        remote = None
        if self.config.heartbeat_seconds and self.config.source is not None:
            remote = asyncio.create_task(Remote(self).loop(), name="balans-heartbeat")
        health = None
        if self.config.health_port:
            health = await serve_health(self, "127.0.0.1", self.config.health_port)
        try:
            await self.poll_loop()
        finally:
            forward.cancel()
            if remote is not None:
                remote.cancel()
            if health is not None:
                await health.cleanup()
            await self.close()

    async def close(self) -> None:
        for bus in self.buses.values():
            bus.close()
        await self.uplink.close()
        self.store.close()

    async def pending_batches(self) -> int:
        return await self.store.read(GatewayDatabase.pending_batch_count)


def _mark_sent(seq: int, status: str, at: datetime, db: GatewayDatabase) -> None:
    db.mark_batch_sent(seq, status, at)
