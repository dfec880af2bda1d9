"""One account of the register: found, listed, created and changed by a person on the form, in the CLI or the
API. The values are read by ``fields.FIELDS`` as the import reads them; every change is an audit entry with
the values before → after. Issued invoices keep what they said; the next run bills by the new details."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from cloud.audit import audit
from cloud.errors import ExplainedError
from cloud.models import Account, Line, Meter, Organisation, Site
from cloud.register.fields import ACCOUNT_KEYS, BY_KEY, FieldError, as_text, clean

PAGE = 50


class AccountNotFound(ExplainedError):
    pass


@dataclass(frozen=True)
class Listing:
    accounts: list[tuple[Account, str]]  # the account and its site's code
    total: int
    page: int
    pages: int


def find_account(db: Session, org: Organisation, number: str) -> Account:
    account = db.scalar(select(Account).where(Account.org_id == org.id, Account.number == number))
    if account is None:
        raise AccountNotFound(f"account {number} is not in {org.name}'s register", "err_account_unknown",
                              account=number)
    return account


def list_accounts(db: Session, org: Organisation, query: str = "", site: str = "", category: str = "",
                  page: int = 1) -> Listing:
    """Accounts by number, filtered by a search (number, holder, address, phone, e-mail, meter), a site and a
    category; ``PAGE`` to a page."""
    where = [Account.org_id == org.id]
    if query:
        like = f"%{query.strip().lower()}%"
        meter_accounts = select(Meter.account_id).where(Meter.org_id == org.id, func.lower(Meter.code).like(like))
        where.append(or_(func.lower(Account.number).like(like), func.lower(Account.holder).like(like),
                         func.lower(Account.address).like(like), Account.phone.like(like),
                         func.lower(Account.email).like(like), Account.id.in_(meter_accounts)))
    if site:
        where.append(Account.site_id == select(Site.id).where(Site.org_id == org.id, Site.code == site)
                     .scalar_subquery())
    if category:
        where.append(Account.category == category)
    total = db.scalar(select(func.count()).select_from(Account).where(*where)) or 0
    pages = max(1, -(-total // PAGE))
    page = min(max(1, page), pages)
    rows = db.execute(select(Account, Site.code).outerjoin(Site, Site.id == Account.site_id).where(*where)
                      .order_by(Account.number).limit(PAGE).offset((page - 1) * PAGE)).all()
    return Listing([(account, code or "") for account, code in rows], total, page, pages)


def account_texts(db: Session, account: Account | None) -> dict[str, str]:
    """The form's values: every field as the register writes it."""
    if account is None:
        return {"number": "", "site": "", **{k: "" for k in ACCOUNT_KEYS}, "category": "household",
                "common_coefficient": "1", "reminders_opt_out": "ні"}
    site = db.get(Site, account.site_id) if account.site_id else None
    return {"number": account.number, "site": site.code if site else "",
            **{k: as_text(getattr(account, k)) for k in ACCOUNT_KEYS}}


def save_account(db: Session, org: Organisation, account: Account | None, texts: Mapping[str, str],
                 actor: str) -> tuple[Account | None, list[FieldError]]:
    """Create (``account`` None) or change an account from the given texts (fields not given stay as they are);
    returns the account and no errors, or None/the unchanged account and every field's error (nothing
    written). Not committed here."""
    errors: list[FieldError] = []
    values: dict[str, object] = {}
    for key, text in texts.items():
        if key not in BY_KEY or BY_KEY[key].meter:
            errors.append(FieldError(f"{key}: not a field of an account", "err_field_unknown", key, field=key))
            continue
        try:
            values[key] = BY_KEY[key].parse(key, clean(text))
        except FieldError as exc:
            errors.append(exc)
    site_id = account.site_id if account is not None else None
    if values.get("site"):
        site_id = db.scalar(select(Site.id).where(Site.org_id == org.id, Site.code == values["site"]))
        if site_id is None:
            errors.append(FieldError(f"site {values['site']!r} is not this organisation's", "err_reg_site", "site",
                                     site=values["site"]))
    elif "site" in values:
        site_id = None
    number = values.get("number")
    if account is None and not number and not any(e.column == "number" for e in errors):
        errors.append(FieldError("number: is required", "err_field_required", "number"))
    if number and (account is None or number != account.number) and db.scalar(
            select(Account.id).where(Account.org_id == org.id, Account.number == number)):
        errors.append(FieldError(f"account {number} is already in the register", "err_account_taken", "number",
                                 account=number))
    if errors:
        return account, errors
    before = account_texts(db, account) if account is not None else {}
    if account is None:
        account = Account(org_id=org.id, number=number, site_id=site_id)
        db.add(account)
    for key, value in values.items():
        if key == "site":
            account.site_id = site_id
        elif key != "number" or value:
            setattr(account, key, value)
    db.flush()
    after = account_texts(db, account)
    changed = sorted(k for k in after if before.get(k, "") != after[k])
    if changed:
        audit(db, org.id, actor, "account.update" if before else "account.create", f"account:{account.number}",
              {k: before.get(k, "") for k in changed}, {k: after[k] for k in changed})
    return account, []


def account_meters(db: Session, account: Account) -> list[tuple[Meter, str]]:
    """The account's meters, current first, with the line each is on."""
    rows = db.execute(select(Meter, Line.number).outerjoin(Line, Line.id == Meter.line_id)
                      .where(Meter.account_id == account.id)
                      .order_by(Meter.removed_at.is_not(None), Meter.installed_at.desc(), Meter.code)).all()
    return [(meter, line or "") for meter, line in rows]
