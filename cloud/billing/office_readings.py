"""The office's readings round (обхід): the site's meters the office reads, each with its last reading and
whether it has one at the moment asked (the month's end by default), and many readings entered at once —
every value checked as ``enter_reading`` checks one, every bad one named by its meter, nothing stored unless
all are good."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from math import ceil

from sqlalchemy import and_, exists, func, or_, select
from sqlalchemy.orm import Session

from cloud.billing.consumption import ReadingError
from cloud.billing.readings import enter_reading
from cloud.models import Account, Meter, Organisation, Reading, Site
from shared.counter_value import counter_value

PAGE = 100
READ_ROLES = ("subscriber", "heat_building")  # the meters a person reads; station meters are the gateway's


def register_of(org: Organisation) -> str:
    return "heat_gcal" if org.kind == "heat" else "import_kwh"


@dataclass(frozen=True)
class RoundRow:
    meter: Meter
    account: str
    holder: str
    last_value: str | None
    last_at: datetime | None
    value_at: str | None  # the reading at the round's moment, when there is one


@dataclass
class Round:
    rows: list[RoundRow]
    total: int
    unread: int
    page: int
    pages: int
    errors: dict[int, ReadingError] = field(default_factory=dict)


def _in_service(site: Site, at: datetime):
    return and_(Meter.site_id == site.id, Meter.role.in_(READ_ROLES),
                or_(Meter.installed_at.is_(None), Meter.installed_at <= at),
                or_(Meter.removed_at.is_(None), Meter.removed_at >= at))


def reading_round(db: Session, site: Site, at: datetime, register: str, unread_only: bool = True,
                  page: int = 1) -> Round:
    """The meters in service at ``at`` (subscriber and building meters), by account number, those whose counter
    at ``at`` is not known only unless ``unread_only`` is False; ``PAGE`` to a page. A counter is known with a
    reading at ``at`` or, as billing interpolates it (consumption.counter_at), readings on both sides of it: a
    gateway's meter whose midnight poll was missed needs no one to type it."""
    known = or_(exists().where(Reading.meter_id == Meter.id, Reading.ts == at),
                and_(exists().where(Reading.meter_id == Meter.id, Reading.ts < at),
                     exists().where(Reading.meter_id == Meter.id, Reading.ts > at)))
    where = [_in_service(site, at)]
    total = db.scalar(select(func.count()).select_from(Meter).where(*where)) or 0
    unread = db.scalar(select(func.count()).select_from(Meter).where(*where, ~known)) or 0
    if unread_only:
        where.append(~known)
    shown = unread if unread_only else total
    pages = max(1, ceil(shown / PAGE))
    page = min(max(page, 1), pages)
    found = db.execute(select(Meter, Account.number, Account.holder).outerjoin(Account, Account.id == Meter.account_id)
                       .where(*where).order_by(Account.number, Meter.code)
                       .offset((page - 1) * PAGE).limit(PAGE)).all()
    ids = [meter.id for meter, _, _ in found]
    last = _last_readings(db, ids, register)
    here = {meter_id: values.get(register) for meter_id, values in db.execute(
        select(Reading.meter_id, Reading.values).where(Reading.meter_id.in_(ids), Reading.ts == at))} if ids else {}
    rows = [RoundRow(meter, number or "", holder or "", *last.get(meter.id, (None, None)), here.get(meter.id))
            for meter, number, holder in found]
    return Round(rows, total, unread, page, pages)


def _last_readings(db: Session, ids: list[int], register: str) -> dict[int, tuple[str, datetime]]:
    if not ids:
        return {}
    newest = (select(Reading.meter_id, func.max(Reading.ts).label("ts")).where(Reading.meter_id.in_(ids))
              .group_by(Reading.meter_id).subquery())
    rows = db.execute(select(Reading.meter_id, Reading.ts, Reading.values).join(
        newest, and_(newest.c.meter_id == Reading.meter_id, newest.c.ts == Reading.ts)))
    return {meter_id: (values.get(register), ts) for meter_id, ts, values in rows if values.get(register)}


def enter_round(db: Session, site: Site, at: datetime, values: dict[str, str], actor: str,
                register: str) -> tuple[int, dict[str, ReadingError]]:
    """Readings typed for many meters (meter code → text; blanks skipped) at ``at``. Returns how many were
    entered and, per meter code, what was wrong; with any error the caller rolls back, so none counts."""
    errors: dict[str, ReadingError] = {}
    entered = 0
    for code, text in values.items():
        if not text.strip():
            continue
        try:
            value = counter_value(text)
        except ValueError as exc:
            errors[code] = ReadingError(f"meter {code}: {exc}", "err_reading_value", meter=code, value=text[:40])
            continue
        try:
            enter_reading(db, site, code, at, value, actor, register)
            entered += 1
        except ReadingError as exc:
            errors[code] = exc
    return entered, errors
