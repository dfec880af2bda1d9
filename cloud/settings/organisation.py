"""The organisation's own record: its details as printed on every invoice (name, address, ЄДРПОУ, IBAN), how
solar export is billed, and the note under each invoice's total. One function changes any of them, checks
every value first (nothing is written when one is wrong) and audits the change before → after."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal

from sqlalchemy.orm import Session
from stdnum import iban as stdnum_iban
from stdnum.exceptions import InvalidChecksum, ValidationError
from stdnum.ua import edrpou as stdnum_edrpou
from stdnum.ua import rntrc as stdnum_rntrc

from cloud.audit import audit
from cloud.models import Organisation
from cloud.settings.fields import SettingError, choice, decimal, text

DETAILS = ("name", "address", "edrpou", "iban")
NET_BILLING = ("net_billing", "export_price")
NOTE = ("invoice_note",)
KEYS = DETAILS + NET_BILLING + NOTE
NET_BILLING_CHOICES = ("netting", "money")
NOTE_LIMIT = 500


def organisation_values(org: Organisation) -> dict[str, str]:
    """Every setting of the organisation as text (the forms', the CLI's and the API's values)."""
    return {"name": org.name, "address": org.address or "", "edrpou": org.edrpou or "", "iban": org.iban or "",
            "net_billing": org.net_billing or "netting", "export_price": f"{Decimal(org.export_price or 0):f}",
            "invoice_note": org.invoice_note or ""}


def check_edrpou(value: str) -> str:
    """ЄДРПОУ: 8 digits with its check digit (a sole trader's РНОКПП: 10)."""
    code = value.replace(" ", "")
    if not code:
        return ""
    if not code.isdigit() or len(code) not in (8, 10):
        raise SettingError("edrpou", f"8 digits (or РНОКПП, 10), got {value!r}", "err_set_edrpou_format",
                           value=value)
    try:
        (stdnum_edrpou if len(code) == 8 else stdnum_rntrc).validate(code)
    except ValidationError:
        raise SettingError("edrpou", "the checksum does not match", "err_set_checksum") from None
    return code


def check_iban(value: str) -> str:
    """A Ukrainian IBAN: UA, 29 characters, its check digits right (the NBU payment QR takes no other)."""
    code = value.replace(" ", "").upper()
    if not code:
        return ""
    if not (code.startswith("UA") and len(code) == 29 and code[2:].isdigit()):
        raise SettingError("iban", f"a Ukrainian IBAN is UA and 27 digits (29 characters), got {value!r}",
                           "err_set_iban_ua", value=value)
    try:
        stdnum_iban.validate(code)
    except InvalidChecksum:
        raise SettingError("iban", "the checksum does not match", "err_set_checksum") from None
    except ValidationError:
        raise SettingError("iban", f"a Ukrainian IBAN is UA and 27 digits (29 characters), got {value!r}",
                           "err_set_iban_ua", value=value) from None
    return code


def _parse(key: str, value: str):
    if key == "name":
        return text(key, value, 200, required=True)
    if key == "address":
        return text(key, value, 300)
    if key == "edrpou":
        return check_edrpou(value)
    if key == "iban":
        return check_iban(value)
    if key == "net_billing":
        return choice(key, value, NET_BILLING_CHOICES)
    if key == "export_price":
        return decimal(key, value, 5)
    return text(key, value.replace("\r\n", "\n"), NOTE_LIMIT)


def update_organisation(db: Session, org: Organisation, values: Mapping[str, str],
                        actor: str) -> list[SettingError]:
    """Change the given settings (others stay); returns every error, and then nothing is changed. A value sent
    as it is stored is not checked again: an old record whose code predates the check can still be renamed."""
    before = organisation_values(org)
    errors: list[SettingError] = []
    parsed = {}
    for key, value in values.items():
        if key not in KEYS:
            errors.append(SettingError(key, "not a setting of the organisation", "err_set_unknown"))
            continue
        if str(value) == before[key]:
            continue
        try:
            parsed[key] = _parse(key, str(value))
        except SettingError as exc:
            errors.append(exc)
    if errors:
        return errors
    for key, value in parsed.items():
        setattr(org, key, value)
    db.flush()
    after = organisation_values(org)
    changed = [key for key in KEYS if before[key] != after[key]]
    if changed:
        audit(db, org.id, actor, "organisation.update", f"org:{org.id}", {k: before[k] for k in changed},
              {k: after[k] for k in changed})
    return []


def stored_problems(org: Organisation) -> dict[str, SettingError]:
    """The stored details that would not pass the check today (made before it was there): shown on the page."""
    found = {}
    for key, check in (("edrpou", check_edrpou), ("iban", check_iban)):
        try:
            check(getattr(org, key) or "")
        except SettingError as exc:
            found[key] = exc
    return found
