"""What every settings form shares: the error that names its field (in the page's language) and the parsers
that read a typed value — money and prices as Decimal, days as YYYY-MM-DD."""

from __future__ import annotations

from datetime import date
from decimal import Decimal, InvalidOperation

from cloud.errors import ExplainedError, Phrase

# Each field's label, a catalogue key too (the form shows it, an error names it).
LABELS = {
    "name": "Name", "address": "Address", "edrpou": "EDRPOU", "iban": "IBAN",
    "net_billing": "Net billing", "export_price": "Export price", "invoice_note": "Invoice note",
    "kind": "Kind", "price": "Price", "coefficient": "Coefficient", "valid_from": "Valid from",
    "valid_to": "Valid to", "segment": "Segment", "zones": "Zones", "monthly_fee": "Monthly fee",
    "fee_name": "Fee name", "starts": "Starts", "ends": "Ends", "rule_name": "Rule name", "min_debt": "Debt over",
    "min_days": "Days past due", "channels": "Channels", "text": "Text", "active": "Active",
}


class SettingError(ExplainedError):
    """A value that cannot be saved: ``field`` is the form's field; the message names it."""

    def __init__(self, field: str, message: str, code: str, **params):
        super().__init__(f"{LABELS.get(field, field)}: {message}", code, field=label(field), **params)
        self.field = field


def label(field: str) -> Phrase:
    return Phrase(LABELS.get(field, field), f"set_f_{field}")


def text(field: str, value: str, limit: int, required: bool = False) -> str:
    value = value.strip()
    if required and not value:
        raise SettingError(field, "is required", "err_set_required")
    if len(value) > limit:
        raise SettingError(field, f"at most {limit} characters", "err_set_too_long", limit=limit)
    return value


def decimal(field: str, value: str, places: int, minimum: Decimal | None = Decimal(0),
            positive: bool = False, digits: int = 12) -> Decimal:
    """A number as people type it (a comma or a point, spaces between thousands), to at most ``places``."""
    cleaned = value.strip().replace(" ", "").replace("\u202f", "").replace(",", ".")
    try:
        number = Decimal(cleaned)
    except InvalidOperation:
        raise SettingError(field, f"{value!r} is not a number", "err_set_number", value=value) from None
    if not number.is_finite():
        raise SettingError(field, f"{value!r} is not a number", "err_set_number", value=value)
    if positive and number <= 0:
        raise SettingError(field, "must be more than zero", "err_set_positive")
    if minimum is not None and number < minimum:
        raise SettingError(field, "must not be negative", "err_set_negative")
    if number.as_tuple().exponent < -places:
        raise SettingError(field, f"at most {places} decimal places", "err_set_places", places=places)
    if abs(number) >= Decimal(10) ** (digits - places):
        raise SettingError(field, f"{value!r} is too large", "err_set_large", value=value)
    return number


def day(field: str, value: str, required: bool = True) -> date | None:
    value = value.strip()
    if not value:
        if required:
            raise SettingError(field, "is required", "err_set_required")
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise SettingError(field, f"{value!r} is not a date (YYYY-MM-DD)", "err_set_date", value=value) from None


def choice(field: str, value: str, choices: tuple[str, ...]) -> str:
    value = value.strip()
    if value not in choices:
        raise SettingError(field, f"one of {', '.join(choices)}, got {value!r}", "err_set_choice",
                           choices=", ".join(choices), value=value)
    return value


def by_field(errors: list[SettingError]) -> dict[str, SettingError]:
    found: dict[str, SettingError] = {}
    for error in errors:
        found.setdefault(error.field, error)
    return found
