"""One account's book from the database: its issued invoices, its payments and their reversals, replayed in the
order they happened through cloud/payments/allocation.py — which invoice is paid, partly paid or overdue.

An invoice is due by the sum of its ledger entries (the charge less its benefit and subsidy). A reversal undoes
exactly what its payment paid (a partial refund: that part, from the payment's credit first, then from the newest
invoices it paid): those invoices owe the money again; other payments stay where they were.
"""

from __future__ import annotations

from datetime import date

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from cloud.models import Invoice, LedgerEntry, Payment, PaymentReversal
from cloud.payments.allocation import (
    AccountBook,
    Allocation,
    InvoiceDue,
    add_invoice,
    allocate_payment,
    refund_part,
)
from shared.calendar import kyiv_day

INVOICE, PAYMENT, REVERSAL = 0, 1, 2  # on one day: the invoice first, then money in, then money back


def account_book(db: Session, org_id: int, account_id: int) -> AccountBook:
    """The account's book now: every issued invoice, every payment, every reversal."""
    events: list[tuple] = []
    for invoice_id, issued, due, amount in db.execute(
            select(Invoice.id, Invoice.issued_at, Invoice.due_date, func.sum(LedgerEntry.amount))
            .join(LedgerEntry, LedgerEntry.invoice_id == Invoice.id)
            .where(Invoice.org_id == org_id, Invoice.account_id == account_id, Invoice.status == "issued")
            .group_by(Invoice.id, Invoice.issued_at, Invoice.due_date)):
        day = kyiv_day(issued) if issued else due
        if amount is not None and amount > 0 and day is not None:
            events.append((day, INVOICE, invoice_id, InvoiceDue(invoice_id, day, due or day, amount)))
    for payment_id, booked, amount in db.execute(
            select(Payment.id, Payment.booked, Payment.amount)
            .where(Payment.org_id == org_id, Payment.account_id == account_id)):
        events.append((booked, PAYMENT, payment_id, amount))
    for reversal_id, booked, payment_id, paid, amount in db.execute(
            select(PaymentReversal.id, PaymentReversal.booked, PaymentReversal.payment_id, Payment.booked,
                   PaymentReversal.amount)
            .join(Payment, Payment.id == PaymentReversal.payment_id)
            .where(PaymentReversal.org_id == org_id, Payment.account_id == account_id)):
        # Never before its payment; a refund of part of it takes back only that part.
        events.append((max(booked, paid), REVERSAL, reversal_id, (payment_id, amount)))
    book = AccountBook()
    for _day, kind, _id, value in sorted(events, key=lambda e: e[:3]):
        if kind == INVOICE:
            book = add_invoice(book, value)
        elif kind == PAYMENT:
            book = allocate_payment(book, f"p{_id}", value)
        else:
            payment_id, amount = value
            book = refund_part(book, f"p{payment_id}", amount)
    return book


def invoice_statuses(db: Session, org_id: int, account_id: int, today: date) -> list[Allocation]:
    """Each issued invoice of the account, oldest first: paid / partly_paid / overdue / open on ``today``."""
    return account_book(db, org_id, account_id).statuses(today)
