"""Allocation: the oldest invoice first, partial payments, overpayment as credit, a reversal that undoes exactly
its own allocations, statuses and debt ageing."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cloud.payments.allocation import (
    OPEN,
    OVERDUE,
    PAID,
    PARTLY_PAID,
    AccountBook,
    AllocationError,
    InvoiceDue,
    Slice,
    add_invoice,
    ageing,
    allocate,
    allocate_payment,
    book_of,
    refund_part,
    reverse_payment,
)

SEPTEMBER = InvoiceDue(1, date(2026, 9, 1), date(2026, 9, 21), Decimal("200.00"))
OCTOBER = InvoiceDue(2, date(2026, 10, 1), date(2026, 10, 21), Decimal("300.00"))
NOVEMBER = InvoiceDue(3, date(2026, 11, 1), date(2026, 11, 21), Decimal("3197.46"))


def statuses(book, today):
    return [(a.invoice_id, a.allocated, a.status) for a in book.statuses(today)]


def test_a_partial_payment_pays_the_oldest_invoice_first():
    book = allocate_payment(book_of([OCTOBER, SEPTEMBER], []), "bank:1", Decimal("250.00"))
    assert statuses(book, date(2026, 10, 5)) == [(1, Decimal("200.00"), PAID), (2, Decimal("50.00"), PARTLY_PAID)]
    assert statuses(book, date(2026, 11, 5))[1][2] == OVERDUE
    assert book.debt == Decimal("250.00") and book.credit == 0


def test_an_overpayment_becomes_credit_and_pays_the_next_invoice():
    book = allocate_payment(book_of([SEPTEMBER, OCTOBER], []), "bank:1", Decimal("600.00"))
    assert book.credit == Decimal("100.00") and book.debt == 0
    book = add_invoice(book, NOVEMBER)
    assert book.credit == 0 and book.outstanding(3) == Decimal("3097.46")
    assert {s.invoice_id: s.amount for s in book.of_payment("bank:1")} == {1: Decimal("200.00"), 2: Decimal("300.00"),
                                                                          3: Decimal("100.00")}


def test_a_reversal_undoes_exactly_that_payments_allocations():
    book = book_of([SEPTEMBER, OCTOBER], [("bank:1", Decimal("150.00")), ("card:7", Decimal("200.00"))])
    assert statuses(book, date(2026, 9, 5)) == [(1, Decimal("200.00"), PAID), (2, Decimal("150.00"), PARTLY_PAID)]
    undone = reverse_payment(book, "bank:1")
    # card:7's 50 on September and 150 on October stay where they were: nothing is re-shuffled.
    assert undone.of_payment("card:7") == book.of_payment("card:7")
    assert statuses(undone, date(2026, 9, 5)) == [(1, Decimal("50.00"), PARTLY_PAID), (2, Decimal("150.00"), PARTLY_PAID)]
    assert undone.debt == Decimal("300.00")


def test_the_same_payment_twice_is_one_payment_and_a_conflicting_one_is_refused():
    book = allocate_payment(book_of([SEPTEMBER], []), "liqpay:04001-ab12", Decimal("200.00"))
    assert allocate_payment(book, "liqpay:04001-ab12", Decimal("200.00")) is book
    with pytest.raises(AllocationError, match=r"already on the book with 200\.00, not 199\.00"):
        allocate_payment(book, "liqpay:04001-ab12", Decimal("199.00"))
    with pytest.raises(AllocationError, match="not on this account's book"):
        reverse_payment(book, "bank:404")
    with pytest.raises(AllocationError, match="whole kopecks"):
        allocate_payment(book, "bank:2", Decimal("0.001"))


def test_an_invoice_with_nothing_paid_is_open_then_overdue():
    book = book_of([NOVEMBER], [])
    assert statuses(book, date(2026, 11, 10)) == [(3, Decimal("0.00"), OPEN)]
    assert statuses(book, date(2026, 11, 22)) == [(3, Decimal("0.00"), OVERDUE)]


def test_debt_ageing_by_days_past_due():
    book = book_of([SEPTEMBER, OCTOBER, NOVEMBER], [("bank:1", Decimal("100.00"))])
    assert book.ageing(date(2026, 12, 15)) == {"0-30": Decimal("3197.46"), "31-60": Decimal("300.00"),
                                               "61-90": Decimal("100.00"), "90+": Decimal(0)}
    assert book.ageing(date(2027, 1, 1))["90+"] == Decimal("100.00")  # 102 days past 21 September


def test_the_report_view_allocates_a_total_the_same_way():
    allocations, credit = allocate([OCTOBER, SEPTEMBER], Decimal("250.00"), date(2026, 11, 5))
    assert [(a.invoice_id, a.allocated, a.status) for a in allocations] == [
        (1, Decimal("200.00"), PAID), (2, Decimal("50.00"), OVERDUE)]
    assert credit == 0
    assert ageing([SEPTEMBER, OCTOBER], allocations, date(2026, 11, 5))["0-30"] == Decimal("250.00")


def test_a_book_is_a_value():
    assert AccountBook().credit == 0 and Slice("p", None, Decimal(1)).invoice_id is None


def test_a_partial_refund_takes_credit_first_then_the_newest_invoice():
    book = book_of([SEPTEMBER, OCTOBER], [("p1", Decimal("600.00"))])  # 200 + 300 paid, 100.00 credit
    book = refund_part(book, "p1", Decimal("150.00"))
    assert (book.credit, book.outstanding(1), book.outstanding(2)) == (Decimal("0.00"), Decimal("0.00"),
                                                                       Decimal("50.00"))
    assert book.payments == {"p1": Decimal("450.00")}
    with pytest.raises(AllocationError, match=r"a refund of 500\.00 is not within its 450\.00"):
        refund_part(book, "p1", Decimal("500.00"))
    assert refund_part(book, "p1", Decimal("450.00")).payments == {}


amounts = st.decimals(min_value=Decimal("0.01"), max_value=Decimal("900.00"), places=2)


@given(st.lists(amounts, min_size=1, max_size=4), st.lists(amounts, min_size=1, max_size=3), st.data())
def test_refunds_in_parts_equal_one_refund_and_every_kopeck_is_placed(payments, invoices, data):
    dues = [InvoiceDue(i, date(2026, 1 + i, 1), date(2026, 1 + i, 21), amount) for i, amount in enumerate(invoices)]
    book = book_of(dues, [(f"p{i}", amount) for i, amount in enumerate(payments)])
    target = data.draw(st.sampled_from(sorted(book.payments)))
    total = data.draw(st.decimals(min_value=Decimal("0.01"), max_value=book.payments[target], places=2))
    first = data.draw(st.decimals(min_value=Decimal("0.00"), max_value=total, places=2))
    at_once = refund_part(book, target, total)
    in_parts = refund_part(book, target, first) if first else book
    in_parts = refund_part(in_parts, target, total - first) if total - first else in_parts
    assert (at_once.credit, at_once.debt, at_once.payments) == (in_parts.credit, in_parts.debt, in_parts.payments)
    # Σ payments − Σ refunds = Σ allocations + credit
    assert sum(payments) - total == sum(s.amount for s in at_once.slices)
    assert all(at_once.paid_on(d.invoice_id) <= d.amount for d in dues)
