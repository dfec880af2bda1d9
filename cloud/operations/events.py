"""The events and alarms of an organisation or a site: what the gateways sent (voltage, counters, tamper, meters
offline), the security refusals the ingest API counted, and the flags nobody stores — a line's elevated loss or
suspected theft (from the balance of the period, cloud/sites/balance.py) and a gateway silent, backlogged or
with its clock off (cloud/operations/health.py). A stored event is acknowledged with a note, audited."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from cloud.audit import audit
from cloud.dashboards.compare import month_span
from cloud.dashboards.daily import newest_day
from cloud.dashboards.series import layout, month_figures
from cloud.errors import ExplainedError
from cloud.i18n import N_
from cloud.models import Event, Gateway, Line, Meter, Site
from cloud.operations.health import gateway_health
from shared.balance import ELEVATED, SUSPECTED_THEFT
from shared.calendar import naive_period_bounds, parse_period

GROUPS = ("theft", "voltage", "counter", "tamper", "gateway", "security")
STATES = ("open", "acknowledged", "all")
COUNTER_KINDS = frozenset({"counter_reset", "counter_rollover", "implausible_jump", "meter_replaced",
                           "readings_lost"})
GATEWAY_KINDS = frozenset({"meter_offline", "meter_online", "clock_jump", "clock_untrusted", "uplink_refused",
                           "disk_low", "gateway_silent", "gateway_backlogged", "gateway_clock_drift"})
LONGEST_NOTE = 500
LIMIT = 300

# The words for the kinds the gateway and the cloud write (a kind not listed is shown as it came).
KIND_WORDS = {
    "suspected_theft": N_("event_suspected_theft"), "line_elevated": N_("event_line_elevated"),
    "line_suspected_theft": N_("event_line_suspected_theft"),
    "voltage_over_voltage": N_("event_voltage_over_voltage"),
    "voltage_under_voltage": N_("event_voltage_under_voltage"),
    "voltage_interruption_short": N_("event_voltage_interruption_short"),
    "voltage_interruption_long": N_("event_voltage_interruption_long"),
    "counter_reset": N_("event_counter_reset"), "counter_rollover": N_("event_counter_rollover"),
    "implausible_jump": N_("event_implausible_jump"), "meter_replaced": N_("event_meter_replaced"),
    "readings_lost": N_("event_readings_lost"), "tamper": N_("event_tamper"),
    "meter_offline": N_("event_meter_offline"), "meter_online": N_("event_meter_online"),
    "clock_jump": N_("event_clock_jump"), "clock_untrusted": N_("event_clock_untrusted"),
    "uplink_refused": N_("event_uplink_refused"), "disk_low": N_("event_disk_low"),
    "gateway_silent": N_("event_gateway_silent"), "gateway_backlogged": N_("event_gateway_backlogged"),
    "gateway_clock_drift": N_("event_gateway_clock_drift"),
    "security:bad_signature": N_("event_security_bad_signature"),
    "security:revoked_gateway": N_("event_security_revoked_gateway"),
    "security:key_rotation_refused": N_("event_security_key_rotation_refused"),
    "security:seq_conflict": N_("event_security_seq_conflict"),
    "security:chain_break": N_("event_security_chain_break"),
}
GROUP_WORDS = {"theft": N_("event_group_theft"), "voltage": N_("event_group_voltage"),
               "counter": N_("event_group_counter"), "tamper": N_("event_group_tamper"),
               "gateway": N_("event_group_gateway"), "security": N_("event_group_security")}


STATE_WORDS = (N_("event_state_open"), N_("event_state_acknowledged"), N_("event_state_all"))


class OperationsError(ExplainedError):
    """A filter or an acknowledgement refused: ``field`` names what was wrong."""

    def __init__(self, message: str, code: str, field_name: str, status: int = 422, **params):
        super().__init__(message, code, **params)
        self.field, self.status = field_name, status


def group_of(kind: str) -> str:
    if kind.startswith("security:"):
        return "security"
    if kind.startswith("voltage_"):
        return "voltage"
    if kind in ("suspected_theft", "line_elevated", "line_suspected_theft"):
        return "theft"
    if kind in COUNTER_KINDS:
        return "counter"
    if kind == "tamper":
        return "tamper"
    return "gateway"


@dataclass(frozen=True)
class EventRow:
    """One line of the events page: a stored event (``id``) or a flag computed now (``id`` None)."""

    id: int | None
    ts: datetime | None
    kind: str
    site: str
    gateway: str = ""
    meter: str = ""
    line: str = ""
    detail: dict = field(default_factory=dict)
    count: int = 1
    last_ts: datetime | None = None
    acknowledged_at: datetime | None = None
    acknowledged_by: str = ""
    note: str = ""

    @property
    def group(self) -> str:
        return group_of(self.kind)

    @property
    def computed(self) -> bool:
        return self.id is None

    @property
    def is_open(self) -> bool:
        return self.acknowledged_at is None

    def as_json(self) -> dict:
        def iso(ts):
            return None if ts is None else ts.strftime("%Y-%m-%dT%H:%M:%SZ")

        return {"id": self.id, "ts": iso(self.ts), "kind": self.kind, "group": self.group, "site": self.site,
                "gateway": self.gateway or None, "meter": self.meter or None, "line": self.line or None,
                "detail": self.detail, "count": self.count, "last_ts": iso(self.last_ts),
                "computed": self.computed, "acknowledged_at": iso(self.acknowledged_at),
                "acknowledged_by": self.acknowledged_by or None, "note": self.note or None}


@dataclass(frozen=True)
class EventFilter:
    group: str = ""  # "" for every group
    period: str = ""  # YYYY-MM (Kyiv), "" for the newest events and the balance of the newest month
    state: str = "open"

    @classmethod
    def parse(cls, args) -> EventFilter:
        group, period, state = (args.get("kind") or "").strip(), (args.get("period") or "").strip(), \
            (args.get("state") or "open").strip()
        if group and group not in GROUPS:
            raise OperationsError(f"kind must be one of {', '.join(GROUPS)}, got {group[:40]!r}",
                                  "err_event_kind", "kind", kinds=", ".join(GROUPS))
        if period:
            try:
                parse_period(period)
            except ValueError as exc:
                raise OperationsError(str(exc), "err_event_period", "period") from exc
        if state not in STATES:
            raise OperationsError(f"state must be one of {', '.join(STATES)}, got {state[:40]!r}",
                                  "err_event_state", "state")
        return cls(group, period, state)


def _site_scope(site: Site):
    """Events of the site: sent by its gateways, or about its meters."""
    return or_(Event.gateway_id.in_(select(Gateway.id).where(Gateway.site_id == site.id)),
               Event.meter_id.in_(select(Meter.id).where(Meter.site_id == site.id)))


def stored_events(db: Session, org_id: int, site: Site | None, wanted: EventFilter, security: bool) -> list[EventRow]:
    query = select(Event).where(Event.org_id == org_id)
    if site is not None:
        query = query.where(_site_scope(site))
    if not security:
        query = query.where(Event.kind.not_like("security:%"))
    if wanted.period:
        start, end = naive_period_bounds(wanted.period)
        query = query.where(Event.ts >= start, Event.ts < end)
    if wanted.state == "open":
        query = query.where(Event.acknowledged_at.is_(None))
    elif wanted.state == "acknowledged":
        query = query.where(Event.acknowledged_at.is_not(None))
    if wanted.group == "security":
        query = query.where(Event.kind.like("security:%"))
    elif wanted.group == "voltage":
        query = query.where(Event.kind.like("voltage_%"))
    elif wanted.group == "counter":
        query = query.where(Event.kind.in_(COUNTER_KINDS))
    elif wanted.group in ("tamper", "theft"):
        query = query.where(Event.kind == ("tamper" if wanted.group == "tamper" else "suspected_theft"))
    elif wanted.group == "gateway":
        query = query.where(Event.kind.in_(GATEWAY_KINDS))
    events = db.scalars(query.order_by(func.coalesce(Event.last_ts, Event.ts).desc(), Event.id.desc())
                        .limit(LIMIT)).all()
    gateways = _names(db, Gateway, {e.gateway_id for e in events})
    meters = _names(db, Meter, {e.meter_id for e in events})
    sites = dict(db.execute(select(Gateway.id, Site.code).join(Site, Site.id == Gateway.site_id)
                            .where(Gateway.org_id == org_id)).all())
    meter_sites = dict(db.execute(select(Meter.id, Site.code).join(Site, Site.id == Meter.site_id)
                                  .where(Meter.id.in_({e.meter_id for e in events if e.meter_id}))).all())
    return [EventRow(e.id, e.ts, e.kind, sites.get(e.gateway_id) or meter_sites.get(e.meter_id, ""),
                     gateways.get(e.gateway_id, ""), meters.get(e.meter_id, ""), detail=e.detail or {},
                     count=e.count or 1, last_ts=e.last_ts, acknowledged_at=e.acknowledged_at,
                     acknowledged_by=e.acknowledged_by or "", note=e.note or "") for e in events]


def _names(db: Session, model, ids: set) -> dict[int, str]:
    ids = {i for i in ids if i}
    return dict(db.execute(select(model.id, model.code).where(model.id.in_(ids))).all()) if ids else {}


def newest_period(db: Session, site: Site) -> str | None:
    last = newest_day(db, site.id)  # the Kyiv day of the newest interval
    return None if last is None else f"{last:%Y-%m}"


def balance_flags(db: Session, site: Site, period: str | None) -> list[EventRow]:
    """The lines the period's balance flags (elevated loss, suspected theft): computed, never stored; a line
    with missing data is ``incomplete`` there and so never shows here."""
    period = period or newest_period(db, site)
    if period is None:
        return []
    start, _ = naive_period_bounds(period)
    names = dict(db.execute(select(Line.number, Line.name).where(Line.site_id == site.id)).all())
    found = []
    year, month = parse_period(period)
    # The month's balance from its days' per-group sums (series.month_figures): what span_balance and site_balance
    # say (tests/cloud/test_dashboards.py), in a read of 31 × groups rows rather than of every meter's.
    figures = month_figures(db, site, [month_span(year, month)], layout(db, site))[0]
    for line in figures.lines:
        if line.status in (ELEVATED, SUSPECTED_THEFT):
            found.append(EventRow(None, start, f"line_{line.status}", site.code, line=line.line, detail={
                "period": period, "loss_pct": f"{Decimal(line.loss_pct10).scaleb(-1):.1f}",
                "loss_kwh": f"{Decimal(line.loss_wh).scaleb(-3):.3f}", "name": names.get(line.line, "")}))
    return found


def health_flags(db: Session, site: Site, now: datetime) -> list[EventRow]:
    found = []
    for gateway in db.scalars(select(Gateway).where(Gateway.site_id == site.id, Gateway.status == "active")
                              .order_by(Gateway.code)):
        health = gateway_health(db, gateway, site.code, now, link=False, meters=False)
        for kind in health.problems:
            found.append(EventRow(None, health.last_seen, kind, site.code, gateway.code, detail={
                "last_seen": health.as_json()["last_seen"], "gaps": len(health.gaps),
                "lag_s": health.as_json()["last_lag_s"], "offset_s": health.as_json()["clock_offset_s"]}))
    return found


def list_events(db: Session, org_id: int, site: Site | None, wanted: EventFilter, now: datetime,
                security: bool) -> list[EventRow]:
    """The stored events that pass the filter, after the flags computed now (those are always open)."""
    computed: list[EventRow] = []
    if wanted.state != "acknowledged":
        sites = [site] if site is not None else list(db.scalars(select(Site).where(Site.org_id == org_id)
                                                                .order_by(Site.code)))
        for each in sites:
            if wanted.group in ("", "theft"):
                computed += balance_flags(db, each, wanted.period or None)
            if wanted.group in ("", "gateway") and not wanted.period:
                computed += health_flags(db, each, now)
    return computed + stored_events(db, org_id, site, wanted, security)


def open_count(db: Session, org_id: int, site: Site, security: bool) -> int:
    query = select(func.count()).select_from(Event).where(Event.org_id == org_id, Event.acknowledged_at.is_(None),
                                                          _site_scope(site))
    if not security:
        query = query.where(Event.kind.not_like("security:%"))
    return db.scalar(query) or 0


def find_event(db: Session, org_id: int, event_id: int) -> Event:
    event = db.get(Event, event_id)
    if event is None or event.org_id != org_id:
        raise OperationsError(f"event {event_id} does not exist", "err_event_missing", "id", status=404,
                              id=event_id)
    return event


def acknowledge(db: Session, org_id: int, event_id: int, actor: str, note: str, now: datetime,
                security: bool = True) -> Event:
    """Mark the event seen by ``actor`` with their note (audited; not committed). Once only: a second
    acknowledgement would overwrite who saw it first."""
    event = find_event(db, org_id, event_id)
    if event.kind.startswith("security:") and not security:
        raise OperationsError(f"event {event_id} does not exist", "err_event_missing", "id", status=404,
                              id=event_id)
    note = (note or "").strip()
    if len(note) > LONGEST_NOTE:
        raise OperationsError(f"note: at most {LONGEST_NOTE} characters, got {len(note)}", "err_event_note", "note",
                              longest=LONGEST_NOTE)
    if event.acknowledged_at is not None:
        raise OperationsError(f"event {event_id} was acknowledged by {event.acknowledged_by} already",
                              "err_event_acknowledged", "id", status=409, who=event.acknowledged_by)
    event.acknowledged_at, event.acknowledged_by, event.note = now.replace(microsecond=0), actor[:200], note
    audit(db, org_id, actor, "event.acknowledge", f"event:{event.id}", {"kind": event.kind, "acknowledged": False},
          {"acknowledged_at": event.acknowledged_at.isoformat(), "note": note})
    db.flush()
    return event
