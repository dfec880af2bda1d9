"""Statements into an organisation's books: matched payments on the ledger, the rest in the unmatched queue,
payer IBANs remembered, a re-import adding nothing and a broken file importing nothing."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import func, select

from cloud.models import Account, LedgerEntry, Organisation, Payment
from cloud.payments import camt053
from cloud.payments.importer import import_statement, resolve_unmatched
from cloud.payments.matching import AccountIndex
from cloud.payments.reconciliation import reconcile
from cloud.payments.statement import StatementError
from tests.cloud.conftest import setup_cooperative
from tests.cloud.payments.statements import camt053 as statement
from tests.cloud.payments.statements import entry

REGISTER = AccountIndex(["01001", "01234", "04001", "05015"])
NOVEMBER = (Path(__file__).parent / "fixtures" / "camt053_v08_november.xml").read_bytes()


def test_the_november_statement_reconciles_to_accounts_with_nothing_left_over():
    outcome = reconcile(camt053.parse(NOVEMBER, "nov.xml"), REGISTER)
    assert outcome.by_account() == {"01234": Decimal("1250.40"), "01001": Decimal("400.00"),
                                    "05015": Decimal("300.00"), "04001": Decimal("2028.60")}
    assert outcome.unmatched == [] and outcome.total == Decimal("3979.00")
    # The paying agent's IBAN paid for two accounts: it is never remembered for either.
    assert outcome.conflicting_ibans == {"UA903052992990004149123456789"}
    assert outcome.new_ibans == {"UA213223130000026007233566001": "01234", "UA113052990000026203876543210": "04001"}
    again = reconcile(camt053.parse(NOVEMBER, "nov.xml"), REGISTER,
                      existing_keys={t.key for t in camt053.parse(NOVEMBER, "nov.xml")})
    assert again.new == [] and len(again.duplicates) == 4 and again.total == 0


def test_a_payment_in_another_currency_stops_the_whole_statement():
    data = statement(entry("10.00", "о/р 1001", "A"), entry("5.00", "о/р 1001", "B").replace('Ccy="UAH"', 'Ccy="EUR"'))
    with pytest.raises(StatementError, match=r"Ntry\[2\].*currency EUR"):
        reconcile(camt053.parse(data, "eur.xml"), REGISTER, filename="eur.xml")


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
                               "total_uah": "1330.40", "reversed": 0, "reversed_uah": "0.00", "partial_refunds": 0,
                               "unlinked_reversals": 0, "conflicting_ibans": 0}
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
    with pytest.raises(StatementError, match=r"Ntry\[2\]/Amt"):
        import_file(db, coop, broken)
    with db() as session:
        assert session.scalar(select(func.count()).select_from(Payment)) == 0
