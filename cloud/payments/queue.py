"""The unmatched queue an accountant works through: payments no account was found for, payer IBANs that paid for
more than one account (no longer used for matching), and bank reversals waiting to be linked to their payment.
Every query is scoped to one organisation.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from cloud.models import Account, PayerIban, Payment
from cloud.payments.importer import PaymentEntryError
from cloud.payments.matching import AccountIndex
from cloud.payments.reversals import not_reversed


def unmatched_payments(db: Session, org_id: int, limit: int = 500) -> list[Payment]:
    """Payments waiting for an account, oldest first (a payment the bank took back is not waiting)."""
    return list(db.scalars(select(Payment).where(Payment.org_id == org_id, Payment.account_id.is_(None),
                                                 not_reversed()).order_by(Payment.booked, Payment.id).limit(limit)))


def unmatched_payment(db: Session, org_id: int, payment_id: int) -> Payment:
    """One payment of the organisation, locked for the assignment (PostgreSQL: FOR UPDATE)."""
    payment = db.scalar(select(Payment).where(Payment.org_id == org_id, Payment.id == payment_id).with_for_update())
    if payment is None:
        raise PaymentEntryError(f"payment {payment_id} does not exist in this organisation", "err_no_payment",
                                payment=payment_id)
    return payment


@dataclass(frozen=True)
class ConflictingIban:
    """A payer IBAN that paid for several accounts: it matches nothing automatically any more."""

    iban: str
    accounts: tuple[str, ...]


def conflicting_ibans(db: Session, org_id: int) -> dict[str, ConflictingIban]:
    """Conflicting IBANs of the organisation with the accounts their payments went to."""
    flagged = list(db.execute(select(PayerIban.iban, Account.number).join(Account, Account.id == PayerIban.account_id)
                              .where(PayerIban.org_id == org_id, PayerIban.conflict.is_(True))))
    if not flagged:
        return {}
    found: dict[str, set[str]] = {iban: {number} for iban, number in flagged}
    for iban, number in db.execute(
            select(Payment.payer_iban, Account.number).join(Account, Account.id == Payment.account_id)
            .where(Payment.org_id == org_id, Payment.payer_iban.in_(list(found))).distinct()):
        found[iban].add(number)
    return {iban: ConflictingIban(iban, tuple(sorted(numbers))) for iban, numbers in sorted(found.items())}


def find_account(db: Session, org_id: int, number: str) -> Account:
    """The organisation's account by the number as an accountant types it («1001» finds «01001»)."""
    text = " ".join(number.split())
    if not text:
        raise PaymentEntryError("give the account number (особовий рахунок)", "err_no_account_number")
    exact = db.scalar(select(Account).where(Account.org_id == org_id, Account.number == text))
    if exact is not None:
        return exact
    accounts = {a.number: a for a in db.scalars(select(Account).where(Account.org_id == org_id))}
    found = AccountIndex(accounts).get("".join(c for c in text if c.isdigit()))
    if len(found) == 1:
        return accounts[found[0]]
    if found:
        raise PaymentEntryError(f"account {text} could be {', '.join(sorted(found))}: type it exactly",
                                "err_account_ambiguous", account=text, candidates=", ".join(sorted(found)))
    raise PaymentEntryError(f"account {text} is not in the register of this organisation", "err_account_unknown",
                            account=text)
