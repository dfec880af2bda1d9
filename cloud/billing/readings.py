"""The office's meter readings: one entered by hand, a CSV of them, and a meter replaced — each checked before
it counts (a counter only grows), each audited, a file all or nothing.
"""

from __future__ import annotations

import csv
import io
from datetime import datetime
from decimal import Decimal, InvalidOperation

from sqlalchemy import select
from sqlalchemy.orm import Session

from cloud.audit import audit
from cloud.billing.consumption import ReadingError
from cloud.models import Meter, Reading, Site
from shared.calendar import from_kyiv_wall, kyiv_time
from shared.counter_value import counter_value

REGISTERS = ("import_kwh", "heat_gcal")


def _meter(db: Session, site: Site, code: str) -> Meter:
    meter = db.scalar(select(Meter).where(Meter.site_id == site.id, Meter.code == code))
    if meter is None:
        raise ReadingError(f"meter {code} is not on site {site.code}", "err_reading_no_meter", meter=code,
                           site=site.code)
    return meter


def enter_reading(db: Session, site: Site, meter_code: str, at: datetime, value: Decimal, actor: str,
                  register: str = "import_kwh", source: str = "office") -> Reading:
    """Store the counter of ``meter_code`` at ``at``; it must lie between the readings around it."""
    if register not in REGISTERS:
        raise ReadingError(f"register must be one of {', '.join(REGISTERS)}, got {register!r}", "err_reading_register",
                           registers=", ".join(REGISTERS), register=register)
    meter = _meter(db, site, meter_code)
    try:
        value = counter_value(value)
    except ValueError as exc:
        raise ReadingError(f"meter {meter_code}: {exc}", "err_reading_value", meter=meter_code,
                           value=str(value)[:40]) from exc
    if meter.removed_at is not None and at > meter.removed_at:
        raise ReadingError(f"meter {meter_code} was removed on {kyiv_time(meter.removed_at):%Y-%m-%d %H:%M}; "
                           f"a reading of {kyiv_time(at):%Y-%m-%d %H:%M} belongs to the meter that replaced it",
                           "err_reading_removed", meter=meter_code, removed=f"{kyiv_time(meter.removed_at):%Y-%m-%d %H:%M}",
                           at=f"{kyiv_time(at):%Y-%m-%d %H:%M}")
    around = {}
    for name, where, order in (("before", Reading.ts < at, Reading.ts.desc()), ("after", Reading.ts > at, Reading.ts)):
        row = db.execute(select(Reading.ts, Reading.values).where(Reading.meter_id == meter.id, where)
                         .order_by(order).limit(1)).first()
        if row is not None and row.values.get(register) is not None:
            around[name] = (row.ts, Decimal(row.values[register]))
    if "before" in around and value < around["before"][1]:
        ts, previous = around["before"]
        raise ReadingError(f"meter {meter_code}: {value} at {kyiv_time(at):%Y-%m-%d %H:%M} is lower than the reading before it "
                           f"({previous} on {kyiv_time(ts):%Y-%m-%d %H:%M}); a replaced meter is recorded with replace-meter",
                           "err_reading_lower", meter=meter_code, value=str(value), at=f"{kyiv_time(at):%Y-%m-%d %H:%M}",
                           previous=str(previous), previous_at=f"{kyiv_time(ts):%Y-%m-%d %H:%M}")
    if "after" in around and value > around["after"][1]:
        ts, following = around["after"]
        raise ReadingError(f"meter {meter_code}: {value} at {kyiv_time(at):%Y-%m-%d %H:%M} is higher than the reading after it "
                           f"({following} on {kyiv_time(ts):%Y-%m-%d %H:%M})", "err_reading_higher", meter=meter_code,
                           value=str(value), at=f"{kyiv_time(at):%Y-%m-%d %H:%M}", following=str(following),
                           following_at=f"{kyiv_time(ts):%Y-%m-%d %H:%M}")
    if db.scalar(select(Reading.id).where(Reading.meter_id == meter.id, Reading.ts == at)) is not None:
        raise ReadingError(f"meter {meter_code} already has a reading at {kyiv_time(at):%Y-%m-%d %H:%M}",
                           "err_reading_exists", meter=meter_code, at=f"{kyiv_time(at):%Y-%m-%d %H:%M}")
    reading = Reading(meter_id=meter.id, ts=at, values={register: f"{value:.4f}" if register == "heat_gcal"
                                                        else f"{value:.3f}"}, source=source)
    db.add(reading)
    db.flush()
    audit(db, site.org_id, actor, "reading.enter", f"meter:{meter_code}", None,
          {register: str(value), "at": at.isoformat(sep=" ")})
    return reading


def import_readings(db: Session, site: Site, text: str, name: str, actor: str) -> int:
    """A CSV of readings (``meter,at,value[,register]``, a header row; ``at`` in Kyiv time unless it carries an
    offset): every row is checked; an error names the file, the line and why."""
    reader = csv.DictReader(io.StringIO(text))
    rows = list(reader)
    missing = {"meter", "at", "value"} - set(reader.fieldnames or ())
    if missing:
        raise ReadingError(f"{name}: the header needs the columns meter, at, value (missing {', '.join(sorted(missing))})",
                           "err_readings_header", name=name, missing=", ".join(sorted(missing)))
    # The caller's transaction rolls back on the error, so a file counts whole or not at all.
    for line, row in enumerate(rows, start=2):
        try:
            at = from_kyiv_wall(datetime.fromisoformat((row["at"] or "").strip()))
            value = counter_value(row["value"] or "")
            enter_reading(db, site, (row["meter"] or "").strip(), at, value, actor,
                          (row.get("register") or "import_kwh").strip())
        except (ValueError, InvalidOperation, ReadingError) as exc:
            raise ReadingError(f"{name}, line {line}: {exc}; nothing from this file was stored", "err_readings_line",
                               name=name, line=line, error=exc) from exc
    return len(rows)


def replace_meter(db: Session, site: Site, old_code: str, new_code: str, at: datetime, old_final: Decimal,
                  new_initial: Decimal, actor: str, register: str = "import_kwh") -> Meter:
    """Заміна лічильника: the old meter's last reading and removal, the new meter on the same account and line
    with its first reading — so the billing run adds both meters' parts of the month."""
    old = _meter(db, site, old_code)
    if old.removed_at is not None:
        raise ReadingError(f"meter {old_code} was already removed on {kyiv_time(old.removed_at):%Y-%m-%d}")
    if db.scalar(select(Meter.id).where(Meter.site_id == site.id, Meter.code == new_code)) is not None:
        raise ReadingError(f"meter {new_code} is already on site {site.code}")
    enter_reading(db, site, old_code, at, old_final, actor, register)
    old.removed_at = at
    new = Meter(org_id=old.org_id, site_id=site.id, code=new_code, profile=old.profile, role=old.role,
                line_id=old.line_id, account_id=old.account_id, installed_at=at)
    db.add(new)
    db.flush()
    enter_reading(db, site, new_code, at, new_initial, actor, register)
    audit(db, site.org_id, actor, "meter.replace", f"meter:{old_code}", {"meter": old_code},
          {"meter": new_code, "at": at.isoformat(sep=" "), "old_final": str(old_final),
           "new_initial": str(new_initial)})
    return new

