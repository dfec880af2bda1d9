"""What the gateway knows on site without the cloud: the period's micro-balance and its own status."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import sqlite_utils

from edge.config import GatewayConfig
from edge.store import get_meta
from shared.balance import MeterEnergy, StationBalance, station_balance


def period_bounds(period: str) -> tuple[datetime, datetime]:
    try:
        year, month = (int(x) for x in period.split("-"))
        start = datetime(year, month, 1, tzinfo=UTC)
    except ValueError as exc:
        raise ValueError(f"period must be YYYY-MM, got {period!r}") from exc
    return start, datetime(year + month // 12, month % 12 + 1, 1, tzinfo=UTC)


def iso(ts: datetime) -> str:
    return ts.strftime("%Y-%m-%dT%H:%M:%SZ")


def meter_energy(db: sqlite_utils.Database, start: datetime, end: datetime, step_minutes: int) -> dict[str, MeterEnergy]:
    """Σ interval energy per meter in [start, end); complete only when every interval is there. Whole UTC days
    are read from their daily totals (store migration 3), anything else from the intervals."""
    expected = int((end - start).total_seconds() // (step_minutes * 60))
    if _midnight(start) and _midnight(end):
        rows = db.execute(
            "SELECT meter, sum(imp_wh), sum(exp_wh), sum(intervals), sum(estimated) FROM daily_energy "
            "WHERE day >= ? AND day < ? GROUP BY meter", [iso(start)[:10], iso(end)[:10]])
    else:
        rows = db.execute(
            "SELECT meter, sum(imp_wh), sum(exp_wh), count(*), sum(flag = 'estimated') FROM intervals "
            "WHERE start >= ? AND start < ? GROUP BY meter", [iso(start), iso(end)],
        )
    return {
        meter: MeterEnergy(Decimal(imp).scaleb(-3), Decimal(exp).scaleb(-3), complete=count == expected,
                           estimated=bool(estimated))
        for meter, imp, exp, count, estimated in rows
    }


def _midnight(ts: datetime) -> bool:
    ts = ts.astimezone(UTC) if ts.tzinfo else ts
    return (ts.hour, ts.minute, ts.second, ts.microsecond) == (0, 0, 0, 0)


def gateway_balance(db: sqlite_utils.Database, config: GatewayConfig, period: str) -> StationBalance:
    start, end = period_bounds(period)
    return station_balance(config.topology(), meter_energy(db, start, end, config.interval_minutes), config.thresholds)


def disk_usage(config: GatewayConfig) -> dict:
    import shutil

    total, used, free = shutil.disk_usage(config.database.parent)
    size = sum(p.stat().st_size for p in config.database.parent.glob(config.database.name + "*"))
    return {"database_mb": round(size / 2**20, 1), "free_mb": round(free / 2**20), "used_pct": round(used * 100 / total, 1)}


def gateway_status(db: sqlite_utils.Database, config: GatewayConfig) -> dict:
    meters = {row[0]: row for row in db.execute("SELECT meter, online, since, last_ts, failures FROM meter_state")}
    batches = dict(db.execute("SELECT status, count(*) FROM batches GROUP BY status").fetchall())
    unsent_rows = db.execute(
        "SELECT (SELECT count(*) FROM readings WHERE seq IS NULL) + (SELECT count(*) FROM intervals WHERE seq IS NULL)"
    ).fetchone()[0]
    last_upload = db.execute("SELECT max(sent_at) FROM batches WHERE status = 'sent'").fetchone()[0]
    online = [m.id for m in config.meters if m.id in meters and meters[m.id][1]]
    offline = [m.id for m in config.meters if m.id in meters and not meters[m.id][1]]
    never = [m.id for m in config.meters if m.id not in meters]
    return {
        "gateway": config.gateway_id,
        "site": config.site,
        "meters": {"total": len(config.meters), "online": len(online), "offline": offline, "never_read": never},
        "backlog": {"pending_batches": batches.get("pending", 0), "unsealed_rows": unsent_rows,
                    "refused_batches": batches.get("refused", 0)},
        "last_upload": last_upload,
        "clock": get_meta(db, "clock_state", "unknown"),
        "disk": disk_usage(config),
        "last_readings": {m: meters[m][3] for m in list(meters)[:20]},
    }


def balances(db: sqlite_utils.Database, config: GatewayConfig, start: datetime, end: datetime,
             resolution: str = "day") -> list[tuple[str, StationBalance]]:
    """Micro-balances per interval, per day or for the whole span, offline, from the local store."""
    step = config.interval_minutes
    if resolution == "interval":
        bucket, per_bucket = "start", 1
    elif resolution == "day":
        bucket, per_bucket = "substr(start, 1, 10)", 24 * 60 // step
    elif resolution == "month":
        return [(iso(start)[:7], gateway_balance(db, config, iso(start)[:7]))]
    else:
        raise ValueError(f"resolution must be interval, day or month, got {resolution!r}")
    energies: dict[str, dict[str, MeterEnergy]] = {}
    if resolution == "day" and _midnight(start) and _midnight(end):
        rows = db.execute(
            "SELECT day, meter, imp_wh, exp_wh, intervals, estimated FROM daily_energy "
            "WHERE day >= ? AND day < ? ORDER BY day", [iso(start)[:10], iso(end)[:10]])
    else:
        rows = db.execute(
            f"SELECT {bucket} AS b, meter, sum(imp_wh), sum(exp_wh), count(*), sum(flag = 'estimated') "
            "FROM intervals WHERE start >= ? AND start < ? GROUP BY b, meter ORDER BY b",
            [iso(start), iso(end)],
        )
    for key, meter, imp, exp, count, estimated in rows:
        energies.setdefault(key, {})[meter] = MeterEnergy(
            Decimal(imp).scaleb(-3), Decimal(exp).scaleb(-3), complete=count == per_bucket, estimated=bool(estimated))
    topology = config.topology()
    return [(key, station_balance(topology, found, config.thresholds)) for key, found in energies.items()]


def voltage_compliance(db: sqlite_utils.Database, config: GatewayConfig, week_start: datetime) -> dict:
    """EN 50160 weekly compliance per meter and phase, from the stored 10-minute voltage means."""
    from datetime import timedelta

    from shared.voltage_quality import weekly_compliance

    end = week_start + timedelta(days=7)
    means: dict[tuple[str, str], list] = {}
    for meter, phase, start, total, samples in db.execute(
            "SELECT meter, phase, start, total, samples FROM voltage_10min WHERE start >= ? AND start < ? "
            "ORDER BY start", [iso(week_start), iso(end)]):
        means.setdefault((meter, phase), []).append((start, total / samples))
    return {
        "week_start": iso(week_start),
        "points": [{"meter": meter, "phase": phase, **weekly_compliance(found).as_json()}
                   for (meter, phase), found in sorted(means.items())],
    }
