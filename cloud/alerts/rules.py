"""An organisation's alert rules: the kinds of condition watched, each kind's thresholds with their defaults,
who is told and by which channel, and the escalation to the org admins. Checked field by field (the error names
the field) and audited; the engine (engine.py) reads them every minute."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from sqlalchemy import select
from sqlalchemy.orm import Session

from cloud.audit import audit
from cloud.errors import ExplainedError
from cloud.i18n import N_
from cloud.models import AlertRule, Organisation, Site, User
from cloud.permissions import STAFF

CHANNELS = ("email", "telegram")
LONGEST_NAME = 100
LONGEST_ESCALATION = 7 * 24 * 60


@dataclass(frozen=True)
class Param:
    key: str
    default: str
    kind: str  # decimal | int | unit
    low: Decimal = Decimal(0)
    high: Decimal = Decimal(100_000)


# Each kind's thresholds. A line's loss is judged per 15-minute interval or per Kyiv day: raised at ≥ raise_pct
# for `count` consecutive ones, cleared when the newest is below clear_pct (between the two it stays as it is).
LOSS = (Param("raise_pct", "", "decimal", Decimal(0), Decimal(100)),
        Param("clear_pct", "", "decimal", Decimal(0), Decimal(100)),
        Param("count", "4", "int", Decimal(1), Decimal(96)), Param("unit", "intervals", "unit"))
KINDS: dict[str, tuple[Param, ...]] = {
    "line_elevated": tuple(Param(p.key, {"raise_pct": "3", "clear_pct": "2"}.get(p.key, p.default), p.kind, p.low,
                                 p.high) for p in LOSS),
    "line_theft": tuple(Param(p.key, {"raise_pct": "10", "clear_pct": "7"}.get(p.key, p.default), p.kind, p.low,
                              p.high) for p in LOSS),
    # EN 50160: 230 V ± 10 %; a voltage episode the gateway reported, or a reading outside, within the window.
    "voltage": (Param("low_v", "207", "decimal", Decimal(100), Decimal(300)),
                Param("high_v", "253", "decimal", Decimal(100), Decimal(300)),
                Param("window_minutes", "60", "int", Decimal(5), Decimal(10_080))),
    "gateway_silent": (Param("minutes", "60", "int", Decimal(5), Decimal(10_080)),),
    "meter_silent": (Param("minutes", "120", "int", Decimal(15), Decimal(10_080)),),
    # The events the gateway sends: a counter that fell (reset), an implausible jump, tampering.
    "counter_tamper": (Param("window_minutes", "1440", "int", Decimal(5), Decimal(10_080)),),
    # Batches missing from the chain, or the newest one sealed this long before it arrived.
    "backlog": (Param("missing", "1", "int", Decimal(1), Decimal(1_000_000)),
                Param("minutes", "60", "int", Decimal(5), Decimal(10_080))),
}
UNITS = ("intervals", "days")
KIND_WORDS = {"line_elevated": N_("alert_kind_line_elevated"), "line_theft": N_("alert_kind_line_theft"),
              "voltage": N_("alert_kind_voltage"), "gateway_silent": N_("alert_kind_gateway_silent"),
              "meter_silent": N_("alert_kind_meter_silent"), "counter_tamper": N_("alert_kind_counter_tamper"),
              "backlog": N_("alert_kind_backlog")}
PARAM_WORDS = {"raise_pct": N_("alert_param_raise_pct"), "clear_pct": N_("alert_param_clear_pct"),
               "count": N_("alert_param_count"), "unit": N_("alert_param_unit"), "low_v": N_("alert_param_low_v"),
               "high_v": N_("alert_param_high_v"), "window_minutes": N_("alert_param_window_minutes"),
               "minutes": N_("alert_param_minutes"), "missing": N_("alert_param_missing")}
UNIT_WORDS = (N_("alert_unit_intervals"), N_("alert_unit_days"))
CHANNEL_WORDS = (N_("alert_channel_email"), N_("alert_channel_telegram"))
ROLE_WORDS = (N_("alert_role_org_admin"), N_("alert_role_manager"), N_("alert_role_accountant"),
              N_("alert_role_clerk"), N_("alert_role_installer"), N_("alert_role_operator"))
STATE_WORDS = (N_("alert_state_open"), N_("alert_state_closed"), N_("alert_state_all"))


class AlertError(ExplainedError):
    """A rule, a filter or an acknowledgement refused: ``field`` names what was wrong."""

    def __init__(self, message: str, code: str, field_name: str, status: int = 422, **params):
        super().__init__(message, code, field=field_name, **params)
        self.field, self.status = field_name, status


def _words(value) -> list[str]:
    """A list from a form's or the CLI's «a, b» or from JSON's ["a", "b"]."""
    if value is None:
        return []
    if isinstance(value, list | tuple):
        return [str(v).strip() for v in value if str(v).strip()]
    return [part.strip() for part in str(value).split(",") if part.strip()]


def _param(param: Param, raw) -> str:
    text = str(raw).strip()
    if param.kind == "unit":
        if text not in UNITS:
            raise AlertError(f"{param.key} must be one of {', '.join(UNITS)}, got {text[:40]!r}", "err_alert_param",
                             param.key)
        return text
    try:
        value = Decimal(text.replace(",", "."))
    except InvalidOperation:
        value = None
    if value is None or not value.is_finite() or (param.kind == "int" and value != value.to_integral_value()) \
            or not param.low <= value <= param.high:
        raise AlertError(f"{param.key} must be a {'whole ' if param.kind == 'int' else ''}number from {param.low} "
                         f"to {param.high}, got {text[:40]!r}", "err_alert_param", param.key)
    return str(int(value)) if param.kind == "int" else str(value)


def check_params(kind: str, given: dict, base: dict | None = None) -> dict:
    """The kind's thresholds: ``given`` over ``base`` over the defaults; an unknown key is refused."""
    params = {p.key: p for p in KINDS[kind]}
    unknown = sorted(set(given) - set(params))
    if unknown:
        raise AlertError(f"{unknown[0]} is not a setting of {kind} rules (they have {', '.join(params)})",
                         "err_alert_param", unknown[0])
    values = {p.key: p.default for p in KINDS[kind]} | (base or {})
    for key, raw in given.items():
        values[key] = _param(params[key], raw)
    if "clear_pct" in values and Decimal(values["clear_pct"]) > Decimal(values["raise_pct"]):
        raise AlertError(f"clear_pct ({values['clear_pct']}) must not be above raise_pct ({values['raise_pct']})",
                         "err_alert_hysteresis", "clear_pct")
    if "low_v" in values and Decimal(values["low_v"]) >= Decimal(values["high_v"]):
        raise AlertError("low_v must be below high_v", "err_alert_param", "low_v")
    return values


def check_recipients(db: Session, org: Organisation, users, roles) -> dict:
    """Staff users (by e-mail or id) of the organisation and staff roles."""
    ids = []
    for ref in _words(users):
        query = select(User).where(User.org_id == org.id, User.active)
        user = db.scalar(query.where(User.id == int(ref)) if ref.isdigit() else query.where(User.email == ref))
        if user is None or user.role not in STAFF:
            raise AlertError(f"users: {ref[:60]!r} is not a staff member of this organisation", "err_alert_user",
                             "users", user=ref[:60])
        ids.append(user.id)
    wanted_roles = _words(roles)
    for role in wanted_roles:
        if role not in STAFF:
            raise AlertError(f"roles: {role[:40]!r} is not a staff role", "err_alert_role", "roles", role=role[:40])
    return {"users": sorted(set(ids)), "roles": sorted(set(wanted_roles))}


def _channels(value) -> str:
    found = _words(value)
    if not found or any(c not in CHANNELS for c in found):
        raise AlertError(f"channels must be some of {', '.join(CHANNELS)}, got {','.join(found)[:40]!r}",
                         "err_alert_channels", "channels")
    return ",".join(c for c in CHANNELS if c in found)


def _escalation(value) -> int:
    text = str(value if value is not None else 0).strip() or "0"
    if not text.isdigit() or int(text) > LONGEST_ESCALATION:
        raise AlertError(f"escalate_minutes must be a whole number from 0 to {LONGEST_ESCALATION}, got {text[:20]!r}",
                         "err_alert_escalation", "escalate_minutes")
    return int(text)


def _site(db: Session, org: Organisation, code) -> int | None:
    code = str(code or "").strip()
    if not code:
        return None
    site_id = db.scalar(select(Site.id).where(Site.org_id == org.id, Site.code == code))
    if site_id is None:
        raise AlertError(f"site {code[:50]!r} does not exist", "err_alert_site", "site", site=code[:50])
    return site_id


def _name(value, kind: str) -> str:
    name = str(value or "").strip() or kind
    if len(name) > LONGEST_NAME:
        raise AlertError(f"name: at most {LONGEST_NAME} characters", "err_alert_name", "name")
    return name


def add_rule(db: Session, org: Organisation, given: dict, actor: str) -> AlertRule:
    """A new rule from ``given`` (kind, name, site, params, users, roles, channels, escalate_minutes); not
    committed. Nothing is added when a field is wrong."""
    kind = str(given.get("kind") or "").strip()
    if kind not in KINDS:
        raise AlertError(f"kind must be one of {', '.join(KINDS)}, got {kind[:40]!r}", "err_alert_kind", "kind",
                         kinds=", ".join(KINDS))
    rule = AlertRule(org_id=org.id, kind=kind, name=_name(given.get("name"), kind),
                     site_id=_site(db, org, given.get("site")), params=check_params(kind, given.get("params") or {}),
                     recipients=check_recipients(db, org, given.get("users"), given.get("roles")),
                     channels=_channels(given.get("channels") or "email"),
                     escalate_minutes=_escalation(given.get("escalate_minutes")), active=True, created_by=actor)
    if not rule.recipients["users"] and not rule.recipients["roles"]:
        raise AlertError("say who is told: users, roles or both", "err_alert_nobody", "users")
    db.add(rule)
    db.flush()
    audit(db, org.id, actor, "alert_rule.add", f"alert_rule:{rule.id}", None, rule_json(db, rule))
    return rule


def set_rule(db: Session, org: Organisation, rule: AlertRule, given: dict, actor: str) -> AlertRule:
    """Change the fields ``given`` names (the others stay); ``active`` turns a rule off or on again."""
    before = rule_json(db, rule)
    if "name" in given:
        rule.name = _name(given["name"], rule.kind)
    if "site" in given:
        rule.site_id = _site(db, org, given["site"])
    if given.get("params"):
        rule.params = check_params(rule.kind, given["params"], dict(rule.params or {}))
    if "users" in given or "roles" in given:
        current = rule.recipients or {}
        rule.recipients = check_recipients(db, org, given.get("users", current.get("users", [])),
                                           given.get("roles", current.get("roles", [])))
        if not rule.recipients["users"] and not rule.recipients["roles"]:
            raise AlertError("say who is told: users, roles or both", "err_alert_nobody", "users")
    if "channels" in given:
        rule.channels = _channels(given["channels"])
    if "escalate_minutes" in given:
        rule.escalate_minutes = _escalation(given["escalate_minutes"])
    if "active" in given:
        active = given["active"]
        if isinstance(active, str):
            if active.strip().lower() not in ("true", "false", "1", "0", "on", "off"):
                raise AlertError("active must be true or false", "err_alert_active", "active")
            active = active.strip().lower() in ("true", "1", "on")
        if not isinstance(active, bool):
            raise AlertError("active must be true or false", "err_alert_active", "active")
        rule.active = active
    db.flush()
    audit(db, org.id, actor, "alert_rule.set", f"alert_rule:{rule.id}", before, rule_json(db, rule))
    return rule


def find_rule(db: Session, org_id: int, rule_id: int) -> AlertRule:
    rule = db.get(AlertRule, rule_id)
    if rule is None or rule.org_id != org_id:
        raise AlertError(f"alert rule {rule_id} does not exist", "err_alert_rule_missing", "id", status=404,
                         id=rule_id)
    return rule


def list_rules(db: Session, org_id: int) -> list[AlertRule]:
    return list(db.scalars(select(AlertRule).where(AlertRule.org_id == org_id).order_by(AlertRule.id)))


def rule_json(db: Session, rule: AlertRule) -> dict:
    site = db.get(Site, rule.site_id) if rule.site_id else None
    recipients = rule.recipients or {}
    emails = list(db.scalars(select(User.email).where(User.id.in_(recipients.get("users") or [-1]))
                             .order_by(User.email)))
    return {"id": rule.id, "name": rule.name, "kind": rule.kind, "site": site.code if site else None,
            "params": dict(rule.params or {}), "users": emails, "roles": list(recipients.get("roles") or []),
            "channels": rule.channels.split(","), "escalate_minutes": rule.escalate_minutes, "active": rule.active}


def parse_params(text) -> dict:
    """«raise_pct=25, count=3» (a form, the CLI's --set) or a JSON object → {key: value}."""
    if isinstance(text, dict):
        return {str(k): v for k, v in text.items()}
    found = {}
    for part in str(text or "").replace(";", ",").replace(" ", ",").split(","):
        if not part.strip():
            continue
        key, sep, value = part.partition("=")
        if not sep or not key.strip():
            raise AlertError(f"params: write key=value, got {part.strip()[:40]!r}", "err_alert_params", "params")
        found[key.strip()] = value.strip()
    return found
