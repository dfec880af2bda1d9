"""What the gateway knows on site without the cloud: the period's micro-balance and its own status."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import sqlite_utils

from edge.config import GatewayConfig
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
    expected = int((end - start).total_seconds() // (step_minutes * 60))
    energies: dict[str, list] = {}
    for meter, imp, exp, flag in db.execute(
        "SELECT meter, imp, exp, flag FROM intervals WHERE start >= ? AND start < ?", [iso(start), iso(end)]
    ):
        entry = energies.setdefault(meter, [Decimal(0), Decimal(0), 0, False])
        entry[0] += Decimal(imp)
        entry[1] += Decimal(exp)
        entry[2] += 1
        entry[3] = entry[3] or flag == "estimated"
    return {
        meter: MeterEnergy(imp, exp, complete=count == expected, estimated=estimated)
        for meter, (imp, exp, count, estimated) in energies.items()
    }


def gateway_balance(db: sqlite_utils.Database, config: GatewayConfig, period: str) -> StationBalance:
    start, end = period_bounds(period)
    return station_balance(config.topology(), meter_energy(db, start, end, config.interval_minutes), config.thresholds)


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
        "last_readings": {m: meters[m][3] for m in list(meters)[:20]},
    }
