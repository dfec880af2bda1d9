"""The gateway daemon: poll every bus, store readings, close intervals, seal and forward batches.

One coordinator per meter keeps its schedule and availability: a silent meter is retried
with back-off and reported offline once, then online once when it answers again.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from functools import partial
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edge.clock import Clock, SystemClock
from edge.config import GatewayConfig, MeterConfig
from edge.energy import CounterPoint, intervals_between
from edge.modbus_bus import MeterUnavailable, ModbusBus
from edge.outbox import HIGH, add_event, seal_pending
from edge.store import Store, get_meta, set_meta
from edge.uplink import RefusedError, TransientUplinkError, Uplink
from shared.batch import load_private_key
from shared.voltage_quality import VoltageTracker

log = logging.getLogger("balans.edge")

MAX_BACKOFF_CYCLES = 16
# A Pi without a real-time clock boots at 1970 (or its last shutdown) until NTP answers: before this date
# the wall clock is not trusted, and a jump between polls larger than CLOCK_TOLERANCE is reported.
SANE_EPOCH = datetime(2024, 1, 1, tzinfo=UTC)
CLOCK_TOLERANCE = timedelta(seconds=120)


def iso(ts: datetime) -> str:
    return ts.strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_iso(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


@dataclass
class MeterCoordinator:
    """Schedule, failure and recovery of one meter (logged once each way)."""

    meter: MeterConfig
    online: bool | None = None
    failures: int = 0
    skip: int = 0
    last: CounterPoint | None = None
    boundary: CounterPoint | None = None
    voltage: dict[str, VoltageTracker] = field(default_factory=dict)
    serial: str | None = None
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


def counter_rollover(profile) -> Decimal | None:
    """Where an integer energy register wraps, in kWh (2^bits × scale); None for float registers."""
    register = profile.register("import_kwh")
    bits = {"uint16": 16, "uint32": 32, "uint64": 64}.get(register.type if register else "")
    return None if bits is None else Decimal(2**bits) * Decimal(register.scale)


def load_or_create_key(path: Path) -> Ed25519PrivateKey:
    from shared.batch import private_key_pem

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
        self.buses = {b.name: ModbusBus(b, profiles) for b in config.buses}
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
        self.store.read_sync(self._restore)

    def _restore(self, db) -> None:
        for coordinator in self.meters.values():
            coordinator.last = coordinator.boundary = None
        for meter, ts, imp, exp in db.execute("SELECT meter, ts, imp, exp FROM last_readings"):
            if meter in self.meters:
                self.meters[meter].last = CounterPoint(parse_iso(ts), Decimal(imp), Decimal(exp))
        for meter, ts, imp, exp in db.execute("SELECT meter, ts, imp, exp FROM boundaries"):
            if meter in self.meters:
                self.meters[meter].boundary = CounterPoint(parse_iso(ts), Decimal(imp), Decimal(exp))
        for meter, online, failures in db.execute("SELECT meter, online, failures FROM meter_state"):
            if meter in self.meters:
                self.meters[meter].online = bool(online)
                self.meters[meter].failures = failures or 0

    # --- polling -----------------------------------------------------------------------------
    async def poll_cycle(self) -> PollResult:
        """Read every due meter once (buses in parallel, one transaction at a time per bus) and store."""
        result = PollResult(self.clock.now(), self.clock.monotonic())
        by_bus: dict[str, list[MeterCoordinator]] = {}
        for coordinator in self.meters.values():
            if coordinator.due():
                by_bus.setdefault(coordinator.meter.bus, []).append(coordinator)
        await asyncio.gather(*(self._poll_bus(self.buses[name], group, result) for name, group in by_bus.items()))
        try:
            await self.store.write(lambda db: self._record(db, result))
        except sqlite3.OperationalError as exc:
            if "full" not in str(exc):
                raise
            # The disk is full: this cycle's readings cannot be kept. Roll the meters' state back to what is
            # stored, so the next cycle that can write closes the intervals across the gap (none is lost),
            # and say how many polls were lost as soon as there is room again.
            self.lost_cycles += 1
            self.lost_since = self.lost_since or result.at
            log.error("disk full: poll at %s not stored (%d so far)", iso(result.at), self.lost_cycles)
            await self.store.read(self._restore)
            return result
        self.cycles += 1
        self.lost_cycles, self.lost_since = 0, None
        self.last_cycle = time.monotonic()
        return result

    async def _poll_bus(self, bus: ModbusBus, group: list[MeterCoordinator], result: PollResult) -> None:
        for coordinator in group:
            for attempt in range(coordinator.meter.retries + 1):
                try:
                    result.values[coordinator.meter.id] = await bus.read(coordinator.meter)
                    result.failed.pop(coordinator.meter.id, None)
                    break
                except MeterUnavailable as exc:
                    result.failed[coordinator.meter.id] = str(exc) + (f" (after {attempt} retries)" if attempt else "")

    def _check_clock(self, db, result: PollResult) -> bool:
        """True when interval boundaries may be taken from this cycle's wall-clock time."""
        trusted = result.at >= SANE_EPOCH
        jumped = False
        if self._last_clock is not None:
            wall0, mono0 = self._last_clock
            drift = (result.at - wall0) - timedelta(seconds=result.mono - mono0)
            if abs(drift) > CLOCK_TOLERANCE:
                jumped = True
                log.warning("wall clock jumped by %s s between polls", int(drift.total_seconds()))
                add_event(db, result.at, "clock_jump", None,
                          {"seconds": int(drift.total_seconds()), "from": iso(wall0), "to": iso(result.at)}, HIGH)
        self._last_clock = (result.at, result.mono)
        state = "jumped" if jumped else "trusted" if trusted else "untrusted"
        if state != self.clock_state and state == "untrusted":
            add_event(db, result.at, "clock_untrusted", None, {"wall": iso(result.at)}, HIGH)
        self.clock_state = state
        set_meta(db, "clock_state", state)
        if not trusted or jumped:
            # Readings are kept, but no interval is cut from a time base that is wrong or has just changed:
            # energy counting restarts at the next boundary (the gap shows as missing, never as consumption).
            for coordinator in self.meters.values():
                coordinator.boundary = None
                coordinator.last = None
            return False
        return True

    def _record(self, db, result: PollResult) -> None:
        ts = iso(result.at)
        if self.lost_cycles:
            add_event(db, result.at, "readings_lost", None, {"polls": self.lost_cycles, "from": iso(self.lost_since),
                                                             "to": ts, "reason": "disk full"}, HIGH)
        clock_ok = self._check_clock(db, result)
        readings, intervals = [], []
        for meter_id, values in result.values.items():
            coordinator = self.meters[meter_id]
            if coordinator.answered():
                log.info("meter %s is back online", meter_id, extra={"meter": meter_id, "gateway": self.config.gateway_id})
                add_event(db, result.at, "meter_online", meter_id)
            readings.append((meter_id, ts, result.mono, json.dumps(values, sort_keys=True)))
            self._voltage(db, coordinator, result.at, values)
            self._tamper(db, coordinator, result.at, values)
            if "import_kwh" in values and clock_ok:
                intervals += self._energy(db, coordinator, result.at, values)
            db.execute(
                "INSERT OR REPLACE INTO meter_state(meter, online, since, last_ts, last_q, failures) "
                "VALUES (?, 1, COALESCE((SELECT since FROM meter_state WHERE meter = ? AND online = 1), ?), ?, ?, 0)",
                [meter_id, meter_id, ts, ts, json.dumps(values, sort_keys=True)],
            )
        for meter_id, reason in result.failed.items():
            coordinator = self.meters[meter_id]
            if coordinator.failed():
                log.warning("meter %s is offline: %s", meter_id, reason,
                            extra={"meter": meter_id, "bus": coordinator.meter.bus, "gateway": self.config.gateway_id})
                add_event(db, result.at, "meter_offline", meter_id, {"reason": reason}, HIGH)
                db.execute(
                    "INSERT OR REPLACE INTO meter_state(meter, online, since, last_ts, last_q, failures) VALUES "
                    "(?, 0, ?, (SELECT last_ts FROM meter_state WHERE meter = ?), "
                    "(SELECT last_q FROM meter_state WHERE meter = ?), ?)",
                    [meter_id, ts, meter_id, meter_id, coordinator.failures],
                )
            else:
                db.execute("UPDATE meter_state SET failures = ? WHERE meter = ?", [coordinator.failures, meter_id])
        db.conn.executemany("INSERT INTO readings(meter, ts, mono, q) VALUES (?, ?, ?, ?)", readings)
        db.conn.executemany(
            "INSERT OR IGNORE INTO intervals(meter, start, imp_wh, exp_wh, flag) VALUES (?, ?, ?, ?, ?)", intervals
        )

    def _voltage(self, db, coordinator: MeterCoordinator, at: datetime, values: dict[str, str]) -> None:
        """Over-/under-voltage and interruptions (EN 50160) as alerts, each when its episode has ended.

        An open episode is kept in the store, so a restart in the middle of an outage does not split it.
        """
        for phase in ("l1", "l2", "l3"):
            value = values.get(f"voltage_{phase}")
            if value is None:
                continue
            window = at.replace(minute=at.minute - at.minute % 10, second=0, microsecond=0)
            db.execute(
                "INSERT INTO voltage_10min(meter, phase, start, total, samples) VALUES (?, ?, ?, ?, 1) "
                "ON CONFLICT(meter, phase, start) DO UPDATE SET total = total + excluded.total, samples = samples + 1",
                [coordinator.meter.id, phase, iso(window), float(value)])
            key = f"voltage:{coordinator.meter.id}:{phase}"
            tracker = coordinator.voltage.get(phase)
            if tracker is None:
                tracker = coordinator.voltage[phase] = VoltageTracker.restore(get_meta(db, key))
            for event in tracker.observe(at, float(value)):
                add_event(db, at, f"voltage_{event.kind}", coordinator.meter.id, {"phase": phase, **event.as_json()},
                          HIGH)
            state = tracker.state()
            if state or get_meta(db, key):
                set_meta(db, key, state)

    def _tamper(self, db, coordinator: MeterCoordinator, at: datetime, values: dict[str, str]) -> None:
        """A line node that refused a settings write without the unlock code: someone is tampering."""
        flags = values.get("status_flags")
        refused = flags is not None and int(flags) & 0x0004
        if refused and not coordinator.tamper_reported:
            add_event(db, at, "tamper", coordinator.meter.id, {"status_flags": flags, "reason": "settings write refused"},
                      HIGH)
        coordinator.tamper_reported = bool(refused)

    def _energy(self, db, coordinator: MeterCoordinator, at: datetime, values: dict[str, str]) -> list[tuple]:
        meter = coordinator.meter
        current = CounterPoint(at, Decimal(values["import_kwh"]), Decimal(values.get("export_kwh", "0")))
        serial = values.get("serial_number")
        if serial is not None and coordinator.serial is not None and serial != coordinator.serial:
            # Another meter answers at this address: a replacement. Its counter starts a new segment.
            add_event(db, at, "meter_replaced", meter.id, {"old_serial": coordinator.serial, "new_serial": serial,
                                                           "reading": str(current.imp)}, HIGH)
            coordinator.last = coordinator.boundary = None
        if serial is not None:
            coordinator.serial = serial
        previous = coordinator.last
        rows: list[tuple] = []
        if previous is not None and current.ts > previous.ts:
            delta = current.imp - previous.imp
            hours = Decimal((current.ts - previous.ts).total_seconds()) / 3600
            plausible = meter.max_kw * hours * Decimal("1.5") + 1
            rollover = coordinator.rollover
            if delta < 0 and rollover is not None and previous.imp > rollover * Decimal("0.9") \
                    and rollover - previous.imp + current.imp <= plausible:
                # The counter wrapped past its largest value: continue on the unwrapped scale.
                add_event(db, at, "counter_rollover", meter.id, {"before": str(previous.imp), "after": str(current.imp)})
                previous = CounterPoint(previous.ts, previous.imp - rollover, previous.exp)
                if coordinator.boundary is not None:
                    b = coordinator.boundary
                    coordinator.boundary = CounterPoint(b.ts, b.imp - rollover, b.exp)
                delta = current.imp - previous.imp
            if delta < 0 or current.exp < previous.exp:
                # The counter went back: a reset or a replaced meter. Start a new segment.
                add_event(db, at, "counter_reset", meter.id,
                          {"before": str(previous.imp), "after": str(current.imp)}, HIGH)
                coordinator.boundary = None
            elif delta > plausible:
                add_event(db, at, "implausible_jump", meter.id,
                          {"kwh": str(delta), "hours": f"{hours:.2f}", "max_kw": str(meter.max_kw)}, HIGH)
                coordinator.boundary = None
            else:
                closed, coordinator.boundary = intervals_between(
                    meter.id, previous, current, coordinator.boundary, self.step, self.max_gap
                )
                rows = [(i.meter, iso(i.start), int(i.imp * 1000), int(i.exp * 1000), i.flag) for i in closed]
        elif previous is None:
            _, coordinator.boundary = intervals_between(meter.id, current, current, None, self.step, self.max_gap)
        coordinator.last = current
        db.execute("INSERT OR REPLACE INTO last_readings(meter, ts, imp, exp) VALUES (?, ?, ?, ?)",
                   [meter.id, iso(current.ts), f"{current.imp:f}", f"{current.exp:f}"])
        if coordinator.boundary is not None:
            b = coordinator.boundary
            db.execute("INSERT OR REPLACE INTO boundaries(meter, ts, imp, exp) VALUES (?, ?, ?, ?)",
                       [meter.id, iso(b.ts), f"{b.imp:f}", f"{b.exp:f}"])
        else:
            db.execute("DELETE FROM boundaries WHERE meter = ?", [meter.id])
        return rows

    async def seal(self) -> int:
        now = self.clock.now()
        sealed = await self.store.write(
            lambda db: seal_pending(db, self.key, self.config.gateway_id, now, self.config.batch_max_rows)
        )
        if sealed:
            self.outbox_changed.set()
        return len(sealed)

    # --- forwarding --------------------------------------------------------------------------
    def _next_pending(self, db):
        return db.execute(
            "SELECT seq, body, signature FROM batches WHERE status = 'pending' "
            "ORDER BY priority = 'high' DESC, seq LIMIT 1"
        ).fetchone()

    async def forward_pending(self) -> int:
        """Send pending batches until none is left; returns how many were delivered."""
        delivered = 0
        while self.refused is None:
            row = await self.store.read(self._next_pending)
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
            await self.store.write(partial(self._mark_sent, seq, outcome.status, iso(self.clock.now())))
            self.last_upload = self.clock.now()
            delivered += 1
        return delivered

    def _housekeeping(self, now: datetime, db) -> None:
        """Once a day: delete what the retention policy allows, and say so when the disk is still short."""
        from edge.retention import check_disk, prune

        removed = prune(db, now)
        if any(removed.values()):
            log.info("retention: %s", removed)
        check_disk(db, self.config.database, now)
        self._theft_alerts(db, now)

    def _theft_alerts(self, db, now: datetime) -> None:
        """Yesterday's micro-balance, offline: a line whose losses suggest theft raises a high-priority alert."""
        from edge.reports import balances

        day_end = now.replace(hour=0, minute=0, second=0, microsecond=0)
        day_start = day_end - timedelta(days=1)
        for day, result in balances(db, self.config, day_start, day_end, "day"):
            for line in result.lines:
                if line.status == "suspected_theft":
                    add_event(db, now, "suspected_theft", None,
                              {"day": day, "line": line.line, "feeder_kwh": f"{line.feeder_kwh:f}",
                               "subscribers_kwh": f"{line.subscribers_kwh:f}", "loss_pct": f"{line.loss_pct:.1f}"},
                              HIGH)

    @staticmethod
    def _mark_sent(seq: int, status: str, sent_at: str, db) -> None:
        db.execute("UPDATE batches SET status = 'sent', sent_at = ?, last_error = ? WHERE seq = ?",
                   [sent_at, status, seq])

    @staticmethod
    def _mark_refused(seq: int, error: RefusedError, at: datetime, db) -> None:
        db.execute("UPDATE batches SET status = 'refused', last_error = ? WHERE seq = ?",
                   [json.dumps(error.body), seq])
        add_event(db, at, "uplink_refused", None, {"seq": seq, "status": error.status, **error.body}, HIGH)

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
        now = self.clock.now()
        midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
        next_poll = midnight + step * ((now - midnight) // step)
        if next_poll < now:
            next_poll += step
        last_prune = None
        while until is None or next_poll <= until:
            await self.clock.sleep_until(next_poll)
            await self.poll_cycle()
            await self.seal()
            if last_prune != next_poll.date():
                last_prune = next_poll.date()
                await self.store.write(partial(self._housekeeping, next_poll))
            next_poll += step

    async def run(self) -> None:
        forward = asyncio.create_task(self.forward_loop(), name="balans-forward")
        health = None
        if self.config.health_port:
            from edge.health import serve_health

            health = await serve_health(self, "127.0.0.1", self.config.health_port)
        try:
            await self.poll_loop()
        finally:
            forward.cancel()
            if health is not None:
                await health.cleanup()
            await self.close()

    async def close(self) -> None:
        for bus in self.buses.values():
            bus.close()
        await self.uplink.close()
        self.store.close()

    async def pending_batches(self) -> int:
        return await self.store.read(
            lambda db: db.execute("SELECT count(*) FROM batches WHERE status = 'pending'").fetchone()[0]
        )
