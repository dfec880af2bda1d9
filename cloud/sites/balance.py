"""The cloud's micro-balance of a site for a period, from the interval energy the gateway sent.

Same math and same shape as the gateway's (shared/balance.py), so the two can be compared.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from cloud.models import IntervalEnergy, Line, Meter, Site
from shared.balance import (
    MeterEnergy,
    StationBalance,
    StationTopology,
    Thresholds,
    build_topology,
    station_balance,
)
from shared.calendar import naive_period_bounds


def input_kwh(db: Session, site: Site, energies: dict[str, MeterEnergy]) -> Decimal | None:
    """What entered the station in the period, as its balance counts it: the input meter's net energy (None
    without an input meter or without its data). For a billing run, which needs no more of the balance."""
    code = db.execute(select(Meter.code).where(Meter.site_id == site.id, Meter.role == "station_input")
                      .order_by(Meter.id).limit(1)).scalar()
    return energies[code].net_kwh if code in energies else None


def site_topology(db: Session, site: Site) -> tuple[StationTopology, dict[int, str]]:
    meters = db.execute(select(Meter.id, Meter.code, Meter.role, Meter.line_id).where(Meter.site_id == site.id)
                        .order_by(Meter.id)).all()
    lines = db.execute(select(Line.id, Line.number).where(Line.site_id == site.id).order_by(Line.id)).all()
    codes = {m.id: m.code for m in meters}
    number_of = dict(lines)
    topology = build_topology(((m.code, m.role, number_of.get(m.line_id)) for m in meters),
                              [number for _, number in lines])
    return topology, codes


def meter_energy(db: Session, site: Site, start: datetime, end: datetime, step_minutes: int = 15) -> dict[str, MeterEnergy]:
    """Σ interval energy per meter in [start, end); complete only when every interval is there."""
    expected = int((end - start).total_seconds() // (step_minutes * 60))
    rows = db.execute(
        select(
            Meter.code,
            func.sum(IntervalEnergy.imp_wh),
            func.sum(IntervalEnergy.exp_wh),
            func.count(),
            func.sum(case((IntervalEnergy.flag == "estimated", 1), else_=0)),
        )
        .join(Meter, Meter.id == IntervalEnergy.meter_id)
        .where(Meter.site_id == site.id, IntervalEnergy.start >= start, IntervalEnergy.start < end)
        .group_by(Meter.code)
    ).all()
    return {
        code: MeterEnergy(Decimal(imp).scaleb(-3), Decimal(exp).scaleb(-3), complete=count == expected,
                          estimated=bool(estimated))
        for code, imp, exp, count, estimated in rows
    }


def site_balance(db: Session, site: Site, period: str) -> StationBalance:
    start, end = naive_period_bounds(period)
    thresholds = Thresholds(Decimal(site.elevated_pct), Decimal(site.theft_pct))
    topology, _ = site_topology(db, site)
    return station_balance(topology, meter_energy(db, site, start, end), thresholds)
