"""Allocation of an account's money to its invoices, oldest first: statuses and debt ageing.

The ledger is the truth (balance = Σ entries); which invoices that money paid is derived from it,
oldest invoice first, so a reversal or refund simply changes the sum and the statuses follow.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal

PAID, PARTLY_PAID, OVERDUE, OPEN = "paid", "partly_paid", "overdue", "open"
BUCKETS = ("0-30", "31-60", "61-90", "90+")


@dataclass(frozen=True)
class InvoiceDue:
    invoice_id: int
    issued: date
    due: date
    amount: Decimal


@dataclass(frozen=True)
class Allocation:
    invoice_id: int
    allocated: Decimal
    outstanding: Decimal
    status: str


def allocate(invoices: list[InvoiceDue], credits: Decimal, today: date) -> tuple[list[Allocation], Decimal]:
    """Spread ``credits`` (payments, benefits, subsidies, adjustments) over invoices oldest first.

    Returns each invoice's allocation and the credit left over (an overpayment).
    Σ credits = Σ allocated + left over, always.
    """
    left = Decimal(credits)
    result = []
    for invoice in sorted(invoices, key=lambda i: (i.issued, i.invoice_id)):
        allocated = min(left, invoice.amount) if left > 0 else Decimal(0)
        left -= allocated
        outstanding = invoice.amount - allocated
        if outstanding == 0:
            status = PAID
        elif invoice.due < today:
            status = OVERDUE
        elif allocated > 0:
            status = PARTLY_PAID
        else:
            status = OPEN
        result.append(Allocation(invoice.invoice_id, allocated, outstanding, status))
    return result, left


def ageing(invoices: list[InvoiceDue], allocations: list[Allocation], today: date) -> dict[str, Decimal]:
    """Outstanding debt by days past due: 0–30, 31–60, 61–90, 90+."""
    buckets = dict.fromkeys(BUCKETS, Decimal(0))
    due = {i.invoice_id: i.due for i in invoices}
    for allocation in allocations:
        if allocation.outstanding <= 0:
            continue
        days = max((today - due[allocation.invoice_id]).days, 0)
        bucket = "0-30" if days <= 30 else "31-60" if days <= 60 else "61-90" if days <= 90 else "90+"
        buckets[bucket] += allocation.outstanding
    return buckets
