"""Cooperative cost sharing: the share price with the coefficient, cost recovery, break-even.

A cooperative (collective household consumer) does not sell electricity: it shares the
purchase cost among members at «частка витрат на електроенергію з урахуванням
коефіцієнта на втрати та обслуговування» = purchase tariff × approved coefficient.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

from shared.money import line_amount

COOPERATIVE_WORDING = (
    "частка витрат на електроенергію з урахуванням коефіцієнта на втрати та обслуговування"
)
SUPPLIER_WORDING = "ціна електроенергії"


def share_price(purchase_tariff: Decimal, coefficient: Decimal) -> Decimal:
    """Purchase tariff × coefficient, e.g. 4.20 × 1.15 = 4.83 UAH/kWh (kept exact)."""
    return (Decimal(purchase_tariff) * Decimal(coefficient)).normalize()


@dataclass(frozen=True)
class CostRecovery:
    """How much of the purchase cost the distributed amounts bring back."""

    purchase_kwh: Decimal
    purchase_uah: Decimal
    distributed_kwh: Decimal
    distributed_uah: Decimal
    cost_recovery_pct: Decimal  # one decimal, half up
    break_even_coefficient: Decimal  # four decimals, half up

    def as_json(self) -> dict[str, str]:
        return {
            "purchase_uah": f"{self.purchase_uah:.2f}",
            "distributed_kwh": f"{self.distributed_kwh:f}",
            "distributed_uah": f"{self.distributed_uah:.2f}",
            "cost_recovery_pct": f"{self.cost_recovery_pct:.1f}",
            "break_even_coefficient": f"{self.break_even_coefficient:.4f}",
        }


def cost_recovery(
    purchase_kwh: Decimal,
    purchase_tariff: Decimal,
    distributed_kwh: Decimal,
    distributed_uah: Decimal,
) -> CostRecovery:
    """Cost recovery % and the break-even coefficient (input kWh / distributed kWh).

    ``distributed_uah`` is the sum of the invoice lines (each rounded per line), so the
    report and the invoices can never disagree by a kopeck.
    """
    purchase_uah = line_amount(Decimal(purchase_kwh), Decimal(purchase_tariff))
    if purchase_uah == 0 or distributed_kwh == 0:
        pct = Decimal("0.0")
        break_even = Decimal("0.0000")
    else:
        pct = (Decimal(distributed_uah) * 100 / purchase_uah).quantize(Decimal("0.1"), ROUND_HALF_UP)
        break_even = (Decimal(purchase_kwh) / Decimal(distributed_kwh)).quantize(
            Decimal("0.0001"), ROUND_HALF_UP
        )
    return CostRecovery(
        purchase_kwh=Decimal(purchase_kwh),
        purchase_uah=purchase_uah,
        distributed_kwh=Decimal(distributed_kwh),
        distributed_uah=Decimal(distributed_uah),
        cost_recovery_pct=pct,
        break_even_coefficient=break_even,
    )
