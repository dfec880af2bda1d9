"""An account's billing details — segment, heated area, co-owners' coefficient, benefit (пільга) and subsidy
(субсидія): each value checked, and every change audited (before → after). Invoices already issued keep
what they said; the next run bills by the new details."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from sqlalchemy.orm import Session

from cloud.audit import audit
from cloud.billing.errors import BillingError
from cloud.models import Account

FIELDS = ("category", "heated_area_m2", "common_coefficient", "benefit_pct", "benefit_norm_kwh", "benefit_norm_m2",
          "subsidy_uah")


def number(account: Account, name: str, text: str, places: int) -> Decimal:
    try:
        value = Decimal(text.replace(",", ".").strip())
    except InvalidOperation as exc:
        raise BillingError(f"account {account.number}: {name} is not a number: {text!r}") from exc
    if not value.is_finite() or value != value.quantize(Decimal(1).scaleb(-places)):
        raise BillingError(f"account {account.number}: {name} takes at most {places} decimals, got {text!r}")
    return value


def set_billing_details(db: Session, account: Account, actor: str, **given: str | None) -> dict:
    """Apply the given details (text as people type them, a decimal comma allowed); an error names the
    account, the detail and why, and changes nothing. Returns the details after the change."""
    before = {name: _plain(getattr(account, name)) for name in FIELDS}
    values = {}
    for name, text in given.items():
        if text is None:
            continue
        if name == "category":
            values[name] = text.strip()
            continue
        value = number(account, name, text, {"benefit_norm_kwh": 3, "benefit_pct": 2}.get(name, 2))
        if name == "heated_area_m2" and value <= 0:
            raise BillingError(f"account {account.number}: heated area must be positive, got {value} m²")
        if name == "common_coefficient" and value != 1 and not (
                Decimal("0.2") <= value <= Decimal("0.9") or Decimal("1.1") <= value <= 2):
            raise BillingError(f"account {account.number}: the coefficient {value} must be 1, 0.2–0.9 or 1.1–2")
        if name == "benefit_pct" and not 0 <= value <= 100:
            raise BillingError(f"account {account.number}: a benefit is 0–100 %, got {value} %")
        if name in ("benefit_norm_kwh", "benefit_norm_m2", "subsidy_uah") and value < 0:
            raise BillingError(f"account {account.number}: {name} cannot be negative, got {value}")
        values[name] = value
    for name, value in values.items():
        setattr(account, name, value)
    after = {name: _plain(getattr(account, name)) for name in FIELDS}
    changed = {name for name in FIELDS if before[name] != after[name]}
    if changed:
        audit(db, account.org_id, actor, "account.billing_details", f"account:{account.number}",
              {name: before[name] for name in sorted(changed)}, {name: after[name] for name in sorted(changed)})
    return after


def _plain(value) -> str | None:
    if value is None:
        return None
    if isinstance(value, Decimal):
        return f"{value.normalize():f}"
    return str(value)
