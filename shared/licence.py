"""The operator's service licence: the price for N subscribers, the first-year and prepaid discounts,
and what loss reduction pays for it (the seed's price list).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

from shared.money import round_kopecks

MINIMUM = Decimal(250)
STEP_SUBSCRIBERS = 5
STEP_PRICE = Decimal(50)  # 10 UAH per subscriber, counted in steps of 5


def monthly_price(subscribers: int) -> Decimal:
    """max(250, 50 × ⌊N/5⌋) UAH a month: 0–29 → 250, 30–34 → 300, 100 → 1 000, 250 → 2 500."""
    if subscribers < 0:
        raise ValueError(f"subscribers must be ≥ 0, got {subscribers}")
    return max(MINIMUM, STEP_PRICE * (subscribers // STEP_SUBSCRIBERS))


def yearly_price(subscribers: int, year: int = 1, prepaid_months: int = 0) -> Decimal:
    """A year of licence: the first year −50 %; the second −20 % when 12 months are prepaid."""
    base = monthly_price(subscribers) * 12
    if year == 1:
        return round_kopecks(base * Decimal("0.5"))
    if year == 2 and prepaid_months >= 12:
        return round_kopecks(base * Decimal("0.8"))
    return round_kopecks(base)


@dataclass(frozen=True)
class LicenceRoi:
    yearly_licence_uah: Decimal
    saving_per_loss_point_uah: Decimal  # a year's purchase cost of 1 % of the input
    break_even_loss_reduction_pct: Decimal  # loss reduction (percentage points) that pays the licence

    def as_json(self) -> dict[str, str]:
        return {"yearly_licence_uah": f"{self.yearly_licence_uah:.2f}",
                "saving_per_loss_point_uah": f"{self.saving_per_loss_point_uah:.2f}",
                "break_even_loss_reduction_pct": f"{self.break_even_loss_reduction_pct:.2f}"}


def roi(subscribers: int, monthly_input_kwh: Decimal, purchase_tariff: Decimal, year: int = 1,
        prepaid_months: int = 0) -> LicenceRoi:
    """How many percentage points of losses must be cut for the licence to pay for itself."""
    licence = yearly_price(subscribers, year, prepaid_months)
    per_point = round_kopecks(Decimal(monthly_input_kwh) * 12 * Decimal(purchase_tariff) / 100)
    needed = (licence / per_point).quantize(Decimal("0.01"), ROUND_HALF_UP) if per_point else Decimal(0)
    return LicenceRoi(licence, per_point, needed)


@dataclass(frozen=True)
class LossReductionReturn:
    """What cutting losses by ``points`` percentage points of the input brings in a year, against the licence."""

    points: Decimal
    saving_uah: Decimal  # a year's purchase cost no longer lost
    net_uah: Decimal  # saving − the year's licence
    payback_months: Decimal  # the licence / the monthly saving, one decimal


def loss_reduction_return(result: LicenceRoi, points: Decimal) -> LossReductionReturn:
    """The return of a loss reduction of ``points`` pp, e.g. the seed's "1–2 % usually pays the licence"."""
    saving = round_kopecks(result.saving_per_loss_point_uah * Decimal(points))
    payback = ((result.yearly_licence_uah * 12 / saving).quantize(Decimal("0.1"), ROUND_HALF_UP) if saving
               else Decimal(0))
    return LossReductionReturn(Decimal(points), saving, saving - result.yearly_licence_uah, payback)
