"""Money that goes back: a bank reversal (camt.053 RvslInd), a refund to the payer, a LiqPay «reversed» and an
accountant's storno each undo exactly one payment, once — the invoice it paid owes again (partly paid or
overdue), the account's balance is its ledger, and a statement imported twice changes nothing."""

from __future__ import annotations

import json
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import func, select

from cloud.accounts.organisations import create_user
from cloud.models import (
    Account,
    BillingRun,
    CardOrder,
    Invoice,
    LedgerEntry,
    Organisation,
    Payment,
    PaymentReversal,
    Site,
)
from cloud.payments import camt053
from cloud.payments.allocation import OVERDUE, PAID, PARTLY_PAID
from cloud.payments.book import invoice_statuses
from cloud.payments.importer import import_statement
from cloud.payments.liqpay import encode_data, sign
from cloud.payments.queue import unmatched_payments
from cloud.payments.reversals import ReversalError, apply_reversal
from tests.cloud.conftest import setup_cooperative
from tests.cloud.payments.statements import camt053 as statement
from tests.cloud.payments.statements import entry

PAYER = "UA213223130000026007233566001"
SUPPLIER = "UA493052990000026005005000001"  # the cooperative's electricity supplier
OURS = "UA853005280000026007012345678"  # the cooperative's account (statements.py)
PUBLIC, PRIVATE = "sandbox_i000000001", "sandbox_private_key_of_the_cooperative"


def debit(amount, ref, creditor_iban, purpose="Повернення коштів", reversal=False, day="2026-11-05",
          creditor="Іваненко Олег", e2e="NOTPROVIDED"):
    """A booked DBIT entry as a bank writes it: the money goes to the creditor."""
    return f"""<Ntry><Amt Ccy="UAH">{amount}</Amt><CdtDbtInd>DBIT</CdtDbtInd>{'<RvslInd>true</RvslInd>' if reversal else ''}
      <Sts><Cd>BOOK</Cd></Sts><BookgDt><Dt>{day}</Dt></BookgDt><ValDt><Dt>{day}</Dt></ValDt>
      <AcctSvcrRef>{ref}</AcctSvcrRef><NtryDtls><TxDtls><Refs><EndToEndId>{e2e}</EndToEndId></Refs>
      <RltdPties><Dbtr><Pty><Nm>ОК Сосновий Бір</Nm></Pty></Dbtr><DbtrAcct><Id><IBAN>{OURS}</IBAN></Id></DbtrAcct>
      <Cdtr><Pty><Nm>{creditor}</Nm></Pty></Cdtr><CdtrAcct><Id><IBAN>{creditor_iban}</IBAN></Id></CdtrAcct></RltdPties>
      <RmtInf><Ustrd>{purpose}</Ustrd></RmtInf></TxDtls></NtryDtls></Ntry>"""


@pytest.fixture
def coop(db, seed_scenario):
    """The seed's cooperative with two issued invoices on 01001: September 300.00 (due 20.10), October 500.00
    (due 20.11)."""
    org_id, site_code = setup_cooperative(db, seed_scenario)
    with db() as session:
        site = session.scalar(select(Site).where(Site.code == site_code))
        account = session.scalar(select(Account).where(Account.org_id == org_id, Account.number == "01001"))
        for period, total, issued, due in (("2026-09", "300.00", datetime(2026, 10, 1), date(2026, 10, 20)),
                                           ("2026-10", "500.00", datetime(2026, 11, 1), date(2026, 11, 20))):
            run = BillingRun(org_id=org_id, site_id=site.id, period=period, status="issued", issued_at=issued)
            session.add(run)
            session.flush()
            invoice = Invoice(org_id=org_id, run_id=run.id, account_id=account.id, period=period,
                              number=period.replace("-", ""), status="issued", issued_at=issued, due_date=due,
                              quantity_kwh=Decimal(100), total=Decimal(total), lines=[])
            session.add(invoice)
            session.flush()
            session.add(LedgerEntry(org_id=org_id, account_id=account.id, kind="charge", amount=Decimal(total),
                                    period=period, invoice_id=invoice.id, created_at=issued))
        return {"org": org_id, "account": account.id}


def run_import(db, coop, data, name="stmt.xml", fmt="camt053"):
    with db() as session:
        return import_statement(session, session.get(Organisation, coop["org"]), data, name, fmt, "buh")


def book(db, coop, today=date(2026, 11, 10)):
    with db() as session:
        statuses = [(a.allocated, a.status) for a in invoice_statuses(session, coop["org"], coop["account"], today)]
        balance = session.scalar(select(func.sum(LedgerEntry.amount)).where(LedgerEntry.account_id == coop["account"]))
        return statuses, balance


def test_a_bank_reversal_undoes_its_payment_once_and_the_invoice_owes_again(db, coop):
    run_import(db, coop, statement(entry("300.00", "о/р 01001", "NOV-1", day="2026-11-03"),
                                   entry("200.00", "о/р 01001", "NOV-2", day="2026-11-04")))
    assert book(db, coop) == ([(Decimal("300.00"), PAID), (Decimal("200.00"), PARTLY_PAID)], Decimal("300.00"))
    # The bank takes the second payment back (the payer's bank recalled it): DBIT with RvslInd, same reference.
    reversal = statement(debit("200.00", "NOV-2", PAYER, "Сторно: о/р 01001", reversal=True, day="2026-11-06"))
    first = run_import(db, coop, reversal, "nov-06.xml")
    assert (first.reversed, first.reversed_total, first.unlinked_reversals) == (1, Decimal("200.00"), 0)
    assert book(db, coop) == ([(Decimal("300.00"), PAID), (Decimal("0.00"), "open")], Decimal("500.00"))
    assert book(db, coop, today=date(2026, 11, 25))[0][1] == (Decimal("0.00"), OVERDUE)
    again = run_import(db, coop, reversal, "nov-06.xml")
    assert again.reversed == 0 and book(db, coop)[1] == Decimal("500.00")
    with db() as session:
        undone = session.scalar(select(PaymentReversal))
        assert (undone.kind, undone.amount, undone.booked) == ("reversal", Decimal("200.00"), date(2026, 11, 6))
        assert session.get(Payment, undone.payment_id).key == "ref:NOV-2"
        # «paid» in the reports nets the reversal: it is a payment-kind entry going the other way.
        assert session.scalar(select(func.sum(LedgerEntry.amount)).where(
            LedgerEntry.account_id == coop["account"], LedgerEntry.kind == "payment")) == Decimal("-300.00")


def test_reversing_the_older_payment_leaves_the_newer_one_where_it_was(db, coop):
    run_import(db, coop, statement(entry("300.00", "о/р 01001", "A-1", day="2026-11-03"),
                                   entry("500.00", "о/р 01001", "A-2", day="2026-11-04")))
    run_import(db, coop, statement(debit("300.00", "A-1", PAYER, reversal=True, day="2026-11-12")), "b.xml")
    # September owes again and is past due; October stays paid by the second payment.
    assert book(db, coop, date(2026, 11, 12)) == ([(Decimal("0.00"), OVERDUE), (Decimal("500.00"), PAID)],
                                                  Decimal("300.00"))


def test_a_refund_to_the_payer_undoes_the_overpayment_and_other_debits_are_left_alone(db, coop):
    run_import(db, coop, statement(entry("800.00", "о/р 01001", "R-1", day="2026-11-03"),
                                   entry("150.00", "о/р 01001 переплата", "R-2", day="2026-11-04")))
    assert book(db, coop)[1] == Decimal("-150.00")  # credit (переплата)
    refunds = statement(debit("150.00", "OUT-1", PAYER, "Повернення помилково сплачених коштів"),
                        debit("42000.00", "OUT-2", SUPPLIER, "Оплата за електроенергію, жовтень",
                              creditor="ТОВ Енергопостач"))
    result = run_import(db, coop, refunds, "out.xml")
    assert (result.reversed, result.reversed_total, result.imported) == (1, Decimal("150.00"), 0)
    assert book(db, coop) == ([(Decimal("300.00"), PAID), (Decimal("500.00"), PAID)], Decimal("0.00"))
    with db() as session:
        assert [(r.kind, r.counterpart_iban) for r in session.scalars(select(PaymentReversal))] == [
            ("refund", PAYER)]


def test_a_reversal_in_the_same_statement_takes_a_queued_payment_out_of_the_queue(db, coop):
    result = run_import(db, coop, statement(entry("80.00", "за світло", "Q-1", iban="UA22"),
                                            debit("80.00", "Q-1", "UA22", reversal=True)))
    assert (result.unmatched, result.reversed) == (1, 1)

    with db() as session:
        assert unmatched_payments(session, coop["org"]) == []
        assert session.scalar(select(func.count()).select_from(LedgerEntry).where(LedgerEntry.kind == "payment")) == 0


def test_a_reversal_the_books_cannot_place_waits_for_an_accountant(app, client, db, coop):
    run_import(db, coop, statement(entry("120.00", "о/р 01001", "W-1", iban="", day="2026-11-03"),
                                   entry("120.00", "о/р 01001", "W-2", iban="", day="2026-11-04")))
    result = run_import(db, coop, statement(debit("120.00", "REV-9", "", reversal=True)), "rev.xml")
    assert (result.reversed, result.unlinked_reversals) == (0, 1)
    with db() as session:
        create_user(session, "buh@coop.ua", "correct horse battery", "accountant",
                    session.get(Organisation, coop["org"]))
        waiting = session.scalar(select(PaymentReversal))
        chosen = session.scalar(select(Payment).where(Payment.key == "ref:W-2"))
    client.post("/login", data={"email": "buh@coop.ua", "password": "correct horse battery"})
    page = client.get("/payments/unmatched").get_data(as_text=True)
    assert "Сторно і повернення без оплати" in page and f'value="{chosen.id}"' in page
    response = client.post(f"/payments/reversals/{waiting.id}", data={"payment": chosen.id}, follow_redirects=True)
    assert f"Оплату {chosen.id} сторновано" in response.get_data(as_text=True)
    assert book(db, coop)[1] == Decimal("680.00")
    assert client.post(f"/payments/reversals/{waiting.id}", data={"payment": chosen.id}).status_code == 404


def test_a_refund_that_fits_several_payments_is_not_guessed(db, coop):
    run_import(db, coop, statement(entry("100.00", "о/р 01001", "M-1", day="2026-11-01"),
                                   entry("100.00", "о/р 01001", "M-2", day="2026-11-02")))
    result = run_import(db, coop, statement(debit("100.00", "OUT-7", PAYER)), "out.xml")
    assert (result.reversed, result.unlinked_reversals) == (0, 1)
    assert book(db, coop)[1] == Decimal("600.00")


def test_a_privatbank_debit_row_to_the_payer_is_a_refund(db, coop):
    header = "ЄДРПОУ;МФО;Рахунок;Валюта;Номер документу;Дата операцiї;МФО банку;Назва банку;" \
             "Рахунок кореспондента;ЄДРПОУ кореспондента;Кореспондент;Сума;Призначення платежу;\n"
    rows = (f"12345678;305299;{OURS};UAH;11;03.11.2026;322313;УКРСIББАНК;{PAYER};;Iваненко О.;450.00;о/р 01001;\n"
            f"12345678;305299;{OURS};UAH;12;05.11.2026;322313;УКРСIББАНК;{PAYER};;Iваненко О.;-450.00;"
            "Повернення коштiв;\n")
    result = run_import(db, coop, (header + rows).encode("cp1251"), "privat.csv", "csv:privatbank-business")
    assert (result.imported, result.reversed) == (1, 1)
    assert book(db, coop)[1] == Decimal("800.00")


def test_the_parser_keeps_debits_apart_and_skips_a_credit_reversal(coop):
    contents = camt053.parse_all(statement(
        entry("10.00", "о/р 01001", "C-1"),
        debit("10.00", "C-1", PAYER, reversal=True),
        entry("5.00", "returned refund", "C-2", reversal=True)), "s.xml")
    assert [t.key for t in contents.incoming] == ["ref:C-1"]
    assert [(t.key, t.direction, t.payer_iban) for t in contents.outgoing] == [("reversal:ref:C-1", "reversal", PAYER)]


def test_a_liqpay_reversal_callback_undoes_the_card_payment_once(client, db, coop):
    with db() as session:
        org = session.get(Organisation, coop["org"])
        org.liqpay_public_key, org.liqpay_private_key = PUBLIC, PRIVATE
        session.add(CardOrder(org_id=org.id, order_id="01001-ab12", account_id=coop["account"],
                              amount=Decimal("300.00")))

    def callback(status):
        data = encode_data({"order_id": "01001-ab12", "status": status, "amount": 300.0, "currency": "UAH",
                            "public_key": PUBLIC, "payment_id": 777})
        response = client.post("/api/v1/payments/liqpay", data={"data": data, "signature": sign(PRIVATE, data)})
        return response.status_code, response.get_json()["status"]

    assert callback("success") == (200, "paid")
    statuses, balance = book(db, coop)
    assert statuses[0] == (Decimal("300.00"), PAID) and balance == Decimal("500.00")
    assert callback("reversed") == (200, "reversed")
    assert callback("reversed") == (200, "duplicate")  # LiqPay retries
    assert book(db, coop, date(2026, 11, 10)) == ([(Decimal("0.00"), OVERDUE), (Decimal("0.00"), "open")],
                                                  Decimal("800.00"))
    with db() as session:
        assert session.scalar(select(func.count()).select_from(PaymentReversal)) == 1
        assert session.scalar(select(CardOrder)).status == "reversed"


def test_an_accountant_reverses_a_cash_entry_made_in_error(app, db, coop):
    runner = app.test_cli_runner()
    booked = runner.invoke(args=["cash", "--org", str(coop["org"]), "--account", "01001", "--amount", "300",
                                 "--date", "2026-11-05", "--receipt", "КВ-1", "--json"])
    payment = __import__("json").loads(booked.output)["payment"]
    args = ["reverse-payment", "--org", str(coop["org"]), "--payment", str(payment), "--date", "2026-11-06",
            "--reason", "внесено не на той рахунок"]
    assert "reversed" in runner.invoke(args=args).output
    assert "already reversed" in runner.invoke(args=args).output
    assert book(db, coop)[1] == Decimal("800.00")


@pytest.mark.parametrize(("fixture", "fmt", "incoming", "refunded"), [
    ("monobank_business_november.csv", "csv:monobank-business", {"01001": "-400.00", "05015": "-1300.00"},
     {"01001": "0.00"}),
    ("privatbank_business_november.csv", "csv:privatbank-business", {"04001": "-2028.60", "05015": "-300.00"}, {}),
])
def test_a_bank_export_in_its_real_layout_imports_from_the_command_line(app, db, coop, fixture, fmt, incoming,
                                                                         refunded):
    path = Path(__file__).parent / "fixtures" / fixture
    runner = app.test_cli_runner()
    first = runner.invoke(args=["import-statement", "--org", str(coop["org"]), str(path), "--format", fmt, "--json"])
    assert first.exit_code == 0, first.output
    # Each export refunds one payer: monobank Мороз's 400.00; PrivatBank Іваненко's 1 250.40, which named an
    # account the register does not have («о/р 1234») and so leaves the unmatched queue instead.
    assert json.loads(first.output)["reversed"] == 1
    again = json.loads(runner.invoke(args=["import-statement", "--org", str(coop["org"]), str(path), "--format", fmt,
                                           "--json"]).output)
    assert (again["imported"], again["reversed"]) == (0, 0)
    with db() as session:
        def balance(number):
            found = session.scalar(select(Account).where(Account.org_id == coop["org"], Account.number == number))
            paid = session.scalar(select(func.coalesce(func.sum(LedgerEntry.amount), 0)).where(
                LedgerEntry.account_id == found.id, LedgerEntry.kind == "payment"))
            return f"{Decimal(paid):.2f}"

        assert {n: balance(n) for n in incoming} == {**incoming, **refunded}

        assert unmatched_payments(session, coop["org"]) == []


def test_the_account_page_shows_each_invoice_status_and_a_storno_makes_the_invoice_owe_again(app, client, db, coop):
    run_import(db, coop, statement(entry("300.00", "о/р 01001", "S-1", day="2026-10-05"),
                                   entry("200.00", "о/р 01001", "S-2", day="2026-11-04")))
    with db() as session:
        org = session.get(Organisation, coop["org"])
        create_user(session, "buh@coop.ua", "correct horse battery", "accountant", org)
        create_user(session, "head@coop.ua", "correct horse battery", "manager", org)
        second = session.scalar(select(Payment).where(Payment.key == "ref:S-2"))
    client.post("/login", data={"email": "buh@coop.ua", "password": "correct horse battery"})
    page = client.get("/payments/account?number=1001").get_data(as_text=True)
    # September is paid; October (due 20.11.2026) has 200.00 of 500.00 and is past due.
    assert 'status-paid">оплачено' in page and 'status-elevated">прострочено' in page
    assert "Залишок 300,00" in page
    assert client.post(f"/payments/{second.id}/reverse", data={"reason": ""}).status_code == 302
    assert "Вкажіть причину" in client.get("/payments/account?number=01001").get_data(as_text=True)
    response = client.post(f"/payments/{second.id}/reverse", data={"reason": "внесено не тому абоненту"},
                           follow_redirects=True)
    body = response.get_data(as_text=True)
    assert "Оплату 200.00 грн сторновано" in body and "внесено не тому абоненту" in body
    assert "Залишок 500,00" in body  # October owes all of it again
    client.post(f"/payments/{second.id}/reverse", data={"reason": "ще раз"})
    assert book(db, coop)[1] == Decimal("500.00")
    with db() as session:
        assert session.scalar(select(func.count()).select_from(PaymentReversal)) == 1
    assert client.get("/payments/account?number=7777").status_code == 404
    client.post("/logout")
    client.post("/login", data={"email": "head@coop.ua", "password": "correct horse battery"})
    assert client.get("/payments/account?number=01001").status_code == 403


def test_the_import_command_says_what_the_statement_undid(app, db, coop, tmp_path):
    path = tmp_path / "nov.xml"
    path.write_bytes(statement(entry("300.00", "о/р 01001", "T-1"), debit("300.00", "T-1", PAYER, reversal=True),
                               debit("55.00", "T-9", "", reversal=True)))
    shown = app.test_cli_runner().invoke(args=["import-statement", "--org", str(coop["org"]), str(path)])
    assert shown.exit_code == 0, shown.output
    assert "1 imported (1 matched, 0 unmatched)" in shown.output
    assert "1 reversed (300.00 UAH); 1 reversals to link (balans cloud unmatched)" in shown.output


def test_part_of_an_overpayment_sent_back_is_a_partial_refund_of_that_payment(db, coop):
    """1 500.00 paid on 800.00 owed: 700.00 credit. The cooperative sends 300.00 back, then 400.00: each is a
    refund of part of the payment, the credit goes down to 0.00, both invoices stay paid."""
    run_import(db, coop, statement(entry("1500.00", "о/р 01001", "P-1", day="2026-11-03")))
    assert book(db, coop)[1] == Decimal("-700.00")
    first = run_import(db, coop, statement(debit("300.00", "OUT-P1", PAYER, "Повернення переплати")), "p1.xml")
    assert (first.reversed, first.reversed_total, first.partial_refunds, first.unlinked_reversals) == (
        1, Decimal("300.00"), 1, 0)
    assert first.as_json()["partial_refunds"] == 1
    assert book(db, coop) == ([(Decimal("300.00"), PAID), (Decimal("500.00"), PAID)], Decimal("-400.00"))
    again = run_import(db, coop, statement(debit("300.00", "OUT-P1", PAYER, "Повернення переплати")), "p1.xml")
    assert again.reversed == 0 and book(db, coop)[1] == Decimal("-400.00")  # the same statement: nothing more
    run_import(db, coop, statement(debit("400.00", "OUT-P2", PAYER, "Повернення переплати", day="2026-11-06")), "p2.xml")
    assert book(db, coop) == ([(Decimal("300.00"), PAID), (Decimal("500.00"), PAID)], Decimal("0.00"))
    with db() as session:
        payment = session.scalar(select(Payment).where(Payment.key == "ref:P-1"))
        assert [(r.kind, r.amount, r.payment_id) for r in session.scalars(
            select(PaymentReversal).order_by(PaymentReversal.id))] == [
            ("refund", Decimal("300.00"), payment.id), ("refund", Decimal("400.00"), payment.id)]
        memo = session.scalars(select(LedgerEntry.memo).where(LedgerEntry.amount == Decimal("300.00"),
                                                              LedgerEntry.kind == "payment")).one()
        assert memo.startswith("Повернення платнику 05.11.2026: частина (300.00 грн) оплати 03.11.2026")


def test_a_refund_beyond_the_credit_or_the_payment_waits_for_an_accountant(db, coop):
    run_import(db, coop, statement(entry("900.00", "о/р 01001", "P-2", day="2026-11-03")))  # 100.00 credit
    result = run_import(db, coop, statement(debit("250.00", "OUT-P3", PAYER)), "p3.xml")
    # More than the account has to give back: not booked, kept for an accountant (not the cooperative's own).
    assert (result.reversed, result.unlinked_reversals) == (0, 1)
    assert book(db, coop)[1] == Decimal("-100.00")
    with db() as session:
        payment = session.scalar(select(Payment).where(Payment.key == "ref:P-2"))
        too_much = PaymentReversal(org_id=coop["org"], key="hand-test", kind="refund", booked=date(2026, 11, 7),
                                   amount=Decimal("950.00"))
        with pytest.raises(ReversalError, match=r"payment \d+ is 900.00 UAH, the reversal 950.00|left to refund"):
            apply_reversal(session, too_much, payment, "buh")
        whole = PaymentReversal(org_id=coop["org"], key="hand-test-2", kind="reversal", booked=date(2026, 11, 7),
                                amount=Decimal("100.00"))
        with pytest.raises(ReversalError, match="only a whole payment is reversed"):
            apply_reversal(session, whole, payment, "buh")  # a bank reversal is never partial
        session.rollback()


def test_a_refund_to_an_iban_that_paid_into_two_accounts_is_not_guessed(db, coop):
    with db() as session:
        other = session.scalar(select(Account).where(Account.org_id == coop["org"], Account.number == "01002"))
        other_id = other.id
    run_import(db, coop, statement(entry("900.00", "о/р 01001", "S-1", day="2026-11-03"),
                                   entry("50.00", "о/р 01002", "S-2", day="2026-11-03")))
    result = run_import(db, coop, statement(debit("30.00", "OUT-S", PAYER)), "s.xml")
    assert (result.reversed, result.unlinked_reversals) == (0, 1)
    with db() as session:
        assert session.scalar(select(func.sum(LedgerEntry.amount)).where(
            LedgerEntry.account_id == other_id)) == Decimal("-50.00")
