"""Allocation of an account's payments to its invoices, oldest first: partial payments, credit (переплата),
reversals that undo exactly what a payment paid, invoice statuses and debt ageing.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import date
from decimal import Decimal

PAID, PARTLY_PAID, OVERDUE, OPEN = "paid", "partly_paid", "overdue", "open"
BUCKETS = ("0-30", "31-60", "61-90", "90+")
ZERO = Decimal("0.00")


class AllocationError(ValueError):
    """A payment or invoice the book cannot take: says which and why."""


@dataclass(frozen=True)
class InvoiceDue:
    """An issued invoice as allocation sees it: when it was issued, when it is due, how much."""

    invoice_id: int
    issued: date
    due: date
    amount: Decimal


@dataclass(frozen=True)
class Allocation:
    """One invoice after allocation: what was paid, what is left, and its status."""

    invoice_id: int
    allocated: Decimal
    outstanding: Decimal
    status: str


@dataclass(frozen=True)
class Slice:
    """Part of a payment: on an invoice, or credit (``invoice_id`` None) waiting for the next invoice."""

    payment_id: str
    invoice_id: int | None
    amount: Decimal


def _kopecks(amount: Decimal, what: str) -> Decimal:
    amount = Decimal(amount)
    if not amount.is_finite() or amount.as_tuple().exponent < -2:
        raise AllocationError(f"{what}: {amount} is not an amount in whole kopecks")
    return amount.quantize(Decimal("0.01"))


def _order(invoice: InvoiceDue) -> tuple:
    return invoice.issued, invoice.due, invoice.invoice_id


@dataclass(frozen=True)
class AccountBook:
    """One account's invoices and the slices its payments were cut into. Values in, values out.

    Invariant: for every payment, Σ its slices = its amount; Σ slices on an invoice ≤ the invoice.
    """

    invoices: tuple[InvoiceDue, ...] = ()
    slices: tuple[Slice, ...] = ()
    payments: dict[str, Decimal] = field(default_factory=dict)

    def paid_on(self, invoice_id: int) -> Decimal:
        return sum((s.amount for s in self.slices if s.invoice_id == invoice_id), ZERO)

    def outstanding(self, invoice_id: int) -> Decimal:
        invoice = next(i for i in self.invoices if i.invoice_id == invoice_id)
        return invoice.amount - self.paid_on(invoice_id)

    @property
    def credit(self) -> Decimal:
        """Money paid and not yet on any invoice (an overpayment / prepayment)."""
        return sum((s.amount for s in self.slices if s.invoice_id is None), ZERO)

    @property
    def debt(self) -> Decimal:
        return sum((self.outstanding(i.invoice_id) for i in self.invoices), ZERO)

    def of_payment(self, payment_id: str) -> list[Slice]:
        """Where one payment went (for the resident's page and for a reversal)."""
        return [s for s in self.slices if s.payment_id == payment_id]

    def statuses(self, today: date) -> list[Allocation]:
        """Every invoice, oldest first, with its status on ``today``."""
        return [_status(i, self.paid_on(i.invoice_id), today) for i in sorted(self.invoices, key=_order)]

    def ageing(self, today: date) -> dict[str, Decimal]:
        return ageing(self.invoices, self.statuses(today), today)


def _status(invoice: InvoiceDue, allocated: Decimal, today: date) -> Allocation:
    outstanding = invoice.amount - allocated
    if outstanding <= 0:
        status = PAID
    elif invoice.due < today:
        status = OVERDUE
    elif allocated > 0:
        status = PARTLY_PAID
    else:
        status = OPEN
    return Allocation(invoice.invoice_id, allocated, outstanding, status)


def _spread(book: AccountBook, payment_id: str, amount: Decimal) -> list[Slice]:
    """Cut ``amount`` over the open invoices oldest first; what is left is credit."""
    cut, left = [], amount
    for invoice in sorted(book.invoices, key=_order):
        if left <= 0:
            break
        owed = book.outstanding(invoice.invoice_id)
        if owed > 0:
            part = min(owed, left)
            cut.append(Slice(payment_id, invoice.invoice_id, part))
            left -= part
    if left > 0:
        cut.append(Slice(payment_id, None, left))
    return cut


def allocate_payment(book: AccountBook, payment_id: str, amount: Decimal) -> AccountBook:
    """The book with one more payment on it. The same payment again (same id and amount) changes nothing."""
    amount = _kopecks(amount, f"payment {payment_id}")
    if amount <= 0:
        raise AllocationError(f"payment {payment_id}: amount must be positive, got {amount}")
    if payment_id in book.payments:
        if book.payments[payment_id] != amount:
            raise AllocationError(f"payment {payment_id} is already on the book with {book.payments[payment_id]}, "
                                  f"not {amount}")
        return book
    return replace(book, slices=book.slices + tuple(_spread(book, payment_id, amount)),
                   payments={**book.payments, payment_id: amount})


def reverse_payment(book: AccountBook, payment_id: str) -> AccountBook:
    """Undo exactly what one payment paid (a bank reversal, a refund, a LiqPay ``reversed``).

    The invoices it paid owe that money again; other payments' allocations stay where they are, and only
    credit already waiting on the account moves onto what is owed again.
    """
    if payment_id not in book.payments:
        raise AllocationError(f"payment {payment_id} is not on this account's book")
    return refund_part(book, payment_id, book.payments[payment_id])


def refund_part(book: AccountBook, payment_id: str, amount: Decimal) -> AccountBook:
    """Take ``amount`` of one payment back (a refund of an overpayment): first from what of it is still credit,
    then from the invoices it paid, the newest first — those owe it again. The payment stays on the book with
    what is left of it (off the book when nothing is)."""
    if payment_id not in book.payments:
        raise AllocationError(f"payment {payment_id} is not on this account's book")
    amount = _kopecks(amount, f"refund of payment {payment_id}")
    if not ZERO < amount <= book.payments[payment_id]:
        raise AllocationError(f"payment {payment_id}: a refund of {amount} is not within its "
                              f"{book.payments[payment_id]}")
    issued = {invoice.invoice_id: _order(invoice) for invoice in book.invoices}

    def credit_then_newest(piece: Slice) -> tuple:
        if piece.invoice_id is None:
            return (0,)
        day, due, invoice_id = issued[piece.invoice_id]
        return 1, -day.toordinal(), -due.toordinal(), -invoice_id

    theirs = sorted((s for s in book.slices if s.payment_id == payment_id), key=credit_then_newest)
    kept = [s for s in book.slices if s.payment_id != payment_id]
    left = amount
    for piece in theirs:
        take = min(left, piece.amount)
        left -= take
        if piece.amount - take:
            kept.append(Slice(piece.payment_id, piece.invoice_id, piece.amount - take))
    payments = dict(book.payments)
    payments[payment_id] -= amount
    if not payments[payment_id]:
        del payments[payment_id]
    return apply_credit(replace(book, slices=tuple(kept), payments=payments))


def add_invoice(book: AccountBook, invoice: InvoiceDue) -> AccountBook:
    """The book with a newly issued invoice; credit already there pays it (oldest payment's credit first)."""
    amount = _kopecks(invoice.amount, f"invoice {invoice.invoice_id}")
    if amount < 0:
        raise AllocationError(f"invoice {invoice.invoice_id}: amount must not be negative (corrections are new "
                              f"entries), got {amount}")
    if any(i.invoice_id == invoice.invoice_id for i in book.invoices):
        raise AllocationError(f"invoice {invoice.invoice_id} is already on the book")
    book = replace(book, invoices=(*book.invoices, replace(invoice, amount=amount)))
    return apply_credit(book)


def apply_credit(book: AccountBook) -> AccountBook:
    """Move credit onto open invoices, oldest invoice first, the oldest payment's credit first."""
    credits = [s for s in book.slices if s.invoice_id is None]
    if not credits:
        return book
    kept = [s for s in book.slices if s.invoice_id is not None]
    staged = replace(book, slices=tuple(kept))
    for credit in credits:
        staged = replace(staged, slices=staged.slices + tuple(_spread(staged, credit.payment_id, credit.amount)))
    return _merge(staged)


def _merge(book: AccountBook) -> AccountBook:
    """One slice per (payment, invoice): the book reads the same however it got there."""
    merged: dict[tuple[str, int | None], Decimal] = {}
    for s in book.slices:
        merged[s.payment_id, s.invoice_id] = merged.get((s.payment_id, s.invoice_id), ZERO) + s.amount
    return replace(book, slices=tuple(Slice(p, i, a) for (p, i), a in merged.items() if a != 0))


def book_of(invoices: Iterable[InvoiceDue], payments: Iterable[tuple[str, Decimal]]) -> AccountBook:
    """Rebuild an account's book from its invoices and payments, in the order they happened."""
    book = AccountBook()
    for invoice in invoices:
        book = add_invoice(book, invoice)
    for payment_id, amount in payments:
        book = allocate_payment(book, payment_id, amount)
    return book


def allocate(invoices: list[InvoiceDue], credits: Decimal, today: date) -> tuple[list[Allocation], Decimal]:
    """Spread a total of ``credits`` (payments, benefits, subsidies) over invoices oldest first.

    Returns each invoice's allocation and the credit left over. Σ credits = Σ allocated + left over.
    Used by reports, where the ledger sum is the truth and which invoice it paid is derived.
    """
    left = Decimal(credits)
    result = []
    for invoice in sorted(invoices, key=_order):
        allocated = min(left, invoice.amount) if left > 0 else Decimal(0)
        left -= allocated
        result.append(_status(invoice, allocated, today))
    return result, left


def bucket(days_past_due: int) -> str:
    """0–30 (including not yet due), 31–60, 61–90, 90+ days."""
    return "0-30" if days_past_due <= 30 else "31-60" if days_past_due <= 60 else "61-90" if days_past_due <= 90 \
        else "90+"


def ageing(invoices: Iterable[InvoiceDue], allocations: Iterable[Allocation], today: date) -> dict[str, Decimal]:
    """Outstanding debt by days past due on ``today``: 0–30, 31–60, 61–90, 90+."""
    buckets = dict.fromkeys(BUCKETS, Decimal(0))
    due = {i.invoice_id: i.due for i in invoices}
    for allocation in allocations:
        if allocation.outstanding > 0:
            buckets[bucket(max((today - due[allocation.invoice_id]).days, 0))] += allocation.outstanding
    return buckets
