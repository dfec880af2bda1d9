"""A resident's invitation code: eight characters printed on every issued invoice, with which the resident makes
their own sign-in at ``/join`` (code, e-mail, password). One resident user per account that way; the office can
add more, and regenerating the code makes the old one stop working."""

from __future__ import annotations

import secrets
from collections.abc import Iterable

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from cloud.audit import audit
from cloud.models import Account, User
from cloud.permissions import Role

# No 0/O, 1/I/L: a code read off paper and typed on a phone is typed right.
ALPHABET = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"
LENGTH = 8


def new_code(db: Session) -> str:
    """A random code no account has (32⁸ ≈ 10¹²: a clash is rare, and checked)."""
    while True:
        code = "".join(secrets.choice(ALPHABET) for _ in range(LENGTH))
        if db.scalar(select(Account.id).where(Account.invite_code == code)) is None:
            return code


def normalised(text: str) -> str:
    """The code as typed («abcd-2345 ») in the form it is stored: upper case, without spaces and dashes."""
    return "".join(ch for ch in text.upper() if ch not in " -\t")[:16]


def ensure_invite_code(db: Session, account: Account) -> str:
    """The account's code, made now when it has none (caller commits)."""
    if not account.invite_code:
        account.invite_code = new_code(db)
        db.flush()
    return account.invite_code


def ensure_invite_codes(db: Session, account_ids: Iterable[int]) -> int:
    """Codes for those of ``account_ids`` that lack one (an issued run's accounts); returns how many were made."""
    ids = list(set(account_ids))
    made = 0
    for start in range(0, len(ids), 500):
        for account in db.scalars(select(Account).where(Account.id.in_(ids[start:start + 500]),
                                                        Account.invite_code.is_(None))):
            ensure_invite_code(db, account)
            made += 1
    return made


def regenerate_code(db: Session, account: Account, actor: str) -> str:
    """A new code for ``account``; the old one stops working at once."""
    before = account.invite_code
    account.invite_code = new_code(db)
    db.flush()
    audit(db, account.org_id, actor, "invite_code.regenerate", f"account:{account.number}",
          {"had_code": before is not None}, {"regenerated": True})
    return account.invite_code


def account_by_code(db: Session, code: str) -> Account | None:
    code = normalised(code)
    if len(code) != LENGTH:
        return None
    return db.scalar(select(Account).where(Account.invite_code == code))


def residents_of(db: Session, account: Account) -> int:
    return db.scalar(select(func.count()).select_from(User)
                     .where(User.account_id == account.id, User.role == Role.RESIDENT.value)) or 0
