"""Importing payments into an organisation's books: atomic, idempotent, every kopeck accounted for.

A statement is imported whole or not at all; a transaction already imported (same key) adds nothing;
each payment lands on an account's ledger (matched) or in the unmatched queue.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.orm import Session

from cloud.audit import audit
from cloud.db import insert_rows
from cloud.models import Account, LedgerEntry, Organisation, PayerIban, Payment, StatementImport, utcnow
from cloud.payments.formats import parse_statement
from cloud.payments.matching import AccountIndex
from cloud.payments.reconciliation import reconcile


@dataclass
class ImportResult:
    transactions: int = 0
    imported: int = 0
    matched: int = 0
    unmatched: int = 0
    duplicates: int = 0
    total: Decimal = field(default_factory=lambda: Decimal(0))

    def as_json(self) -> dict:
        return {"transactions": self.transactions, "imported": self.imported, "matched": self.matched,
                "unmatched": self.unmatched, "duplicates": self.duplicates, "total_uah": f"{self.total:.2f}"}


PAYMENT_COLUMNS = ("org_id", "key", "channel", "booked", "amount", "payer", "payer_iban", "purpose", "account_id",
                   "matched_by", "statement_id", "created_at")


def register(db: Session, org_id: int) -> tuple[dict[str, Account], AccountIndex, dict[str, int]]:
    accounts = {a.number: a for a in db.scalars(select(Account).where(Account.org_id == org_id))}
    normalised = AccountIndex(accounts)
    ibans = {iban: account_id for iban, account_id in db.execute(
        select(PayerIban.iban, PayerIban.account_id).where(PayerIban.org_id == org_id))}
    return accounts, normalised, ibans


def import_statement(db: Session, org: Organisation, data: bytes, filename: str, fmt: str,
                     actor: str = "system") -> ImportResult:
    """Parse (all or nothing), then store new payments and their ledger entries in the caller's transaction."""
    transactions = parse_statement(data, filename, fmt)
    accounts, index, ibans = register(db, org.id)
    by_id = {a.id: a.number for a in accounts.values()}
    known_ibans = {iban: by_id[account_id] for iban, account_id in ibans.items() if account_id in by_id}
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
                         statement.id, stamp))
        if account is not None:
            entries.append((org.id, account.id, "payment", str(-tx.amount), tx.booked.strftime("%Y-%m"),
                            f"Оплата {tx.booked:%d.%m.%Y} (bank) {tx.payer}"[:300], stamp))
    new_ibans = [(org.id, iban, accounts[number].id) for iban, number in outcome.new_ibans.items()
                 if iban not in ibans and len(iban) <= 34]
    insert_rows(db, "payments", PAYMENT_COLUMNS, payments)
    insert_rows(db, "ledger_entries", ("org_id", "account_id", "kind", "amount", "period", "memo", "created_at"),
                entries)
    insert_rows(db, "payer_ibans", ("org_id", "iban", "account_id"), new_ibans)
    statement.counts = result.as_json()
    audit(db, org.id, actor, "statement.import", f"statement:{statement.id}", None,
          {"file": filename, **result.as_json()})
    db.flush()
    return result


def book_payment(db: Session, payment: Payment, account: Account) -> None:
    """The payment on the account's ledger: a negative entry (money in reduces what is owed)."""
    db.add(LedgerEntry(org_id=payment.org_id, account_id=account.id, kind="payment", amount=-payment.amount,
                       period=payment.booked.strftime("%Y-%m"),
                       memo=f"Оплата {payment.booked:%d.%m.%Y} ({payment.channel}) {payment.payer}"[:300]))


def resolve_unmatched(db: Session, payment: Payment, account: Account, actor: str) -> None:
    """An accountant assigns a queued payment to an account; the payer's IBAN is remembered for next time."""
    if payment.account_id is not None:
        raise ValueError(f"payment {payment.id} is already on account {payment.account_id}")
    if account.org_id != payment.org_id:
        raise ValueError("the account belongs to another organisation")
    payment.account_id = account.id
    payment.matched_by = "hand"
    book_payment(db, payment, account)
    if payment.payer_iban and db.scalar(select(PayerIban).where(PayerIban.org_id == payment.org_id,
                                                                PayerIban.iban == payment.payer_iban)) is None:
        db.add(PayerIban(org_id=payment.org_id, iban=payment.payer_iban, account_id=account.id))
    audit(db, payment.org_id, actor, "payment.assign", f"payment:{payment.id}", {"account": None},
          {"account": account.number})


def cash_payment(db: Session, org: Organisation, account: Account, amount: Decimal, booked, actor: str,
                 receipt: str) -> Payment:
    """The cashier's entry: a receipt number makes it idempotent."""
    if amount <= 0:
        raise ValueError(f"amount must be positive, got {amount}")
    payment = Payment(org_id=org.id, key=f"cash:{receipt}", channel="cash", booked=booked, amount=amount,
                      account_id=account.id, matched_by="hand", purpose=f"Каса, квитанція {receipt}")
    db.add(payment)
    db.flush()
    book_payment(db, payment, account)
    audit(db, org.id, actor, "payment.cash", f"payment:{payment.id}", None,
          {"account": account.number, "amount": f"{amount:.2f}", "receipt": receipt})
    return payment
