"""District heating: a building's heat meter distributed over its units (Мінрегіон methodology, наказ №315,
new edition №358): common use (МЗК and in-building systems) by heated area with the co-owners' coefficient,
units with their own heat meter by that meter, the rest of the heating by area.

Exact: every unit's Gcal is rounded to 0.0001 by the largest-remainder method, so the units add up to the
building meter to the last digit.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_FLOOR, Decimal

STEP = Decimal("0.0001")


class HeatError(ValueError):
    """Input that cannot be distributed; the message names the unit or the building and why."""


@dataclass(frozen=True)
class Unit:
    ref: str  # flat / premises number
    area_m2: Decimal  # heated area
    meter_gcal: Decimal | None = None  # the unit's own heat meter for the period, if it has one
    meter_away_days_avg: Decimal | None = None  # meter away for verification: previous period's daily average
    common_coefficient: Decimal = Decimal(1)  # co-owners' decision for this premises: 1, 0.2–0.9 or 1.1–2


@dataclass(frozen=True)
class Share:
    ref: str
    heating_gcal: Decimal
    common_gcal: Decimal

    @property
    def total_gcal(self) -> Decimal:
        return self.heating_gcal + self.common_gcal


def distribute(building_gcal: Decimal, units: list[Unit], common_share: Decimal, days: int) -> list[Share]:
    """Split the building meter's ``building_gcal`` over the units.

    ``common_share``: the part of the building's heat that is common use (0–1, from the building's
    passport or the methodology's calculation). A unit's ``common_coefficient`` (the co-owners' decision:
    0.2–0.9 lower, 1.1–2 higher) weighs its area in the common share; the others carry the difference, so
    the building still adds up.
    """
    if building_gcal < 0:
        raise HeatError(f"building meter shows {building_gcal} Gcal: must be ≥ 0")
    if not Decimal(0) <= common_share <= Decimal(1):
        raise HeatError(f"common share {common_share} must be between 0 and 1")
    for unit in units:
        k = unit.common_coefficient
        if k != 1 and not (Decimal("0.2") <= k <= Decimal("0.9") or Decimal("1.1") <= k <= Decimal(2)):
            raise HeatError(f"unit {unit.ref}: co-owners' coefficient {k}: allowed 0.2–0.9 or 1.1–2")
        if unit.area_m2 <= 0:
            raise HeatError(f"unit {unit.ref}: heated area must be positive, got {unit.area_m2} m²")
        if unit.meter_gcal is not None and unit.meter_gcal < 0:
            raise HeatError(f"unit {unit.ref}: its meter shows {unit.meter_gcal} Gcal")
    total_area = sum((u.area_m2 for u in units), Decimal(0))
    common = building_gcal * common_share
    own = {u.ref: (u.meter_gcal if u.meter_gcal is not None else u.meter_away_days_avg * days)
           for u in units if u.meter_gcal is not None or u.meter_away_days_avg is not None}
    heating_left = building_gcal - common - sum(own.values(), Decimal(0))
    if heating_left < 0:
        raise HeatError(f"units' own meters ({sum(own.values())} Gcal) and common use ({common:.4f}) exceed the "
                        f"building meter ({building_gcal} Gcal): check the readings")
    by_area = [u for u in units if u.ref not in own]
    area_without = sum((u.area_m2 for u in by_area), Decimal(0))
    if heating_left > 0 and not by_area:
        raise HeatError(f"{heating_left:.4f} Gcal of heating left with no unit to carry it: check the meters")
    # The coefficient weighs each unit's area in the common share; weights are normalised so Σ = common.
    weights = {u.ref: u.area_m2 * u.common_coefficient for u in units}
    weight_total = sum(weights.values(), Decimal(0)) or total_area
    raw_heating = {u.ref: own.get(u.ref, heating_left * u.area_m2 / area_without if by_area and u.ref not in own
                                  else Decimal(0)) for u in units}
    raw_common = {u.ref: common * weights[u.ref] / weight_total for u in units}
    heating = _largest_remainder(raw_heating, sum(raw_heating.values(), Decimal(0)))
    commons = _largest_remainder(raw_common, building_gcal - sum(heating.values(), Decimal(0)))
    return [Share(u.ref, heating[u.ref], commons[u.ref]) for u in units]


def _largest_remainder(raw: dict[str, Decimal], total: Decimal) -> dict[str, Decimal]:
    """Round each value down to STEP, then hand the leftover steps to the largest remainders."""
    target = total.quantize(STEP)
    floors = {key: value.quantize(STEP, ROUND_FLOOR) for key, value in raw.items()}
    leftover = int((target - sum(floors.values(), Decimal(0))) / STEP)
    for key in sorted(raw, key=lambda k: raw[k] - floors[k], reverse=True)[:max(leftover, 0)]:
        floors[key] += STEP
    return floors
