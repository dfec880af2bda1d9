"""A gateway's health as the cloud sees it: when it was last heard, how far behind its batches arrive, how far
its clock is off, which meters answer, and its link over the last week (batches received per hour).

Nothing here is stored: it is read from the batches and readings at the time of asking. A batch's ``created``
is the gateway's own clock when it sealed the batch; ``received_at`` is the cloud's. The batch document is in
canonical form (sorted keys), so ``created`` is its first field and is read from the first bytes of the body,
never by parsing whole batches.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from statistics import median_high

from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import Session

from cloud.ingest.chain import missing_ranges
from cloud.ingest.health import latest_health
from cloud.models import Batch, Event, Gateway, IntervalEnergy, Meter, Reading
from shared.calendar import parse_iso

SILENT_AFTER = timedelta(hours=1)  # a gateway sends at least every 15 minutes: an hour without a batch is silence
BACKLOG_AFTER = timedelta(hours=1)  # a batch received this long after it was sealed: the gateway is catching up
DRIFT_AFTER = timedelta(minutes=2)  # the gateway's clock this far from the cloud's
ANSWERING_WITHIN = timedelta(hours=1)  # a meter with a reading or an interval this recent answers
RECENT_BATCHES = 50  # the newest batches the backlog is counted in
TIMING_WINDOW = timedelta(days=7)  # the clock offset is judged from the batches received in this window
TIMING_BATCHES = 5000
LINK_HOURS = 7 * 24
CREATED = re.compile(rb'^\{"created":"([0-9T:\-]+Z)"')


@dataclass(frozen=True)
class LinkHour:
    start: datetime  # UTC
    batches: int


@dataclass(frozen=True)
class GatewayHealthReport:
    """A gateway's health worked out at the time of asking (not the stored heartbeat, ``cloud.models.GatewayHealth``)."""

    gateway: Gateway
    site_code: str
    now: datetime
    last_seen: datetime | None
    last_lag: timedelta | None  # the newest batch: received − created
    clock_offset: timedelta | None  # the gateway's clock − the cloud's (+: ahead)
    late: int  # of the newest batches, those that arrived late (a backlog draining)
    gaps: list[tuple[int, int]]
    software_version: str | None  # from the gateway's last heartbeat (docs/remote.md); None before the first
    meters_total: int
    meters_answering: list[str]
    meters_offline: list[str]  # the last meter_offline/meter_online event the gateway sent says offline
    link: list[LinkHour] = field(default_factory=list)

    @property
    def silent(self) -> bool:
        return self.gateway.status == "active" and (self.last_seen is None or self.now - self.last_seen > SILENT_AFTER)

    @property
    def backlogged(self) -> bool:
        return bool(self.gaps) or (self.last_lag is not None and self.last_lag > BACKLOG_AFTER)

    @property
    def clock_drift(self) -> bool:
        return self.clock_offset is not None and abs(self.clock_offset) > DRIFT_AFTER

    @property
    def problems(self) -> list[str]:
        """The health flags raised, as event kinds (the events page lists them beside the stored events)."""
        return [kind for kind, raised in (("gateway_silent", self.silent), ("gateway_backlogged", self.backlogged),
                                          ("gateway_clock_drift", self.clock_drift)) if raised]

    @property
    def link_peak(self) -> int:
        return max((hour.batches for hour in self.link), default=0)

    def as_json(self) -> dict:
        def seconds(value: timedelta | None) -> int | None:
            return None if value is None else int(value.total_seconds())

        return {
            "gateway": self.gateway.code, "site": self.site_code, "status": self.gateway.status,
            "last_seen": iso(self.last_seen), "last_lag_s": seconds(self.last_lag),
            "clock_offset_s": seconds(self.clock_offset), "late_batches": self.late, "gaps": [list(g) for g in self.gaps],
            "software_version": self.software_version,
            "meters": {"total": self.meters_total, "answering": self.meters_answering,
                       "offline": self.meters_offline},
            "problems": self.problems,
            "link": [{"hour": iso(h.start), "batches": h.batches} for h in self.link],
        }


def iso(ts: datetime | None) -> str | None:
    return None if ts is None else ts.strftime("%Y-%m-%dT%H:%M:%SZ")


def batch_created(head: bytes | None) -> datetime | None:
    """The gateway's seal time from a batch body's first bytes (None for a body that does not start with it)."""
    found = CREATED.match(bytes(head or b""))
    if found is None:
        return None
    try:
        return parse_iso(found.group(1).decode()).replace(tzinfo=None)
    except ValueError:
        return None


def batch_timings(db: Session, gateway: Gateway, window: timedelta = TIMING_WINDOW) -> list[tuple[datetime, datetime]]:
    """(received, created) of the batches received in the ``window`` before the newest one, newest first."""
    newest = db.scalar(select(func.max(Batch.received_at)).where(Batch.gateway_id == gateway.id))
    if newest is None:
        return []
    rows = db.execute(select(Batch.received_at, func.substr(Batch.body, 1, 40))
                      .where(Batch.gateway_id == gateway.id, Batch.received_at >= newest - window)
                      .order_by(Batch.received_at.desc(), Batch.seq.desc()).limit(TIMING_BATCHES)).all()
    return [(received, created) for received, head in rows if (created := batch_created(head)) is not None]


def clock_offset(timings: list[tuple[datetime, datetime]]) -> timedelta | None:
    """The gateway's clock − the cloud's, told only by batches that went out at once.

    A batch sent late (a backlog draining after an outage) arrived long after its seal and says nothing about the
    clock. In each hour of receipt the batch with the largest created − received is the one sent most promptly;
    the median over the hours is the offset, so a few hours of backlog — however late — do not move it. A gateway
    whose every hour of the window was backlog cannot be told from a slow clock."""
    best: dict[datetime, timedelta] = {}
    for received, created in timings:
        hour = received.replace(minute=0, second=0, microsecond=0)
        if hour not in best or created - received > best[hour]:
            best[hour] = created - received
    return median_high(best.values()) if best else None


def recent_timing(db: Session, gateway: Gateway) -> tuple[timedelta | None, timedelta | None]:
    """(the newest batch's lag on the cloud's clock, the clock offset)."""
    timings = batch_timings(db, gateway)
    if not timings:
        return None, None
    offset = clock_offset(timings)
    newest_received, newest_created = timings[0]
    # A clock off by the offset shifts every batch's created: the lag is measured on the cloud's clock.
    return newest_received - newest_created + offset, offset


def late_batches(timings: list[tuple[datetime, datetime]], offset: timedelta | None,
                 recent: int = RECENT_BATCHES) -> int:
    """Of the newest batches, those received more than ``BACKLOG_AFTER`` after their seal (the backlog)."""
    if offset is None:
        return 0
    return sum(received - created + offset > BACKLOG_AFTER for received, created in timings[:recent])


def link_quality(db: Session, gateway: Gateway, now: datetime, hours: int = LINK_HOURS) -> list[LinkHour]:
    """Batches received per UTC hour over the last ``hours`` hours, oldest first; an hour with none is a gap."""
    end = now.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    start = end - timedelta(hours=hours)
    counts: dict[datetime, int] = {}
    for (received,) in db.execute(select(Batch.received_at).where(Batch.gateway_id == gateway.id,
                                                                  Batch.received_at >= start)):
        hour = received.replace(minute=0, second=0, microsecond=0)
        counts[hour] = counts.get(hour, 0) + 1
    return [LinkHour(start + timedelta(hours=i), counts.get(start + timedelta(hours=i), 0)) for i in range(hours)]


def meter_states(db: Session, gateway: Gateway, now: datetime) -> tuple[int, list[str], list[str]]:
    """(meters of the gateway's site, those answering in the last hour, those the gateway last said offline)."""
    in_service = select(Meter.id).where(Meter.site_id == gateway.site_id, Meter.removed_at.is_(None))
    meters = dict(db.execute(select(Meter.id, Meter.code).where(Meter.id.in_(in_service))).all())
    since = now - ANSWERING_WITHIN
    # The meters as a subquery, not thousands of bound ids: the database probes its indexes meter by meter.
    read = set(db.scalars(select(Reading.meter_id).where(Reading.meter_id.in_(in_service), Reading.ts >= since)
                          .distinct()))
    read |= set(db.scalars(select(IntervalEnergy.meter_id).where(IntervalEnergy.meter_id.in_(in_service),
                                                                 IntervalEnergy.start >= since).distinct()))
    # Each meter's last offline/online event (by time, then id), found in the database: a year of a flaky
    # meter's episodes is thousands of rows, of which one counts — its newest time grouped, then its rows at it.
    kinds = or_(Event.kind == "meter_offline", Event.kind == "meter_online")
    newest = (select(Event.meter_id, func.max(Event.ts).label("ts"))
              .where(Event.gateway_id == gateway.id, Event.meter_id.in_(in_service), kinds)
              .group_by(Event.meter_id).subquery())
    latest: dict[int, tuple[int, str]] = {}
    for meter_id, event_id, kind in db.execute(
            select(Event.meter_id, Event.id, Event.kind)
            .join(newest, and_(Event.meter_id == newest.c.meter_id, Event.ts == newest.c.ts))
            .where(Event.gateway_id == gateway.id, kinds)):
        if meter_id not in latest or event_id > latest[meter_id][0]:
            latest[meter_id] = (event_id, kind)
    last = {meter_id: kind for meter_id, (_, kind) in latest.items()}
    answering = sorted(meters[m] for m in read)
    offline = sorted(meters[m] for m, kind in last.items() if kind == "meter_offline" and m not in read)
    return len(meters), answering, offline


def gaps(db: Session, gateway: Gateway) -> list[tuple[int, int]]:
    """``missing_ranges`` of the gateway's chain; when the batches held are exactly 1 … the highest seq (the usual
    case) that is known from one count over the (gateway, seq) index, without walking a year of batches."""
    count, lowest, highest = db.execute(select(func.count(), func.min(Batch.seq), func.max(Batch.seq))
                                        .where(Batch.gateway_id == gateway.id)).one()
    if not count or (lowest == 1 and count == highest):
        return []
    return missing_ranges(db, gateway)


def gateway_health(db: Session, gateway: Gateway, site_code: str, now: datetime,
                   link: bool = True, meters: bool = True) -> GatewayHealthReport:
    """``link``: count the week's batches per hour; ``meters``: read which meters answer (a station's thousands).
    The flags (``problems``) need neither: the events page asks without them."""
    timings = batch_timings(db, gateway)
    offset = clock_offset(timings)
    lag = timings[0][0] - timings[0][1] + offset if timings else None
    total, answering, offline = meter_states(db, gateway, now) if meters else (0, [], [])
    return GatewayHealthReport(gateway, site_code, now, gateway.last_seen, lag, offset, late_batches(timings, offset),
                               gaps(db, gateway), (latest_health(db, gateway) or {}).get("software_version"), total,
                               answering, offline, link_quality(db, gateway, now) if link else [])


def site_gateways(db: Session, site_id: int) -> list[Gateway]:
    return list(db.scalars(select(Gateway).where(Gateway.site_id == site_id).order_by(Gateway.code)))


def link_bars(health: GatewayHealthReport, width: float = 672.0, height: float = 80.0) -> list[dict]:
    """The link chart's bars as SVG geometry: one per hour, a gap (no batch) drawn as a red mark on the axis."""
    step = width / max(len(health.link), 1)
    peak = max(health.link_peak, 1)
    bars = []
    for i, hour in enumerate(health.link):
        h = height * hour.batches / peak
        bars.append({"x": round(i * step, 2), "w": round(max(step - 0.6, 0.6), 2),
                     "y": round(height - h, 2) if hour.batches else height - 4, "h": round(h, 2) if hour.batches else 4,
                     "gap": not hour.batches, "hour": hour.start, "batches": hour.batches})
    return bars
