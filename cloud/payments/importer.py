"""Importing payments into an organisation's books: atomic, idempotent, every kopeck accounted for.

A statement is imported whole or not at all; a transaction already imported (same key) adds nothing;
each payment lands on an account's ledger (matched) or in the unmatched queue; the statement's reversals and
refunds undo the payments they belong to (cloud/payments/reversals.py). Also the accountant's two hand
entries: assigning a queued payment to an account, and cash taken at the office.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from cloud.audit import audit
from cloud.db import insert_rows
from cloud.errors import ExplainedError
from cloud.models import Account, LedgerEntry, Organisation, PayerIban, Payment, StatementImport, utcnow
from cloud.payments.formats import parse_statement_all
from cloud.payments.matching import AccountIndex
from cloud.payments.reconciliation import reconcile
from cloud.payments.reversals import apply_statement_debits, is_reversed


@dataclass
class ImportResult:
    transactions: int = 0
    imported: int = 0
    matched: int = 0
    unmatched: int = 0
    duplicates: int = 0
    total: Decimal = field(default_factory=lambda: Decimal(0))
    reversed: int = 0  # payments undone by the statement's reversals and refunds
    reversed_total: Decimal = field(default_factory=lambda: Decimal(0))
    partial_refunds: int = 0  # of ``reversed``: refunds of part of a payment (an overpayment sent back)
    unlinked_reversals: int = 0  # reversals waiting for an accountant to say which payment they undo
    conflicting_ibans: int = 0  # payer IBANs that paid for a second account and are no longer trusted

    def as_json(self) -> dict:
        return {"transactions": self.transactions, "imported": self.imported, "matched": self.matched,
                "unmatched": self.unmatched, "duplicates": self.duplicates, "total_uah": f"{self.total:.2f}",
                "reversed": self.reversed, "reversed_uah": f"{self.reversed_total:.2f}",
                "partial_refunds": self.partial_refunds, "unlinked_reversals": self.unlinked_reversals, "conflicting_ibans": self.conflicting_ibans}


PAYMENT_COLUMNS = ("org_id", "key", "channel", "booked", "amount", "payer", "payer_iban", "purpose", "account_id",
                   "matched_by", "statement_id", "created_at", "end_to_end_id")


def register(db: Session, org_id: int) -> tuple[dict[str, Account], AccountIndex, dict[str, tuple[int, bool]]]:
    """The organisation's accounts by number, their index for matching, and every remembered payer IBAN →
    (account id, conflicting)."""
    accounts = {a.number: a for a in db.scalars(select(Account).where(Account.org_id == org_id))}
    normalised = AccountIndex(accounts)
    ibans = {iban: (account_id, bool(conflict)) for iban, account_id, conflict in db.execute(
        select(PayerIban.iban, PayerIban.account_id, PayerIban.conflict).where(PayerIban.org_id == org_id))}
    return accounts, normalised, ibans


def import_statement(db: Session, org: Organisation, data: bytes, filename: str, fmt: str,
                     actor: str = "system") -> ImportResult:
    """Parse (all or nothing), then store new payments and their ledger entries in the caller's transaction."""
    contents = parse_statement_all(data, filename, fmt)
    transactions = contents.incoming
    accounts, index, ibans = register(db, org.id)
    by_id = {a.id: a.number for a in accounts.values()}
    known_ibans = {iban: by_id[account_id] for iban, (account_id, conflict) in ibans.items()
                   if account_id in by_id and not conflict}
    existing = set(db.scalars(select(Payment.key).where(Payment.org_id == org.id,
                                                        Payment.key.in_([t.key for t in transactions]))))
    outcome = reconcile(transactions, index, known_ibans, existing, filename)
    statement = StatementImport(org_id=org.id, filename=filename[:200], format=fmt,
                                sha256=hashlib.sha256(data).hexdigest())
    db.add(statement)
    db.flush()
    counts = outcome.counts()
    result = ImportResult(transactions=counts["transactions"], imported=counts["imported"], matched=counts["matched"],
                          unmatched=counts["unmatched"], duplicates=counts["duplicates"], total=outcome.total)
    stamp = utcnow().strftime("%Y-%m-%d %H:%M:%S.%f")
    payments, entries = [], []
    # Thousands of rows: written as plain tuples in three bulk inserts, not object by object.
    for tx, match in ((r.transaction, r.match) for r in outcome.new):
        account = accounts[match.account] if match.account else None
        payments.append((org.id, tx.key, "bank", tx.booked.isoformat(), str(tx.amount), tx.payer[:200],
                         tx.payer_iban[:34], tx.purpose[:500], account.id if account else None, match.how,
                         statement.id, stamp, tx.end_to_end_id[:35]))
        if account is not None:
            entries.append((org.id, account.id, "payment", str(-tx.amount), tx.booked.strftime("%Y-%m"),
                            f"Оплата {tx.booked:%d.%m.%Y} (bank) {tx.payer}"[:300], stamp))
    new_ibans = [(org.id, iban, accounts[number].id) for iban, number in outcome.new_ibans.items()
                 if iban not in ibans and len(iban) <= 34]
    insert_rows(db, "payments", PAYMENT_COLUMNS, payments)
    insert_rows(db, "ledger_entries", ("org_id", "account_id", "kind", "amount", "period", "memo", "created_at"),
                entries)
    insert_rows(db, "payer_ibans", ("org_id", "iban", "account_id"), new_ibans)
    result.conflicting_ibans = distrust_ibans(db, org.id, outcome.conflicting_ibans, ibans, accounts,
                                              outcome.new, actor)
    debits = apply_statement_debits(db, org.id, contents.outgoing, statement.id, actor)
    result.reversed, result.reversed_total = len(debits.reversed), debits.amount
    result.unlinked_reversals = len(debits.unlinked)
    result.partial_refunds = debits.partial
    statement.counts = result.as_json()
    audit(db, org.id, actor, "statement.import", f"statement:{statement.id}", None,
          {"file": filename, **result.as_json()})
    db.flush()
    return result


def distrust_ibans(db: Session, org_id: int, conflicting: set[str], ibans: dict[str, tuple[int, bool]],
                   accounts: dict[str, Account], new, actor: str) -> int:
    """Remember that these payer IBANs paid for more than one account: they never match automatically again."""
    marked = 0
    for iban in sorted(conflicting):
        if len(iban) > 34 or ibans.get(iban, (None, False))[1]:
            continue
        row = db.scalar(select(PayerIban).where(PayerIban.org_id == org_id, PayerIban.iban == iban))
        if row is None:
            first = next(r.match.account for r in new if r.transaction.payer_iban == iban and r.match.account)
            row = PayerIban(org_id=org_id, iban=iban, account_id=accounts[first].id)
            db.add(row)
        row.conflict = True
        marked += 1
        audit(db, org_id, actor, "payer_iban.conflict", f"iban:{iban}", None, {"conflict": True})
    return marked


def book_payment(db: Session, payment: Payment, account: Account) -> None:
    """The payment on the account's ledger: a negative entry (money in reduces what is owed)."""
    db.add(LedgerEntry(org_id=payment.org_id, account_id=account.id, kind="payment", amount=-payment.amount,
                       period=payment.booked.strftime("%Y-%m"),
                       memo=f"Оплата {payment.booked:%d.%m.%Y} ({payment.channel}) {payment.payer}"[:300]))


class PaymentEntryError(ExplainedError, ValueError):
    """An accountant's entry that cannot be booked; the message says what to fix.

    ``code`` and ``params`` let a page say the same in the person's language (cloud/errors.py).
    """


def resolve_unmatched(db: Session, payment: Payment, account: Account, actor: str) -> str:
    """An accountant assigns a queued payment to an account; the payer's IBAN is remembered for next time.

    Returns what happened to the IBAN: ``remembered``, ``known`` (already for this account), ``conflict`` (it was
    remembered for another account: from now on it matches nothing automatically) or ``none`` (no IBAN).
    """
    if payment.account_id is not None:
        raise PaymentEntryError(f"payment {payment.id} is already on account {payment.account_id}",
                                "err_already_assigned", payment=payment.id)
    if account.org_id != payment.org_id:
        raise PaymentEntryError("the account belongs to another organisation", "err_account_other_org")
    if is_reversed(db, payment):
        raise PaymentEntryError(f"payment {payment.id} was reversed by the bank: there is nothing to assign",
                                "err_reversed", payment=payment.id)
    payment.account_id = account.id
    payment.matched_by = "hand"
    book_payment(db, payment, account)
    iban = "none"
    if payment.payer_iban:
        known = db.scalar(select(PayerIban).where(PayerIban.org_id == payment.org_id,
                                                  PayerIban.iban == payment.payer_iban))
        if known is None:
            db.add(PayerIban(org_id=payment.org_id, iban=payment.payer_iban, account_id=account.id))
            iban = "remembered"
        elif known.account_id != account.id or known.conflict:
            if not known.conflict:
                known.conflict = True
                audit(db, payment.org_id, actor, "payer_iban.conflict", f"iban:{payment.payer_iban}",
                      {"account_id": known.account_id}, {"account_id": account.id, "conflict": True})
            iban = "conflict"
        else:
            iban = "known"
    audit(db, payment.org_id, actor, "payment.assign", f"payment:{payment.id}", {"account": None},
          {"account": account.number, "amount": f"{payment.amount:.2f}", "payer_iban": iban})
    db.flush()
    return iban


MAX_CASH = Decimal("1000000.00")  # one receipt; more is a typo (or not cash)


def cash_payment(db: Session, org: Organisation, account: Account, amount: Decimal, booked: date, actor: str,
                 receipt: str = "", today: date | None = None) -> tuple[Payment, bool]:
    """Cash taken at the office (каса) for an account: the payment and its ledger entry, audited.

    The receipt number (квитанція) makes it idempotent: the same receipt again returns the payment already
    booked and ``False`` — or an error when it differs. Without one Balans numbers the receipt itself.
    """
    amount = Decimal(amount)
    if not amount.is_finite() or amount.as_tuple().exponent < -2:
        raise PaymentEntryError(f"amount {amount} is not in whole kopecks", "err_amount_kopecks", amount=amount)
    if amount <= 0:
        raise PaymentEntryError(f"amount must be positive, got {amount}", "err_amount_positive", amount=amount)
    if amount > MAX_CASH:
        raise PaymentEntryError(f"amount {amount:.2f} UAH is more than one cash receipt may carry ({MAX_CASH:.2f})",
                                "err_amount_too_large", amount=amount, limit=MAX_CASH)
    if account.org_id != org.id:
        raise PaymentEntryError("the account belongs to another organisation", "err_account_other_org")
    if today is not None and booked > today:
        raise PaymentEntryError(f"date {booked:%d.%m.%Y} is in the future", "err_future", date=f"{booked:%d.%m.%Y}")
    amount = amount.quantize(Decimal("0.01"))
    receipt = " ".join(receipt.split())[:60] or f"B-{booked:%Y%m%d}-{secrets.token_hex(3).upper()}"
    key = f"cash:{receipt}"
    existing = db.scalar(select(Payment).where(Payment.org_id == org.id, Payment.key == key))
    if existing is None:
        payment = Payment(org_id=org.id, key=key, channel="cash", booked=booked, amount=amount,
                          payer=account.holder, account_id=account.id, matched_by="hand",
                          purpose=f"Каса, квитанція {receipt}")
        try:
            with db.begin_nested():  # the same form sent twice at once: the second finds the first
                db.add(payment)
                db.flush()
        except IntegrityError:
            existing = db.scalar(select(Payment).where(Payment.org_id == org.id, Payment.key == key))
            if existing is None:
                raise
    if existing is not None:
        if (existing.account_id, existing.amount, existing.booked) != (account.id, amount, booked):
            raise PaymentEntryError(f"receipt {receipt} is already booked: {existing.amount:.2f} UAH on "
                                    f"{existing.booked:%d.%m.%Y} (payment {existing.id}); a new receipt needs a "
                                    "new number", "err_receipt_taken", receipt=receipt, amount=existing.amount,
                                    date=f"{existing.booked:%d.%m.%Y}")
        return existing, False
    book_payment(db, payment, account)
    audit(db, org.id, actor, "payment.cash", f"payment:{payment.id}", None,
          {"account": account.number, "amount": f"{amount:.2f}", "booked": booked.isoformat(), "receipt": receipt})
    db.flush()
    return payment, True
