"""Rating: turning a period's consumption into charge and credit lines (pure: values in, lines out).

Tariffs with validity dates (a change inside the period is split by days), the cooperative's share
price or a supplier's price, time-of-use zones, net billing for solar households, benefits (пільги)
within a norm and subsidies (субсидії). Every line is quantity × price rounded to the kopeck, half up.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal
from functools import cached_property
from itertools import pairwise
from typing import NamedTuple

from shared.cost_sharing import COOPERATIVE_WORDING, share_price
from shared.money import line_amount

KWH = Decimal(1)


class RatingError(ValueError):
    """Input that cannot be rated; the message names the record and why."""


@dataclass(frozen=True)
class TariffPeriod:
    """One tariff valid from ``valid_from`` to ``valid_to`` inclusive (None: open-ended)."""

    ref: str  # how the office names it, for error messages
    valid_from: date
    valid_to: date | None
    price: Decimal  # UAH/kWh before the coefficient (purchase tariff for a cooperative, sale price otherwise)
    coefficient: Decimal = Decimal(1)
    zones: dict[str, Decimal] = field(default_factory=dict)  # zone → coefficient on the price, e.g. night 0.5
    monthly_fee: Decimal = Decimal(0)  # a fixed monthly fee per account (абонентська плата), a tariff component
    fee_name: str = ""

    @cached_property
    def unit_price(self) -> Decimal:
        """The price per unit: price × coefficient (computed once; a run rates every account by it)."""
        return share_price(self.price, self.coefficient)


class Line(NamedTuple):
    """One invoice line: quantity × price = amount (an immutable tuple: a run makes one per account at least)."""

    kind: str  # energy | benefit | subsidy | export_credit | fee
    description: str
    quantity: Decimal
    unit: str
    price: Decimal
    amount: Decimal  # positive: a charge; negative: a credit

    def as_json(self) -> dict:
        return {"kind": self.kind, "description": self.description, "quantity": f"{self.quantity.normalize():f}",
                "unit": self.unit, "price": f"{self.price:f}", "amount": f"{self.amount:.2f}"}


def check_validity(tariffs: Sequence[TariffPeriod], start: date, end: date) -> list[TariffPeriod]:
    """The tariffs covering [start, end] in order; a gap or an overlap is an error naming the tariffs."""
    covering = sorted((t for t in tariffs if t.valid_from <= end and (t.valid_to is None or t.valid_to >= start)),
                      key=lambda t: t.valid_from)
    if not covering:
        raise RatingError(f"no tariff is valid between {start} and {end}")
    if covering[0].valid_from > start:
        raise RatingError(f"tariff {covering[0].ref} starts on {covering[0].valid_from}: {start} … is not priced")
    for before, after in pairwise(covering):
        if before.valid_to is None or before.valid_to >= after.valid_from:
            raise RatingError(f"tariffs {before.ref} and {after.ref} overlap from {after.valid_from}")
        if before.valid_to + timedelta(days=1) < after.valid_from:
            raise RatingError(f"gap between tariffs {before.ref} (to {before.valid_to}) and {after.ref} "
                              f"(from {after.valid_from})")
    last = covering[-1]
    if last.valid_to is not None and last.valid_to < end:
        raise RatingError(f"tariff {last.ref} ends on {last.valid_to}: … {end} is not priced")
    return covering


def split_by_days(kwh: Decimal, tariffs: list[TariffPeriod], start: date, end: date,
                  step: Decimal = KWH) -> list[tuple[TariffPeriod, Decimal]]:
    """Whole kWh (or ``step``s: 0.0001 Gcal) per tariff in proportion to its days in the period (largest
    remainder: the sum is exact)."""
    if len(tariffs) == 1:
        return [(tariffs[0], kwh.quantize(step, ROUND_HALF_UP))]
    days_total = (end - start).days + 1
    shares = []
    for tariff in tariffs:
        first = max(start, tariff.valid_from)
        last = min(end, tariff.valid_to or end)
        shares.append((tariff, Decimal((last - first).days + 1) / days_total))
    whole = kwh.quantize(step, ROUND_HALF_UP)
    raw = [whole * share for _, share in shares]
    parts = [(r / step).to_integral_value(rounding="ROUND_FLOOR") * step for r in raw]
    leftover = int((whole - sum(parts)) / step)
    for index in sorted(range(len(raw)), key=lambda i: raw[i] - parts[i], reverse=True)[:leftover]:
        parts[index] += step
    return [(tariff, part) for (tariff, _), part in zip(shares, parts, strict=True)]


def energy_lines(kwh_by_zone: dict[str, Decimal], tariffs: Sequence[TariffPeriod], start: date, end: date,
                 cooperative: bool, wording: str | None = None, unit: str = "кВт·год",
                 step: Decimal = KWH, checked: bool = False) -> list[Line]:
    """Charge lines for the period's consumption (by zone when the tariff has zones; "all" otherwise).
    ``checked``: the tariffs are already the covering ones from ``check_validity`` (a run checks once)."""
    for zone, value in kwh_by_zone.items():
        if value < 0:
            raise RatingError(f"consumption in zone {zone} is negative ({value})")
    covering = tariffs if checked else check_validity(tariffs, start, end)
    wording = wording or (COOPERATIVE_WORDING if cooperative else "електрична енергія")
    lines = []
    for zone, kwh in kwh_by_zone.items():
        for tariff, quantity in split_by_days(kwh, covering, start, end, step):
            if quantity == 0:
                continue
            if zone == "all":
                price, label = tariff.unit_price, wording
            else:
                price = (tariff.unit_price * tariff.zones.get(zone, Decimal(1))).normalize()
                label = f"{wording}, зона «{ZONE_NAMES.get(zone, zone)}»"
            if len(covering) > 1:
                label += f" (тариф {tariff.ref})"
            lines.append(Line("energy", label, quantity, unit, price, line_amount(quantity, price)))
    return lines


def fee_lines(tariffs: Sequence[TariffPeriod], start: date, end: date) -> list[Line]:
    """The tariffs' fixed monthly fees: a whole month as 1 міс. × fee; a tariff valid for part of the period
    by its days (days × fee / days of the period, the day price kept to 0.00001 UAH)."""
    if not any(tariff.monthly_fee > 0 for tariff in tariffs):
        return []
    days_total = (end - start).days + 1
    lines = []
    for tariff in check_validity(tariffs, start, end):
        if tariff.monthly_fee <= 0:
            continue
        first, last = max(start, tariff.valid_from), min(end, tariff.valid_to or end)
        days = (last - first).days + 1
        name = tariff.fee_name or "абонентська плата"
        if days == days_total:
            lines.append(Line("fee", name, Decimal(1), "міс.", tariff.monthly_fee, line_amount(1, tariff.monthly_fee)))
        else:
            price = (tariff.monthly_fee / days_total).quantize(Decimal("0.00001"), ROUND_HALF_UP)
            lines.append(Line("fee", f"{name} ({first:%d.%m}–{last:%d.%m})", Decimal(days), "дн.", price,
                              line_amount(days, price)))
    return lines


ZONE_NAMES = {"day": "день", "night": "ніч", "peak": "пік", "half_peak": "напівпік"}


def zone_of(hour: int, zones: Sequence[str]) -> str:
    """Time-of-use zone of an hour (Ukrainian household zones): two-zone night 23–7; three-zone
    night 23–7, peak 8–11 and 20–22, half-peak otherwise."""
    night = hour >= 23 or hour < 7
    if set(zones) == {"day", "night"}:
        return "night" if night else "day"
    if set(zones) == {"peak", "half_peak", "night"}:
        if night:
            return "night"
        return "peak" if 8 <= hour < 11 or 20 <= hour < 22 else "half_peak"
    return "all"


def net_billing(import_kwh: Decimal, export_kwh: Decimal, carried_kwh: Decimal, policy: str,
                export_price: Decimal) -> tuple[Decimal, Decimal, Decimal]:
    """Solar households (СЕС). Returns (kWh to bill, kWh carried to next period, money credit for export).

    ``netting``: export offsets import in kWh; a surplus carries forward (within the calendar year — the
    caller resets it in January). ``money``: import is billed in full and export is credited at the price.
    """
    if min(import_kwh, export_kwh, carried_kwh) < 0:
        raise RatingError("import, export and carried kWh must be ≥ 0")
    if policy == "netting":
        net = import_kwh - export_kwh - carried_kwh
        return (max(net, Decimal(0)), max(-net, Decimal(0)), Decimal("0.00"))
    if policy == "money":
        return (import_kwh, Decimal(0), line_amount(export_kwh, export_price))
    raise RatingError(f"net billing policy must be netting or money, got {policy!r}")


def benefit_line(consumption_kwh: Decimal, norm_kwh: Decimal, percent: Decimal, unit_price: Decimal) -> Line | None:
    """Пільга: ``percent`` of the cost of consumption within the norm, as a credit line."""
    if percent <= 0 or norm_kwh <= 0:
        return None
    if percent > 100:
        raise RatingError(f"benefit of {percent} % is over 100 %")
    quantity = min(consumption_kwh, norm_kwh)
    price = (unit_price * percent / 100).quantize(Decimal("0.00001"))
    return Line("benefit", f"пільга {percent:f} % у межах норми {norm_kwh:f} кВт·год", quantity, "кВт·год", price,
                -line_amount(quantity, price))


def heat_benefit_line(gcal: Decimal, area_m2: Decimal, norm_m2: Decimal, percent: Decimal,
                      unit_price: Decimal) -> Line | None:
    """Пільга on heat: ``percent`` of the cost of the heat that falls on the social norm of area — the unit's
    Gcal × min(norm, area) / area, kept to 0.0001 Gcal as the invoice's heat lines are."""
    if percent <= 0 or norm_m2 <= 0 or gcal <= 0:
        return None
    if percent > 100:
        raise RatingError(f"benefit of {percent} % is over 100 %")
    if area_m2 <= 0:
        raise RatingError(f"heated area must be positive for a benefit within a norm of area, got {area_m2} m²")
    quantity = (gcal * min(norm_m2, area_m2) / area_m2).quantize(Decimal("0.0001"), ROUND_HALF_UP)
    price = (unit_price * percent / 100).quantize(Decimal("0.00001"))
    return Line("benefit", f"пільга {percent.normalize():f} % у межах соціальної норми {norm_m2.normalize():f} м²",
                quantity.normalize(), "Гкал", price, -line_amount(quantity, price))


def subsidy_line(amount: Decimal) -> Line | None:
    """Субсидія: the month's amount as paid by the state (through Ощадбанк), as a credit line."""
    if amount <= 0:
        return None
    return Line("subsidy", "субсидія на оплату житлово-комунальних послуг", Decimal(1), "міс.", amount, -amount)
