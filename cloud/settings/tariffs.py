"""The organisation's tariffs and their history: every row newest first, which one is in force on a Kyiv day,
and a new dated tariff added through ``set_tariff`` (which closes the one it follows). A tariff may not start
inside a period already issued: issued invoices never change."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.orm import Session

from cloud.accounts.organisations import ZONE_SETS, SetupError, billed_through, set_tariff
from cloud.models import Organisation, Tariff
from cloud.settings.fields import SettingError, choice, day, decimal, text

TARIFF_KINDS = ("cooperative", "supplier", "heat")
FORM_KEYS = ("kind", "price", "coefficient", "valid_from", "valid_to", "segment", "zones", "monthly_fee",
             "fee_name")


@dataclass(frozen=True)
class TariffRow:
    tariff: Tariff
    in_force: bool  # the one billed today for its kind and segment


def tariff_history(db: Session, org_id: int, today: date) -> list[TariffRow]:
    """Every tariff of the organisation, newest first, each marked when it is in force ``today``."""
    rows = list(db.scalars(select(Tariff).where(Tariff.org_id == org_id)
                           .order_by(Tariff.valid_from.desc(), Tariff.id.desc())))
    return [TariffRow(t, t.valid_from <= today and (t.valid_to is None or t.valid_to >= today)) for t in rows]


def tariff_json(row: TariffRow) -> dict:
    t = row.tariff
    return {"id": t.id, "kind": t.kind, "purchase_price": f"{t.purchase_price:f}", "coefficient": f"{t.coefficient:f}",
            "valid_from": t.valid_from.isoformat(), "valid_to": t.valid_to.isoformat() if t.valid_to else None,
            "segment": t.segment or "", "zones": t.zones or None, "monthly_fee": f"{Decimal(t.monthly_fee or 0):.2f}",
            "fee_name": t.fee_name or "", "in_force": row.in_force}


def default_kind(org: Organisation) -> str:
    return org.kind if org.kind in TARIFF_KINDS else "cooperative"


def earliest_start(db: Session, org_id: int) -> date | None:
    billed = billed_through(db, org_id)
    return billed + timedelta(days=1) if billed is not None else None


def parse_zones(value: str) -> dict[str, Decimal] | None:
    """``day=1,night=0.5`` (or night/half_peak/peak) → zone → coefficient; "" for none."""
    if not value.strip():
        return None
    zones = {}
    for part in value.split(","):
        name, sep, number = part.partition("=")
        if not sep:
            raise SettingError("zones", f"write zone=coefficient, got {value!r}", "err_set_zones", value=value)
        zones[name.strip()] = decimal("zones", number, 4, positive=True, digits=8)
    if set(zones) not in ZONE_SETS:
        raise SettingError("zones", f"write zone=coefficient, got {value!r}", "err_set_zones", value=value)
    return zones


def add_tariff(db: Session, org: Organisation, values: Mapping[str, str], actor: str) -> tuple[Tariff | None,
                                                                                                list[SettingError]]:
    """A new dated tariff from the form's texts; returns it, or None and every error (nothing written)."""
    errors: list[SettingError] = []
    parsed: dict[str, object] = {}
    parsers = {
        "kind": lambda v: choice("kind", v or default_kind(org), TARIFF_KINDS),
        "price": lambda v: decimal("price", v, 5, positive=True),
        "coefficient": lambda v: decimal("coefficient", v or "1", 4, positive=True, digits=8),
        "valid_from": lambda v: day("valid_from", v),
        "valid_to": lambda v: day("valid_to", v, required=False),
        "segment": lambda v: text("segment", v, 30),
        "zones": parse_zones,
        "monthly_fee": lambda v: decimal("monthly_fee", v or "0", 2),
        "fee_name": lambda v: text("fee_name", v, 120),
    }
    for key in values:
        if key not in parsers:
            errors.append(SettingError(key, "not a field of a tariff", "err_set_unknown"))
    for key, parse in parsers.items():
        try:
            parsed[key] = parse(str(values.get(key, "") or ""))
        except SettingError as exc:
            errors.append(exc)
    starts, ends = parsed.get("valid_from"), parsed.get("valid_to")
    if isinstance(starts, date):
        first = earliest_start(db, org.id)
        if first is not None and starts < first:
            errors.append(SettingError("valid_from", f"invoices are issued up to {first - timedelta(days=1)}: a new "
                                       f"tariff can start on {first} at the earliest", "err_set_billed",
                                       billed=(first - timedelta(days=1)).strftime("%d.%m.%Y"),
                                       first=first.strftime("%d.%m.%Y")))
        if isinstance(ends, date) and ends < starts:
            errors.append(SettingError("valid_to", "is before the start", "err_set_order"))
        later = db.scalar(select(Tariff.valid_from).where(
            Tariff.org_id == org.id, Tariff.kind == parsed.get("kind"), Tariff.segment == parsed.get("segment", ""),
            Tariff.valid_from >= starts).order_by(Tariff.valid_from.desc()).limit(1))
        if later is not None:
            errors.append(SettingError("valid_from", f"a tariff of this kind already starts on {later}",
                                       "err_set_tariff_later", date=later.strftime("%d.%m.%Y")))
    if errors:
        return None, errors
    try:
        tariff = set_tariff(db, org, parsed["kind"], parsed["price"], parsed["coefficient"], starts, ends, actor=actor,
                            segment=parsed["segment"], zones=parsed["zones"], monthly_fee=parsed["monthly_fee"],
                            fee_name=parsed["fee_name"])
    except SetupError as exc:  # what set_tariff checks and the form did not
        return None, [SettingError("valid_from", str(exc), "err_set_tariff", detail=str(exc))]
    return tariff, []
