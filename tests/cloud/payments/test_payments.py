"""Payments: statements in (camt.053, CSV), matched to accounts as people write them, allocated oldest first."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from cloud.models import Account, LedgerEntry, Organisation, Payment
from cloud.payments import camt053
from cloud.payments.allocation import InvoiceDue, ageing, allocate
from cloud.payments.csv_statement import CsvMapping, parse
from cloud.payments.importer import import_statement, resolve_unmatched
from cloud.payments.matching import match_payment, normalise
from cloud.payments.statement import StatementError
from tests.cloud.conftest import setup_cooperative
from tests.cloud.payments.statements import camt053 as statement
from tests.cloud.payments.statements import entry

ACCOUNTS = {normalise(n): n for n in ("01001", "01234", "04001", "05015")}


@pytest.mark.parametrize(("purpose", "expected"), [
    ("Оплата за ел.енергію о/р 1234", "01234"),
    ("ос.рах. 001234 жовтень", "01234"),
    ("особовий рахунок №04001 Бондаренко", "04001"),
    ("рахунок 4001 Бондаренко О.П.", "04001"),
    ("o/p 05015 (латиницею)", "05015"),  # Latin look-alikes
    ("о/р 12 34 за жовтень", "01234"),  # a misplaced space
    ("Комунальні послуги, 1234", "01234"),  # no marker, but exactly an account number
])
def test_the_account_number_is_found_as_people_write_it(purpose, expected):
    assert match_payment(purpose, "", ACCOUNTS, {}).account == expected


def test_amounts_dates_and_two_accounts_are_never_guessed():
    assert match_payment("оплата 1250.40 грн від 03.11.2026", "", ACCOUNTS, {}).how == "none"
    assert match_payment("о/р 1234 та о/р 4001", "", ACCOUNTS, {}).how == "ambiguous"
    assert match_payment("за світло", "UA21", ACCOUNTS, {"UA21": "04001"}) .account == "04001"


def test_camt053_takes_booked_credits_and_splits_entries_with_several_transactions():
    data = statement(
        entry("1250.40", "о/р 1234", "REF-1"),
        entry("99.00", "комісія", "REF-2", cdt="DBIT"),
        entry("500.00", "о/р 4001", "REF-3", status="PDNG"),
        entry("300.00", "о/р 4001", "REF-4", reversal=True),
        entry("700.00", "", "REF-5", details=[("400.00", "о/р 1001", "Мороз", "UA01", "T-1"),
                                             ("300.00", "о/р 5015", "Руденко", "UA02", "T-2")]),
    )
    found = camt053.parse(data, "nov.xml")
    assert [(t.amount, t.purpose, t.reference) for t in found] == [
        (Decimal("1250.40"), "о/р 1234", "REF-1"), (Decimal("400.00"), "о/р 1001", "T-1"),
        (Decimal("300.00"), "о/р 5015", "T-2")]
    assert found[1].payer == "Мороз" and found[0].payer_iban == "UA213223130000026007233566001"


@pytest.mark.parametrize(("broken", "where"), [
    (b"<Document><BkToCstmrStmt><Stmt><Ntry>", "line"),
    (statement(entry("abc", "о/р 1234", "R")), "Stmt[1]/Ntry[1]/Amt"),
    (statement(entry("10.00", "о/р 1234", "R", day="2026-13-40")), "Stmt[1]/Ntry[1]/BookgDt"),
    (b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa">]><Document/>', "prolog"),
])
def test_a_broken_statement_names_the_element(broken, where):
    with pytest.raises(StatementError) as error:
        camt053.parse(broken, "broken.xml")
    assert where in str(error.value)


def test_csv_with_a_saved_mapping_and_a_bad_line_named():
    mapping = CsvMapping.load("privatbank-business")
    rows = ("Дата операції;Кредит;Дебет;Валюта;Контрагент;Рахунок контрагента;Призначення платежу;Референс\n"
            "03.11.2026;1 250,40;;UAH;Іваненко О.;UA21 3223 1300 0002 6007 2335 6600 1;о/р 1234;P1\n"
            "03.11.2026;;99,00;UAH;Банк;;Комісія;P2\n")
    found = parse(rows.encode("cp1251"), "privat.csv", mapping)
    assert [(t.amount, t.payer_iban, t.reference) for t in found] == [
        (Decimal("1250.40"), "UA213223130000026007233566001", "P1")]
    with pytest.raises(StatementError, match="line 4, column 'Кредит': not an amount: 'дві гривні'"):
        parse((rows + "04.11.2026;дві гривні;;UAH;X;;о/р 1;P3\n").encode("cp1251"), "privat.csv", mapping)


@pytest.fixture
def coop(db, seed_scenario):
    org_id, _ = setup_cooperative(db, seed_scenario)
    return org_id


def import_file(db, org_id, data, name="nov.xml"):
    with db() as session:
        return import_statement(session, session.get(Organisation, org_id), data, name, "camt053")


def test_an_import_lands_on_accounts_or_the_queue_and_a_reimport_adds_nothing(db, coop):
    data = statement(entry("1250.40", "о/р 1001", "REF-1", iban="UA11"), entry("80.00", "за світло", "REF-2",
                                                                               iban="UA22"))
    first = import_file(db, coop, data)
    assert first.as_json() == {"transactions": 2, "imported": 2, "matched": 1, "unmatched": 1, "duplicates": 0,
                               "total_uah": "1330.40"}
    again = import_file(db, coop, data)
    assert (again.imported, again.duplicates) == (0, 2)
    with db() as session:
        account = session.scalar(select(Account).where(Account.org_id == coop, Account.number == "01001"))
        assert session.scalar(select(func.sum(LedgerEntry.amount)).where(LedgerEntry.account_id == account.id)) \
            == Decimal("-1250.40")
        queued = session.scalar(select(Payment).where(Payment.account_id.is_(None)))
        resolve_unmatched(session, queued, session.scalar(select(Account).where(Account.number == "04001",
                                                                                 Account.org_id == coop)), "buh")
    # The payer's IBAN is remembered: next month a purpose without a number still finds the account.
    later = import_file(db, coop, statement(entry("80.00", "за світло", "REF-9", iban="UA22", day="2026-12-03")))
    assert later.matched == 1


def test_a_broken_file_imports_nothing(db, coop):
    broken = statement(entry("10.00", "о/р 1001", "A"), entry("-5", "о/р 1001", "B"))
    with pytest.raises(StatementError):
        import_file(db, coop, broken)
    with db() as session:
        assert session.scalar(select(func.count()).select_from(Payment)) == 0


def test_allocation_pays_the_oldest_first_and_keeps_the_rest_as_credit():
    invoices = [InvoiceDue(2, date(2026, 10, 1), date(2026, 10, 21), Decimal("300.00")),
                InvoiceDue(1, date(2026, 9, 1), date(2026, 9, 21), Decimal("200.00"))]
    allocations, credit = allocate(invoices, Decimal("250.00"), date(2026, 11, 5))
    assert [(a.invoice_id, a.allocated, a.status) for a in allocations] == [
        (1, Decimal("200.00"), "paid"), (2, Decimal("50.00"), "overdue")]
    assert credit == 0
    assert ageing(invoices, allocations, date(2026, 11, 5)) == {
        "0-30": Decimal("250.00"), "31-60": Decimal(0), "61-90": Decimal(0), "90+": Decimal(0)}
    _, extra = allocate(invoices, Decimal("600.00"), date(2026, 11, 5))
    assert extra == Decimal("100.00")


money = st.decimals(min_value="0.01", max_value="5000", places=2)


@settings(max_examples=100)
@given(amounts=st.lists(money, min_size=0, max_size=12), credit=st.decimals(min_value=0, max_value=20000, places=2))
def test_payments_equal_allocations_plus_credit(amounts, credit):
    invoices = [InvoiceDue(i, date(2026, 1 + i % 12, 1), date(2026, 1 + i % 12, 21), a) for i, a in enumerate(amounts)]
    allocations, left = allocate(invoices, credit, date(2027, 1, 1))
    assert sum((a.allocated for a in allocations), Decimal(0)) + left == credit
    assert all(a.allocated + a.outstanding == i.amount for a, i in
               zip(allocations, sorted(invoices, key=lambda x: (x.issued, x.invoice_id)), strict=True))
