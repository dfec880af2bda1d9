"""Exact money: hryvnias as Decimal, kopecks as int, one documented rounding rule.

Rounding rule (used everywhere in Balans): every money amount is rounded to whole
kopecks *per line*, half up (ROUND_HALF_UP, 0.005 → 0.01); totals are sums of rounded
lines, never rounded again. Prices may carry more digits (e.g. 4.2 × 1.15 = 4.83 exactly,
but 4.17 × 1.15 = 4.7955 stays 4.7955 UAH/kWh until it is multiplied by a quantity).
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

KOPECK = Decimal("0.01")
ZERO = Decimal("0.00")


class MoneyError(ValueError):
    """An amount that is not a valid money value."""


def uah(value: str | int | Decimal) -> Decimal:
    """Parse an amount in hryvnias exactly; floats are refused (they are not exact)."""
    if isinstance(value, float):
        raise MoneyError(f"money must not be a float: {value!r}; pass a string or Decimal")
    try:
        amount = Decimal(str(value).strip().replace(" ", "").replace(",", "."))
    except InvalidOperation as exc:
        raise MoneyError(f"not an amount: {value!r}") from exc
    if not amount.is_finite():
        raise MoneyError(f"not a finite amount: {value!r}")
    return amount


def round_kopecks(amount: Decimal) -> Decimal:
    """Round to whole kopecks, half up — the one rounding rule for money lines."""
    return amount.quantize(KOPECK, rounding=ROUND_HALF_UP)


def to_kopecks(amount: Decimal) -> int:
    """Hryvnias → integer kopecks (rounded half up)."""
    return int(round_kopecks(amount) * 100)


def from_kopecks(kopecks: int) -> Decimal:
    """Integer kopecks → hryvnias with two decimals."""
    return (Decimal(kopecks) / 100).quantize(KOPECK)


def line_amount(quantity: Decimal, price: Decimal) -> Decimal:
    """quantity × price, rounded per line (half up to the kopeck)."""
    return round_kopecks(Decimal(quantity) * Decimal(price))


def format_uah(amount: Decimal) -> str:
    """Two decimals with a point, as in JSON outputs and bank files: ``369108.60``."""
    return f"{round_kopecks(amount):.2f}"


def format_uah_human(amount: Decimal) -> str:
    """Ukrainian display form: thin-spaced thousands and a comma, ``369 108,60``."""
    text = f"{round_kopecks(amount):,.2f}"
    return text.replace(",", "\u202f").replace(".", ",")
