"""Properties that hold for any statement and any sequence of payments (hypothesis): money is neither made nor
lost by allocation, a re-import is a no-op, and every kopeck of a statement lands somewhere."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from cloud.payments import camt053
from cloud.payments.allocation import (
    InvoiceDue,
    add_invoice,
    allocate,
    allocate_payment,
    book_of,
    reverse_payment,
)
from cloud.payments.matching import AccountIndex
from cloud.payments.reconciliation import reconcile
from tests.cloud.payments.statements import camt053 as statement
from tests.cloud.payments.statements import entry

money = st.decimals(min_value="0.01", max_value="5000", places=2)
ACCOUNTS = ["01001", "01002", "01234", "04001", "05015", "12", "1234"]  # "1234" and "01234" read alike
INDEX = AccountIndex(ACCOUNTS)

# One step on an account's book: a new invoice, a payment, or the reversal of an earlier payment.
step = st.one_of(st.tuples(st.just("invoice"), money), st.tuples(st.just("pay"), money),
                 st.tuples(st.just("reverse"), st.integers(min_value=0, max_value=20)))


@settings(max_examples=200, deadline=None)
@given(steps=st.lists(step, max_size=30), today=st.dates(date(2026, 1, 1), date(2028, 1, 1)))
def test_payments_equal_allocations_plus_credit_whatever_happens(steps, today):
    book = book_of([], [])
    for n, (kind, value) in enumerate(steps):
        if kind == "invoice":
            issued = date(2026, 1, 1) + timedelta(days=30 * n)
            book = add_invoice(book, InvoiceDue(n, issued, issued + timedelta(days=20), value))
        elif kind == "pay":
            book = allocate_payment(book, f"p{n}", value)
        elif book.payments:
            book = reverse_payment(book, sorted(book.payments)[value % len(book.payments)])
        on_invoices = sum((s.amount for s in book.slices if s.invoice_id is not None), Decimal(0))
        assert sum(book.payments.values(), Decimal(0)) == on_invoices + book.credit
        for payment_id, amount in book.payments.items():
            assert sum((s.amount for s in book.of_payment(payment_id)), Decimal(0)) == amount
        assert all(0 <= book.paid_on(i.invoice_id) <= i.amount for i in book.invoices)
        assert book.credit == 0 or book.debt == 0  # credit never waits while something is owed
    statuses = book.statuses(today)
    assert sum((a.outstanding for a in statuses), Decimal(0)) == book.debt == sum(book.ageing(today).values())


@settings(max_examples=100)
@given(amounts=st.lists(money, max_size=12), credit=st.decimals(min_value=0, max_value=20000, places=2))
def test_the_report_allocation_never_makes_or_loses_money(amounts, credit):
    invoices = [InvoiceDue(i, date(2026, 1 + i % 12, 1), date(2026, 1 + i % 12, 21), a) for i, a in enumerate(amounts)]
    allocations, left = allocate(invoices, credit, date(2027, 1, 1))
    assert sum((a.allocated for a in allocations), Decimal(0)) + left == credit


purposes = st.one_of(
    st.sampled_from(["о/р {n}", "ос.рах. 00{n}", "особовий рахунок №{n}", "рахунок {n} Іваненко", "o/p {n}",
                     "р/р {n}", "о.р. {n}", "за світло", "о/р {n} та о/р 4001", "оплата 1250.40 від 03.11.2026"])
    .flatmap(lambda form: st.sampled_from([*ACCOUNTS, "9999", "5"]).map(lambda n: form.format(n=n))),
    st.text(alphabet="оррахс/. 0123456789№ab", max_size=30))
kind = st.sampled_from(["BOOK", "BOOK", "BOOK", "PDNG", "DBIT", "REVERSAL"])
booked_entry = st.tuples(kind, money, purposes, st.sampled_from(["", "REF"]), st.sampled_from(["UA1", "UA2", ""]),
                         st.lists(st.tuples(money, purposes), max_size=3))


def build(entries) -> tuple[bytes, Decimal]:
    """A statement and the sum of its booked credits (computed from the model, not the parser)."""
    xml, credited = [], Decimal(0)
    for n, (status, amount, purpose, ref, iban, split) in enumerate(entries):
        details = [(f"{a}", p, "Платник", iban, None) for a, p in split] if len(split) > 1 else None
        total = sum((a for a, _ in split), Decimal(0)) if details else amount
        xml.append(entry(f"{total}", purpose, f"{ref}{n}" if ref else "", iban=iban, details=details,
                         cdt="DBIT" if status == "DBIT" else "CRDT", status="PDNG" if status == "PDNG" else "BOOK",
                         reversal=status == "REVERSAL"))
        if status == "BOOK":
            credited += total
    return statement(*xml), credited


@settings(max_examples=150, deadline=None)
@given(entries=st.lists(booked_entry, max_size=15))
def test_every_kopeck_of_a_statement_ends_on_an_account_or_in_the_unmatched_queue(entries):
    data, credited = build(entries)
    transactions = camt053.parse(data, "gen.xml")
    outcome = reconcile(transactions, INDEX, {"UA1": "04001"})
    on_accounts = sum(outcome.by_account().values(), Decimal(0))
    queued = sum((r.transaction.amount for r in outcome.unmatched), Decimal(0))
    assert on_accounts + queued == outcome.total == credited
    assert all(r.match.account in ACCOUNTS for r in outcome.matched)


@settings(max_examples=150, deadline=None)
@given(entries=st.lists(booked_entry, max_size=15))
def test_reparsing_gives_identical_keys_so_a_reimport_is_a_no_op(entries):
    data, _ = build(entries)
    first, second = camt053.parse(data, "gen.xml"), camt053.parse(data, "gen.xml")
    assert [t.key for t in first] == [t.key for t in second]
    assert len({t.key for t in first}) == len(first)  # no two payments share a key: none is lost as a "duplicate"
    again = reconcile(second, INDEX, existing_keys={t.key for t in first})
    assert again.new == [] and len(again.duplicates) == len(first)
