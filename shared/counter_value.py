"""A meter's counter as a person types it or a file carries it: a finite, non-negative decimal that fits a
meter's register. ``NaN``, ``sNaN``, ``Infinity``, ``1E+30`` and ``abc`` are refused with the reason, before
anything compares or stores them (a NaN cannot even be compared)."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

# A counter register has at most 9 digits before the point (999 999 999 kWh, or Gcal); no meter reads finer
# than a thousandth of a kWh, a ten-thousandth of a Gcal.
MAX_COUNTER = Decimal("999999999.9999")
MAX_DECIMALS = 4


def counter_value(text: str | Decimal) -> Decimal:
    """The counter in ``text`` (a comma may stand for the point); a ValueError saying what is wrong."""
    try:
        value = text if isinstance(text, Decimal) else Decimal(str(text).strip().replace(",", "."))
    except InvalidOperation:
        raise ValueError(f"{str(text)[:40]!r} is not a number") from None
    if not value.is_finite():
        raise ValueError(f"{str(text)[:40]!r} is not a number")
    if value < 0:
        raise ValueError(f"a counter cannot be negative ({value})")
    if value > MAX_COUNTER:
        raise ValueError(f"{value:E} is more than a meter's register holds ({MAX_COUNTER})")
    if value != value.quantize(Decimal(1).scaleb(-MAX_DECIMALS)):
        raise ValueError(f"{value} has more than {MAX_DECIMALS} decimals")
    return value
