"""The alert engine (the job ``alerts.evaluate``, every minute): each active rule's condition judged per subject
(a line, a gateway, a meter), an Alert opened when it is raised and closed when it clears, one outbox message per
recipient and channel when it opens and when it escalates (the outbox's idempotency keys say «once»).

A line's loss has hysteresis: raised at ≥ raise_pct for ``count`` consecutive intervals or days, cleared when the
newest is below clear_pct, unchanged in between and while the data is incomplete."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

from flask import current_app, has_app_context
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from cloud.alerts.rules import KIND_WORDS, AlertError
from cloud.audit import audit
from cloud.i18n import in_language
from cloud.ingest.chain import missing_ranges
from cloud.models import (
    Alert,
    AlertRule,
    Event,
    Gateway,
    IntervalEnergy,
    Meter,
    Reading,
    Site,
    TelegramLink,
    User,
)
from cloud.notifications.mail import queue_mail
from cloud.operations.health import recent_timing
from cloud.operations.voltage import VOLTAGE_KEYS
from cloud.permissions import Role
from cloud.sites.balance import meter_energy, site_topology
from shared.balance import Thresholds, station_balance
from shared.calendar import day_bounds, kyiv_day

QUARTER = timedelta(minutes=15)
TAMPER_KINDS = ("counter_reset", "implausible_jump", "tamper")
STATES = ("open", "closed", "all")


@dataclass(frozen=True)
class Finding:
    """What a check says of one subject: raised (True), cleared (False) or unchanged (None: hysteresis, no data)."""

    subject: str
    site_id: int | None
    raised: bool | None
    detail: dict = field(default_factory=dict)


def _rule_sites(db: Session, rule: AlertRule) -> list[Site]:
    query = select(Site).where(Site.org_id == rule.org_id).order_by(Site.code)
    if rule.site_id:
        query = query.where(Site.id == rule.site_id)
    return list(db.scalars(query))


def loss_windows(now: datetime, count: int, unit: str) -> list[tuple[datetime, datetime]]:
    """The ``count`` newest complete windows before ``now``, newest first: quarter-hours, or Kyiv days."""
    if unit == "days":
        today = kyiv_day(now)
        return [tuple(t.replace(tzinfo=None) for t in day_bounds(today - timedelta(days=i + 1))) for i in range(count)]
    end = now.replace(minute=now.minute - now.minute % 15, second=0, microsecond=0)
    return [(end - QUARTER * (i + 1), end - QUARTER * i) for i in range(count)]


def _line_loss(db: Session, rule: AlertRule, sites: list[Site], now: datetime) -> list[Finding]:
    params = rule.params
    raise_at, clear_below = Decimal(params["raise_pct"]), Decimal(params["clear_pct"])
    found = []
    for site in sites:
        topology, _ = site_topology(db, site)
        thresholds = Thresholds(Decimal(site.elevated_pct), Decimal(site.theft_pct))
        per_line: dict[str, list[Decimal | None]] = {line.line: [] for line in topology.lines}
        for start, end in loss_windows(now, int(params["count"]), params["unit"]):
            balance = station_balance(topology, meter_energy(db, site, start, end), thresholds)
            for line in balance.lines:
                per_line.setdefault(line.line, []).append(None if line.status == "incomplete" else line.loss_pct)
        for number, losses in per_line.items():
            newest = losses[0] if losses else None
            if losses and all(p is not None and p >= raise_at for p in losses):
                raised = True
            elif newest is not None and newest < clear_below:
                raised = False
            else:
                raised = None
            found.append(Finding(f"line:{site.code}/{number}", site.id, raised,
                                 {"site": site.code, "line": number,
                                  "loss_pct": None if newest is None else f"{newest:.1f}"}))
    return found


def _site_meters(db: Session, sites: list[Site]) -> dict[int, tuple[str, Site]]:
    by_id = {site.id: site for site in sites}
    return {meter_id: (code, by_id[site_id]) for meter_id, code, site_id in db.execute(
        select(Meter.id, Meter.code, Meter.site_id).where(Meter.site_id.in_(by_id), Meter.removed_at.is_(None)))}


def _voltage(db: Session, rule: AlertRule, sites: list[Site], now: datetime) -> list[Finding]:
    low, high = float(rule.params["low_v"]), float(rule.params["high_v"])
    since = now - timedelta(minutes=int(rule.params["window_minutes"]))
    meters = _site_meters(db, sites)
    bad: dict[int, dict] = {}
    for meter_id, kind in db.execute(select(Event.meter_id, Event.kind).where(
            Event.meter_id.in_(meters), Event.kind.like("voltage_%"), Event.ts >= since).order_by(Event.ts)):
        bad[meter_id] = {"event": kind}
    for meter_id, values in db.execute(select(Reading.meter_id, Reading.values).where(
            Reading.meter_id.in_(meters), Reading.ts >= since).order_by(Reading.ts)):
        for key in VOLTAGE_KEYS:
            try:
                volts = float((values or {}).get(key))
            except (TypeError, ValueError):
                continue
            if not low <= volts <= high:
                bad[meter_id] = {"phase": key.removeprefix("voltage_"), "volts": f"{volts:.1f}"}
    return [Finding(f"meter:{site.code}/{code}", site.id, meter_id in bad,
                    {"site": site.code, "meter": code, **bad.get(meter_id, {})})
            for meter_id, (code, site) in meters.items()]


def _gateways(db: Session, sites: list[Site]) -> list[tuple[Gateway, Site]]:
    by_id = {site.id: site for site in sites}
    return [(g, by_id[g.site_id]) for g in db.scalars(select(Gateway).where(
        Gateway.site_id.in_(by_id), Gateway.status == "active").order_by(Gateway.code))]


def _gateway_silent(db: Session, rule: AlertRule, sites: list[Site], now: datetime) -> list[Finding]:
    quiet = timedelta(minutes=int(rule.params["minutes"]))
    return [Finding(f"gateway:{g.code}", site.id, (g.last_seen or g.enrolled_at) < now - quiet,
                    {"site": site.code, "gateway": g.code,
                     "last_seen": g.last_seen.strftime("%Y-%m-%dT%H:%M:%SZ") if g.last_seen else None})
            for g, site in _gateways(db, sites)]


def _meter_silent(db: Session, rule: AlertRule, sites: list[Site], now: datetime) -> list[Finding]:
    since = now - timedelta(minutes=int(rule.params["minutes"]))
    watched = [site for site in sites if db.scalar(select(Gateway.id).where(Gateway.site_id == site.id,
                                                                            Gateway.status == "active").limit(1))]
    meters = _site_meters(db, watched)
    heard = set(db.scalars(select(Reading.meter_id).where(Reading.meter_id.in_(meters), Reading.ts >= since,
                                                          Reading.source == "gateway").distinct()))
    heard |= set(db.scalars(select(IntervalEnergy.meter_id).where(IntervalEnergy.meter_id.in_(meters),
                                                                  IntervalEnergy.start >= since).distinct()))
    return [Finding(f"meter:{site.code}/{code}", site.id, meter_id not in heard, {"site": site.code, "meter": code})
            for meter_id, (code, site) in meters.items()]


def _counter_tamper(db: Session, rule: AlertRule, sites: list[Site], now: datetime) -> list[Finding]:
    since = now - timedelta(minutes=int(rule.params["window_minutes"]))
    meters = _site_meters(db, sites)
    seen: dict[int, str] = {}
    for meter_id, kind in db.execute(select(Event.meter_id, Event.kind).where(
            Event.meter_id.in_(meters), Event.kind.in_(TAMPER_KINDS), Event.ts >= since).order_by(Event.ts)):
        seen[meter_id] = kind
    return [Finding(f"meter:{site.code}/{code}", site.id, meter_id in seen,
                    {"site": site.code, "meter": code, **({"event": seen[meter_id]} if meter_id in seen else {})})
            for meter_id, (code, site) in meters.items()]


def _backlog(db: Session, rule: AlertRule, sites: list[Site], now: datetime) -> list[Finding]:
    late = timedelta(minutes=int(rule.params["minutes"]))
    found = []
    for gateway, site in _gateways(db, sites):
        missing = sum(last - first + 1 for first, last in missing_ranges(db, gateway))
        lag, _ = recent_timing(db, gateway)
        raised = missing >= int(rule.params["missing"]) or (lag is not None and lag > late)
        found.append(Finding(f"gateway:{gateway.code}", site.id, raised,
                             {"site": site.code, "gateway": gateway.code, "missing": missing,
                              "lag_min": None if lag is None else int(lag.total_seconds() // 60)}))
    return found


CHECKS: dict[str, Callable[[Session, AlertRule, list[Site], datetime], list[Finding]]] = {
    "line_elevated": _line_loss, "line_theft": _line_loss, "voltage": _voltage, "gateway_silent": _gateway_silent,
    "meter_silent": _meter_silent, "counter_tamper": _counter_tamper, "backlog": _backlog,
}


def recipients(db: Session, rule: AlertRule) -> list[User]:
    wanted = rule.recipients or {}
    query = select(User).where(User.org_id == rule.org_id, User.active,
                               (User.id.in_(wanted.get("users") or [-1])) | (User.role.in_(wanted.get("roles") or
                                                                                           ["-"])))
    return list(db.scalars(query.where(User.role != Role.RESIDENT.value).order_by(User.id)))


def org_admins(db: Session, org_id: int) -> list[User]:
    return list(db.scalars(select(User).where(User.org_id == org_id, User.active, User.role == Role.ORG_ADMIN.value)
                           .order_by(User.id)))


def chat_of(db: Session, user: User) -> str | None:
    return db.scalar(select(TelegramLink.chat_id).where(TelegramLink.user_id == user.id,
                                                        TelegramLink.chat_id.is_not(None)))


def describe(alert: Alert, lang: str) -> tuple[str, str]:
    """(subject, body) of an alert's message in ``lang``."""
    detail = alert.detail or {}
    what = in_language(KIND_WORDS[alert.kind], lang)
    where = " · ".join(f"{k}={v}" for k, v in detail.items() if v is not None)
    subject = in_language("alert_mail_subject", lang, kind=what, subject=alert.subject.split(":", 1)[-1])
    base = current_app.config.get("PUBLIC_URL", "") if has_app_context() else ""
    body = in_language("alert_mail_body", lang, kind=what, detail=where,
                       at=alert.opened_at.strftime("%Y-%m-%d %H:%M UTC"), url=f"{(base or '').rstrip('/')}/alerts/")
    return subject, body


def notify(db: Session, rule: AlertRule, alert: Alert, stage: str, people: list[User]) -> int:
    """Queue the alert's message to each person on each of the rule's channels, once (key alert:ID:stage:…)."""
    queued = 0
    for user in people:
        subject, body = describe(alert, user.lang or "uk")
        if stage == "escalated":
            subject = in_language("alert_escalated_prefix", user.lang or "uk") + " " + subject
        for channel in rule.channels.split(","):
            to = user.email if channel == "email" else chat_of(db, user)
            if not to:
                continue
            if queue_mail(db, rule.org_id, to, subject, body, kind="alert", channel=channel,
                          key=f"alert:{alert.id}:{stage}:{channel}:{user.id}") is not None:
                queued += 1
    return queued


def evaluate(db: Session, now: datetime, org_id: int | None = None) -> dict:
    """Judge every active rule (of ``org_id`` when given) at ``now``: open, close, escalate; not committed."""
    query = select(AlertRule).where(AlertRule.active).order_by(AlertRule.id)
    if org_id is not None:
        query = query.where(AlertRule.org_id == org_id)
    counts = {"opened": 0, "closed": 0, "escalated": 0, "messages": 0}
    for rule in db.scalars(query).all():
        open_alerts = {a.subject: a for a in db.scalars(select(Alert).where(Alert.rule_id == rule.id,
                                                                            Alert.closed_at.is_(None)))}
        for finding in CHECKS[rule.kind](db, rule, _rule_sites(db, rule), now):
            alert = open_alerts.get(finding.subject)
            if finding.raised and alert is None:
                alert = Alert(org_id=rule.org_id, rule_id=rule.id, kind=rule.kind, subject=finding.subject,
                              site_id=finding.site_id, open_key=f"{rule.id}:{finding.subject}", detail=finding.detail,
                              opened_at=now, last_seen_at=now)
                db.add(alert)
                db.flush()
                open_alerts[finding.subject] = alert
                counts["opened"] += 1
                counts["messages"] += notify(db, rule, alert, "opened", recipients(db, rule))
            elif finding.raised:
                alert.last_seen_at, alert.detail = now, finding.detail
            elif finding.raised is False and alert is not None:
                alert.closed_at, alert.open_key = now, None
                open_alerts.pop(finding.subject)
                counts["closed"] += 1
        if rule.escalate_minutes:
            due = now - timedelta(minutes=rule.escalate_minutes)
            for alert in open_alerts.values():
                if alert.acknowledged_at is None and alert.escalated_at is None and alert.opened_at <= due:
                    alert.escalated_at = now
                    counts["escalated"] += 1
                    counts["messages"] += notify(db, rule, alert, "escalated", org_admins(db, rule.org_id))
    db.flush()
    return counts


@dataclass(frozen=True)
class AlertFilter:
    kind: str = ""
    site: str = ""
    state: str = "open"

    @classmethod
    def parse(cls, args) -> AlertFilter:
        kind, site, state = ((args.get(k) or "").strip() for k in ("kind", "site", "state"))
        if kind and kind not in KIND_WORDS:
            raise AlertError(f"kind must be one of {', '.join(KIND_WORDS)}, got {kind[:40]!r}", "err_alert_kind",
                             "kind", kinds=", ".join(KIND_WORDS))
        state = state or "open"
        if state not in STATES:
            raise AlertError(f"state must be one of {', '.join(STATES)}, got {state[:40]!r}", "err_alert_state",
                             "state")
        return cls(kind, site[:50], state)


def list_alerts(db: Session, org_id: int, wanted: AlertFilter, limit: int = 200) -> list[Alert]:
    """Open alerts first, then the recent closed ones, newest first."""
    query = select(Alert).where(Alert.org_id == org_id)
    if wanted.kind:
        query = query.where(Alert.kind == wanted.kind)
    if wanted.site:
        query = query.where(Alert.site_id.in_(select(Site.id).where(Site.org_id == org_id, Site.code == wanted.site)))
    if wanted.state == "open":
        query = query.where(Alert.closed_at.is_(None))
    elif wanted.state == "closed":
        query = query.where(Alert.closed_at.is_not(None))
    return list(db.scalars(query.order_by(Alert.closed_at.is_not(None), Alert.opened_at.desc(), Alert.id.desc())
                           .limit(limit)))


def find_alert(db: Session, org_id: int, alert_id: int) -> Alert:
    alert = db.get(Alert, alert_id)
    if alert is None or alert.org_id != org_id:
        raise AlertError(f"alert {alert_id} does not exist", "err_alert_missing", "id", status=404, id=alert_id)
    return alert


def acknowledge(db: Session, org_id: int, alert_id: int, actor: str, now: datetime) -> Alert:
    """Someone has seen it: no escalation after this (audited; not committed). Once only."""
    alert = find_alert(db, org_id, alert_id)
    if alert.acknowledged_at is not None:
        raise AlertError(f"alert {alert_id} was acknowledged by {alert.acknowledged_by} already",
                         "err_alert_acknowledged", "id", status=409, who=alert.acknowledged_by)
    alert.acknowledged_at, alert.acknowledged_by = now.replace(microsecond=0), actor[:200]
    audit(db, org_id, actor, "alert.acknowledge", f"alert:{alert.id}", {"acknowledged": False},
          {"acknowledged_at": alert.acknowledged_at.isoformat(), "subject": alert.subject})
    db.flush()
    return alert


def site_codes(db: Session, org_id: int) -> dict[int, str]:
    return dict(db.execute(select(Site.id, Site.code).where(Site.org_id == org_id)).all())


def alert_json(alert: Alert, sites: dict[int, str]) -> dict:
    def iso(ts):
        return None if ts is None else ts.strftime("%Y-%m-%dT%H:%M:%SZ")

    return {"id": alert.id, "rule": alert.rule_id, "kind": alert.kind, "subject": alert.subject,
            "site": sites.get(alert.site_id), "detail": alert.detail or {}, "opened_at": iso(alert.opened_at),
            "last_seen_at": iso(alert.last_seen_at), "closed_at": iso(alert.closed_at),
            "acknowledged_at": iso(alert.acknowledged_at), "acknowledged_by": alert.acknowledged_by or None,
            "escalated_at": iso(alert.escalated_at)}


def open_alert_count(db: Session, org_id: int) -> int:
    return db.scalar(select(func.count()).select_from(Alert).where(Alert.org_id == org_id,
                                                                  Alert.closed_at.is_(None))) or 0
