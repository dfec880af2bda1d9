"""The meter register (реєстр лічильників): every meter of an organisation — the station's input, the line
feeders, the subscribers' meters and a heat network's building meter — listed, created, changed and replaced
by a person on the page, in the CLI or the API. Values are texts as people type them, each refusal a
``FieldError`` naming its field; every change is audited before → after. A replacement goes through billing's
``replace_meter`` so the month is billed as the old meter's part plus the new one's."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import Session

from cloud.audit import audit
from cloud.billing.consumption import ReadingError
from cloud.billing.readings import REGISTERS, replace_meter
from cloud.i18n import N_
from cloud.models import Account, AuditLog, Line, Meter, Organisation, Reading, Site
from cloud.register.fields import BY_KEY, NUMBER, FieldError, clean, decimal
from shared.calendar import from_kyiv_wall, kyiv_time

PAGE = 50
READINGS_SHOWN = 20
# What a meter measures at a site (cloud/sites/balance.py, cloud/billing/heat_run.py).
ROLES = ("station_input", "feeder", "subscriber", "heat_building")
STATES = ("in_service", "removed")
METER_FIELDS = ("site", "code", "profile", "role", "line", "account", "installed_at", "removed_at")
REPLACE_FIELDS = ("at", "old_reading", "new_code", "new_profile", "new_reading")
TIME_FORMAT = "%Y-%m-%d %H:%M"
# Words built from data in the templates (register/meters.html, meter.html).
WORDS = (N_("role_station_input"), N_("role_feeder"), N_("role_subscriber"), N_("role_heat_building"),
         N_("state_in_service"), N_("state_removed"), N_("history_installed"), N_("history_replaced"),
         N_("history_replaced_by"), N_("history_removed"), N_("history_audit"),
         N_("meter_field_site"), N_("meter_field_code"), N_("meter_field_profile"), N_("meter_field_role"),
         N_("meter_field_line"), N_("meter_field_account"), N_("meter_field_installed_at"),
         N_("meter_field_removed_at"))
_counter = decimal(4, Decimal(0), Decimal(10) ** 10, None)


class MeterNotFound(LookupError):
    pass


@dataclass(frozen=True)
class MeterRow:
    meter: Meter
    site: str
    line: str
    account: str
    last_value: str  # "" when the meter has no reading
    last_at: datetime | None


@dataclass(frozen=True)
class MeterListing:
    rows: list[MeterRow]
    total: int
    page: int
    pages: int


@dataclass(frozen=True)
class HistoryEvent:
    at: datetime | None
    kind: str  # installed | replaced | replaced_by | removed | audit
    meter_id: int | None = None  # the other meter of a replacement
    detail: str = ""  # the other meter's code, or the audit entry's action
    entry: AuditLog | None = None


def parse_time(key: str, text: str) -> datetime | None:
    """A time as the office types it, Kyiv wall clock unless it carries an offset (``…Z``, ``+02:00``)."""
    if not text:
        return None
    try:
        typed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise FieldError(f"{key}: {text!r} is not a time (YYYY-MM-DD HH:MM)", "err_field_time", key,
                         value=text[:40]) from None
    if not 2000 <= typed.year <= 2100:
        raise FieldError(f"{key}: {text!r} is not a time (YYYY-MM-DD HH:MM)", "err_field_time", key,
                         value=text[:40])
    return from_kyiv_wall(typed)


def time_text(ts: datetime | None) -> str:
    return kyiv_time(ts).strftime(TIME_FORMAT) if ts is not None else ""


def _account_number(key: str, text: str) -> str:
    if text and not NUMBER.fullmatch(text):
        raise FieldError(f"{key}: {text!r} is not an account number", "err_field_format", key, value=text[:40])
    return text


def _role(key: str, text: str) -> str:
    if text not in ROLES:
        raise FieldError(f"{key}: {text!r} is not one of {', '.join(ROLES)}", "err_meter_role", key,
                         value=text[:40], roles=", ".join(ROLES))
    return text


PARSERS = {"site": BY_KEY["site"].parse, "code": BY_KEY["meter"].parse, "profile": BY_KEY["profile"].parse,
           "role": _role, "line": BY_KEY["line"].parse, "account": _account_number,
           "installed_at": parse_time, "removed_at": parse_time}


def meter_texts(db: Session, meter: Meter | None) -> dict[str, str]:
    """The form's values: every field as text (times as Kyiv wall clock)."""
    if meter is None:
        return {**{k: "" for k in METER_FIELDS}, "role": "subscriber"}
    site = db.get(Site, meter.site_id)
    line = db.get(Line, meter.line_id) if meter.line_id else None
    account = db.get(Account, meter.account_id) if meter.account_id else None
    return {"site": site.code if site else "", "code": meter.code, "profile": meter.profile or "",
            "role": meter.role, "line": line.number if line else "", "account": account.number if account else "",
            "installed_at": time_text(meter.installed_at), "removed_at": time_text(meter.removed_at)}


def find_meter(db: Session, org: Organisation, site_code: str, code: str) -> Meter:
    meter = db.scalar(select(Meter).join(Site, Site.id == Meter.site_id)
                      .where(Meter.org_id == org.id, Site.code == site_code, Meter.code == code))
    if meter is None:
        raise MeterNotFound(f"meter {code} is not on site {site_code} of {org.name}")
    return meter


def own_meter(db: Session, org_id: int, meter_id: int) -> Meter | None:
    """The meter when it is this organisation's (another's is as good as missing)."""
    meter = db.get(Meter, meter_id)
    return meter if meter is not None and meter.org_id == org_id else None


def save_meter(db: Session, org: Organisation, meter: Meter | None, texts: Mapping[str, str],
               actor: str) -> tuple[Meter | None, list[FieldError]]:
    """Create (``meter`` None) or change a meter from the given texts (fields not given stay as they are);
    returns the meter and no errors, or every field's error with nothing written. Not committed here."""
    errors: list[FieldError] = []
    values: dict[str, object] = {}
    for key, text in texts.items():
        if key not in PARSERS:
            errors.append(FieldError(f"{key}: not a field of a meter", "err_meter_field_unknown", key, field=key))
            continue
        try:
            values[key] = PARSERS[key](key, clean(text))
        except FieldError as exc:
            errors.append(exc)
    current = meter_texts(db, meter)
    wanted = {**current, **{k: v for k, v in texts.items() if k in PARSERS}}
    wanted.update({k: v for k, v in values.items() if isinstance(v, str)})
    failed = {e.column for e in errors}

    site = db.scalar(select(Site).where(Site.org_id == org.id, Site.code == wanted["site"])) \
        if wanted["site"] else None
    if "site" not in failed and site is None:
        errors.append(FieldError("site: is required", "err_field_required", "site") if not wanted["site"] else
                      FieldError(f"site {wanted['site']!r} is not this organisation's", "err_reg_site", "site",
                                 site=wanted["site"]))
    if "code" not in failed and not wanted["code"]:
        errors.append(FieldError("code: is required", "err_field_required", "code"))
    elif "code" not in failed and site is not None and db.scalar(
            select(Meter.id).where(Meter.site_id == site.id, Meter.code == wanted["code"],
                                   Meter.id != (meter.id if meter is not None else -1))) is not None:
        errors.append(FieldError(f"meter {wanted['code']} is already on site {site.code}", "err_meter_taken", "code",
                                 meter=wanted["code"], site=site.code))
    line = None
    if wanted["line"] and "line" not in failed and site is not None:
        line = db.scalar(select(Line).where(Line.site_id == site.id, Line.number == wanted["line"]))
        if line is None:
            errors.append(FieldError(f"line {wanted['line']} is not at site {site.code}", "err_reg_line", "line",
                                     line=wanted["line"], site=site.code))
    account = None
    if wanted["account"] and "account" not in failed:
        account = db.scalar(select(Account).where(Account.org_id == org.id, Account.number == wanted["account"]))
        if account is None:
            errors.append(FieldError(f"account {wanted['account']} is not in {org.name}'s register",
                                     "err_account_unknown", "account", account=wanted["account"]))
    role = wanted["role"]
    if "role" not in failed and "account" not in failed and role == "subscriber" and not wanted["account"]:
        errors.append(FieldError("account: a subscriber's meter needs its account", "err_meter_needs_account",
                                 "account"))
    installed = values.get("installed_at", meter.installed_at if meter else None)
    removed = values.get("removed_at", meter.removed_at if meter else None)
    if installed and removed and removed < installed:
        errors.append(FieldError("removed_at: the meter is removed before it was installed", "err_meter_dates",
                                 "removed_at"))
    if role == "heat_building" and "role" not in failed:
        if org.kind != "heat":
            errors.append(FieldError("role: a building heat meter belongs to a heat network's site",
                                     "err_meter_heat_org", "role"))
        elif site is not None and removed is None and db.scalar(
                select(Meter.code).where(Meter.site_id == site.id, Meter.role == "heat_building",
                                         Meter.removed_at.is_(None),
                                         Meter.id != (meter.id if meter is not None else -1))) is not None:
            errors.append(FieldError(f"role: site {site.code} already has a building heat meter in service",
                                     "err_meter_heat_twice", "role", site=site.code))
    if errors:
        return meter, errors
    if meter is None:
        meter = Meter(org_id=org.id, site_id=site.id, code=wanted["code"], role=role)
        db.add(meter)
    meter.site_id, meter.code, meter.role = site.id, wanted["code"], role
    meter.profile = wanted["profile"]
    meter.line_id = line.id if line is not None else None
    meter.account_id = account.id if account is not None else None
    meter.installed_at, meter.removed_at = installed, removed
    db.flush()
    after = meter_texts(db, meter)
    before = current if current["code"] else {}
    changed = sorted(k for k in after if before.get(k, "") != after[k])
    if changed:
        audit(db, org.id, actor, "meter.update" if before else "meter.create", f"meter:{meter.code}",
              {k: before.get(k, "") for k in changed} if before else None, {k: after[k] for k in changed})
    return meter, []


def replace(db: Session, org: Organisation, old: Meter, texts: Mapping[str, str],
            actor: str) -> tuple[Meter | None, list[FieldError]]:
    """Заміна лічильника from the form's texts: the old meter's final reading and removal, the new one's code,
    profile and first reading, through billing's ``replace_meter``. On an error the caller rolls back (a
    reading may already have been written)."""
    errors: list[FieldError] = []
    unknown = sorted(set(texts) - set(REPLACE_FIELDS))
    errors += [FieldError(f"{key}: not a field of a replacement", "err_meter_field_unknown", key, field=key)
               for key in unknown]
    if old.role != "subscriber":
        errors.append(FieldError(f"meter {old.code} is the site's {old.role} meter, not a subscriber's",
                                 "err_meter_not_subscriber", "meter", meter=old.code))
    if old.removed_at is not None:
        errors.append(FieldError(f"meter {old.code} was already removed", "err_meter_removed", "meter",
                                 meter=old.code, date=time_text(old.removed_at)))
    parsed: dict[str, object] = {}
    parsers = {"at": parse_time, "old_reading": _counter, "new_code": PARSERS["code"],
               "new_profile": PARSERS["profile"], "new_reading": _counter}
    for key, parse in parsers.items():
        try:
            parsed[key] = parse(key, clean(texts.get(key, "")))
        except FieldError as exc:
            errors.append(exc)
    for key in ("at", "old_reading", "new_code"):
        if key in parsed and parsed[key] in (None, ""):
            errors.append(FieldError(f"{key}: is required", "err_field_required", key))
    site = db.get(Site, old.site_id)
    if parsed.get("new_code") and db.scalar(select(Meter.id).where(Meter.site_id == site.id,
                                                                  Meter.code == parsed["new_code"])) is not None:
        errors.append(FieldError(f"meter {parsed['new_code']} is already on site {site.code}", "err_meter_taken",
                                 "new_code", meter=parsed["new_code"], site=site.code))
    if old.installed_at is not None and parsed.get("at") and parsed["at"] <= old.installed_at:
        errors.append(FieldError("at: the replacement is before the meter was installed", "err_meter_dates", "at"))
    if errors:
        return None, errors
    try:
        new = replace_meter(db, site, old.code, parsed["new_code"], parsed["at"], parsed["old_reading"],
                            parsed["new_reading"] or Decimal(0), actor, register_of(db, old))
    except ReadingError as exc:
        message = str(exc)
        key = "at" if "already has a reading" in message or "removed on" in message else \
            "new_reading" if message.startswith(f"meter {parsed['new_code']}") else "old_reading"
        return None, [FieldError(message, "err_meter_reading", key, reason=message)]
    if parsed["new_profile"] and parsed["new_profile"] != new.profile:
        audit(db, org.id, actor, "meter.update", f"meter:{new.code}", {"profile": new.profile},
              {"profile": parsed["new_profile"]})
        new.profile = parsed["new_profile"]
        db.flush()
    return new, []


def register_of(db: Session, meter: Meter) -> str:
    """The counter a meter's readings carry (a heat meter's Gcal, else kWh), from its latest reading."""
    values = db.scalar(select(Reading.values).where(Reading.meter_id == meter.id).order_by(Reading.ts.desc())
                       .limit(1)) or {}
    return next((name for name in REGISTERS if name in values), REGISTERS[0])


def reading_value(values: dict) -> str:
    return next((str(values[name]) for name in REGISTERS if values.get(name) is not None), "")


def list_meters(db: Session, org: Organisation, query: str = "", site: str = "", line: str = "", role: str = "",
                state: str = "", page: int = 1) -> MeterListing:
    """Meters by site and code, filtered by a search (the meter's code or its account's number), a site, a
    line, a role and in service / removed; ``PAGE`` to a page, each with its latest reading."""
    where = [Meter.org_id == org.id]
    if query:
        like = f"%{query.strip().lower()}%"
        where.append(or_(func.lower(Meter.code).like(like), func.lower(Account.number).like(like)))
    if site:
        where.append(Site.code == site)
    if line:
        where.append(Line.number == line)
    if role:
        where.append(Meter.role == role)
    if state == "in_service":
        where.append(Meter.removed_at.is_(None))
    elif state == "removed":
        where.append(Meter.removed_at.is_not(None))
    joined = (select(Meter, Site.code, Line.number, Account.number).join(Site, Site.id == Meter.site_id)
              .outerjoin(Line, Line.id == Meter.line_id).outerjoin(Account, Account.id == Meter.account_id)
              .where(*where))
    total = db.scalar(select(func.count()).select_from(joined.subquery())) or 0
    pages = max(1, -(-total // PAGE))
    page = min(max(1, page), pages)
    found = db.execute(joined.order_by(Site.code, Meter.code).limit(PAGE).offset((page - 1) * PAGE)).all()
    latest = last_readings(db, [meter.id for meter, *_ in found])
    rows = [MeterRow(meter, site_code, line_number or "", number or "", *latest.get(meter.id, ("", None)))
            for meter, site_code, line_number, number in found]
    return MeterListing(rows, total, page, pages)


def last_readings(db: Session, meter_ids: list[int]) -> dict[int, tuple[str, datetime]]:
    if not meter_ids:
        return {}
    newest = (select(Reading.meter_id, func.max(Reading.ts).label("ts")).where(Reading.meter_id.in_(meter_ids))
              .group_by(Reading.meter_id).subquery())
    rows = db.execute(select(Reading.meter_id, Reading.ts, Reading.values).join(
        newest, and_(newest.c.meter_id == Reading.meter_id, newest.c.ts == Reading.ts))).all()
    return {meter_id: (reading_value(values or {}), ts) for meter_id, ts, values in rows}


def meter_readings(db: Session, meter: Meter, limit: int = READINGS_SHOWN) -> list[tuple[datetime, str, str]]:
    """The latest readings, newest first: (when, value, source)."""
    rows = db.execute(select(Reading.ts, Reading.values, Reading.source).where(Reading.meter_id == meter.id)
                      .order_by(Reading.ts.desc()).limit(limit)).all()
    return [(ts, reading_value(values or {}), source) for ts, values, source in rows]


def predecessor(db: Session, meter: Meter) -> Meter | None:
    """The meter this one replaced: removed on its account and site the instant this one was installed."""
    if meter.installed_at is None or meter.account_id is None:
        return None
    return db.scalar(select(Meter).where(Meter.site_id == meter.site_id, Meter.account_id == meter.account_id,
                                         Meter.removed_at == meter.installed_at, Meter.id != meter.id).limit(1))


def successor(db: Session, meter: Meter) -> Meter | None:
    if meter.removed_at is None or meter.account_id is None:
        return None
    return db.scalar(select(Meter).where(Meter.site_id == meter.site_id, Meter.account_id == meter.account_id,
                                         Meter.installed_at == meter.removed_at, Meter.id != meter.id).limit(1))


def meter_history(db: Session, meter: Meter) -> list[HistoryEvent]:
    """Installation, the replacement either way, removal, then the audit entries of its changes (newest
    first)."""
    events = []
    before, after = predecessor(db, meter), successor(db, meter)
    if meter.installed_at is not None:
        events.append(HistoryEvent(meter.installed_at, "installed"))
    if before is not None:
        events.append(HistoryEvent(meter.installed_at, "replaced", before.id, before.code))
    if after is not None:
        events.append(HistoryEvent(meter.removed_at, "replaced_by", after.id, after.code))
    if meter.removed_at is not None:
        events.append(HistoryEvent(meter.removed_at, "removed"))
    entries = db.scalars(select(AuditLog).where(AuditLog.org_id == meter.org_id,
                                                AuditLog.entity == f"meter:{meter.code}")
                         .order_by(AuditLog.at.desc(), AuditLog.id.desc()).limit(50))
    events += [HistoryEvent(entry.at, "audit", detail=entry.action, entry=entry) for entry in entries]
    return events


def account_meter_history(db: Session, account: Account) -> dict[int, tuple[Meter | None, Meter | None]]:
    """For each meter of the account: the meter it replaced and the one that replaced it."""
    meters = db.scalars(select(Meter).where(Meter.account_id == account.id))
    return {meter.id: (predecessor(db, meter), successor(db, meter)) for meter in meters}
