"""What the gateway knows on site without the cloud: the station's energy balance (micro-balance) for a
Kyiv month or day, its weekly voltage quality, and its own status.

Months and days are those of the Kyiv calendar (``shared.calendar``), as the people reading them live by;
the cloud's accounting reports are another thing (``cloud/reports``).
"""

from __future__ import annotations

import shutil
from datetime import date, datetime, timedelta
from decimal import Decimal

from edge.config import GatewayConfig
from edge.store import EnergyTotals, GatewayDatabase
from shared.balance import MeterEnergy, StationBalance, station_balance
from shared.calendar import day_bounds, iso_utc, kyiv_day, kyiv_period, period_bounds
from shared.voltage_quality import weekly_compliance


def meter_energy(db: GatewayDatabase, start: datetime, end: datetime, step_minutes: int) -> dict[str, MeterEnergy]:
    """Σ interval energy per meter in [start, end); complete only when every interval is there."""
    [found] = db.energy_in_spans([start, end])
    return _energies(found, _intervals_in(end - start, step_minutes))


def gateway_balance(db: GatewayDatabase, config: GatewayConfig, period: str) -> StationBalance:
    """The station's micro-balance for the Kyiv month ``YYYY-MM``."""
    start, end = period_bounds(period)
    return station_balance(config.topology(), meter_energy(db, start, end, config.interval_minutes), config.thresholds)


def balances(db: GatewayDatabase, config: GatewayConfig, start: datetime, end: datetime,
             resolution: str = "day") -> list[tuple[str, StationBalance]]:
    """Micro-balances per interval, per Kyiv day or for the Kyiv month of ``start``, offline, from the store.

    Each comes with its key (the interval's start, the day ``YYYY-MM-DD``, the month ``YYYY-MM``); a span with
    no interval at all is left out. A day cut by ``start`` or ``end`` is incomplete, as is a day with a gap.
    """
    step = config.interval_minutes
    energies: dict[str, dict[str, MeterEnergy]] = {}
    if resolution == "interval":
        for at, meter, totals in db.energy_per_interval(start, end):
            energies.setdefault(at, {})[meter] = _energy(totals, 1)
    elif resolution == "day":
        days = _kyiv_days(start, end)
        found = db.energy_in_spans([a for _, a, _, _ in days] + [days[-1][2]]) if days else []
        for (day, _, _, length), totals in zip(days, found, strict=True):
            if totals:
                energies[day.isoformat()] = _energies(totals, _intervals_in(length, step))
    elif resolution == "month":
        period = kyiv_period(start)
        return [(period, gateway_balance(db, config, period))]
    else:
        raise ValueError(f"resolution must be interval, day or month, got {resolution!r}")
    topology = config.topology()
    return [(key, station_balance(topology, found, config.thresholds)) for key, found in energies.items()]


def _kyiv_days(start: datetime, end: datetime) -> list[tuple[date, datetime, datetime, timedelta]]:
    """The Kyiv days [start, end) touches: (day, its part inside the span as start and end, its whole length)."""
    days: list[tuple[date, datetime, datetime, timedelta]] = []
    day = kyiv_day(start)
    while start < end and (bounds := day_bounds(day))[0] < end:
        days.append((day, max(start, bounds[0]), min(end, bounds[1]), bounds[1] - bounds[0]))
        day += timedelta(days=1)
    return days


def _intervals_in(span: timedelta, step_minutes: int) -> int:
    return int(span.total_seconds() // (step_minutes * 60))


def _energy(totals: EnergyTotals, expected: int) -> MeterEnergy:
    return MeterEnergy(Decimal(totals.imp_wh).scaleb(-3), Decimal(totals.exp_wh).scaleb(-3),
                       complete=totals.intervals == expected, estimated=bool(totals.estimated))


def _energies(found: dict[str, EnergyTotals], expected: int) -> dict[str, MeterEnergy]:
    return {meter: _energy(totals, expected) for meter, totals in found.items()}


def voltage_compliance(db: GatewayDatabase, config: GatewayConfig, week: date) -> dict:
    """EN 50160 compliance per meter and phase over the Kyiv week starting on ``week``, from the stored
    10-minute voltage means."""
    start, _ = day_bounds(week)
    _, end = day_bounds(week + timedelta(days=6))
    means: dict[tuple[str, str], list[tuple[datetime, float]]] = {}
    for meter, phase, at, mean in db.voltage_means(start, end):
        means.setdefault((meter, phase), []).append((at, mean))
    expected = int((end - start).total_seconds() // 600)  # 1 002 or 1 014 windows when the clocks change
    return {
        "week": week.isoformat(), "week_start": iso_utc(start),
        "points": [{"meter": meter, "phase": phase, **weekly_compliance(found, expected=expected).as_json()}
                   for (meter, phase), found in sorted(means.items())],
    }


def disk_usage(config: GatewayConfig) -> dict:
    total, used, free = shutil.disk_usage(config.database.parent)
    size = sum(p.stat().st_size for p in config.database.parent.glob(config.database.name + "*"))
    return {"database_mb": round(size / 2**20, 1), "free_mb": round(free / 2**20), "used_pct": round(used * 100 / total, 1)}


def gateway_status(db: GatewayDatabase, config: GatewayConfig) -> dict:
    meters = db.meter_states()
    batches = db.batch_counts()
    online = [m.id for m in config.meters if m.id in meters and meters[m.id].online]
    offline = [m.id for m in config.meters if m.id in meters and not meters[m.id].online]
    never = [m.id for m in config.meters if m.id not in meters]
    return {
        "gateway": config.gateway_id,
        "site": config.site,
        "meters": {"total": len(config.meters), "online": len(online), "offline": offline, "never_read": never},
        "backlog": {"pending_batches": batches.get("pending", 0), "unsealed_rows": db.unsealed_row_count(),
                    "refused_batches": batches.get("refused", 0)},
        "last_upload": db.last_upload(),
        "clock": db.get_meta("clock_state", "unknown"),
        "disk": disk_usage(config),
        "last_readings": {m: meters[m].last_ts for m in list(meters)[:20]},
    }
