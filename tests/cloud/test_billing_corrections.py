"""Estimates, true-ups, corrections and a meter replaced mid-month: an issued invoice never changes; what was
estimated or wrong is put right by a line on a later invoice that names the original."""

from __future__ import annotations

import io
from datetime import date, datetime
from decimal import Decimal

import pytest
from pypdf import PdfReader
from sqlalchemy import func, select

from cloud.accounts.organisations import create_site, create_user
from cloud.billing.corrections import CorrectionError, record_correction
from cloud.billing.document import invoice_document
from cloud.billing.errors import BillingError
from cloud.billing.invoice_pdf import render
from cloud.billing.ledger import account_balance
from cloud.models import Account, Correction, Invoice, LedgerEntry, Meter, Organisation, Tariff
from shared.calendar import from_kyiv_wall
from tests.cloud.office import account_with_meter, bill, invoice_of, month, office, read


@pytest.fixture
def three_months(db):
    """Account 01001 read by the office on the 1st of July…October: 300, 350, 400 kWh; July–September issued."""
    with db() as session:
        org, site = office(session)
        _, meter = account_with_meter(session, org, site, "01001")
        for period, value in (("2026-07", "1000"), ("2026-08", "1300"), ("2026-09", "1650"), ("2026-10", "2050")):
            read(session, meter, month(period), value, source="resident" if period == "2026-09" else "office")
    for period in ("2026-07", "2026-08", "2026-09"):
        bill(db, "TP-7", period, issue=True)
    return meter.id


def test_no_reading_is_billed_as_the_three_month_average_and_flagged(db, three_months):
    result = bill(db, "TP-7", "2026-10", issue=True)
    assert result.summary["estimated"] == 1 and not result.problems
    with db() as session:
        october = invoice_of(session, "01001", "2026-10")
        assert october.estimated and october.quantity_kwh == Decimal(350)  # (300 + 350 + 400) / 3
        [energy] = october.lines
        assert energy["estimate"] is True and "оцінка: середнє споживання за 3 міс." in energy["description"]
        assert energy["amount"] == "1690.50" and october.end_reading is None
        assert october.start_reading == Decimal("2050.000")
        document = invoice_document(session, october)
        assert document.cooperative and document.purpose.startswith("Внесок за електроенергію")
        text = " ".join(PdfReader(io.BytesIO(render([document]))).pages[0].extract_text().split())
        assert "Рахунок-повідомлення" in text and "нараховано за оцінкою" in text


def test_a_real_reading_trues_up_the_estimate_on_the_next_invoice(db, three_months):
    bill(db, "TP-7", "2026-10", issue=True)
    with db() as session:
        october = invoice_of(session, "01001", "2026-10")
        frozen = (october.total, october.lines, october.number)
        read(session, session.get(Meter, three_months), datetime(2026, 12, 1),
             "2850", source="resident")
    bill(db, "TP-7", "2026-11")
    bill(db, "TP-7", "2026-11")  # a re-run draft does not true up twice
    bill(db, "TP-7", "2026-11", issue=True)
    with db() as session:
        october = invoice_of(session, "01001", "2026-10")
        november = invoice_of(session, "01001", "2026-11")
        assert (october.total, october.lines, october.number) == frozen  # issued: never changes
        # 800 kWh from 1 Oct to 1 Dec over 61 days: the counter on 1 Nov is 2050 + 800 × 31/61 = 2456.557.
        assert november.quantity_kwh == Decimal(393) and not november.estimated
        [energy, trueup] = november.lines
        assert energy["amount"] == "1898.19"  # 393 × 4.83
        assert trueup["kind"] == "trueup" and trueup["refers_to"] == october.id
        assert f"№{october.number} за 2026-10" in trueup["description"] and trueup["quantity"] == "57"
        assert trueup["amount"] == "275.31"  # 407 real − 350 estimated = 57 kWh × 4.83
        entry = session.scalar(select(LedgerEntry).where(LedgerEntry.kind == "trueup"))
        assert (entry.corrects_invoice_id, entry.amount, entry.invoice_id) == (october.id, Decimal("275.31"),
                                                                                november.id)
        account = session.scalar(select(Account).where(Account.number == "01001"))
        # Everything billed since July equals the real 1850 kWh × 4.83: nothing created, nothing lost.
        assert account_balance(session, account.id) == Decimal("8935.50")
    bill(db, "TP-7", "2026-12")
    with db() as session:
        december = invoice_of(session, "01001", "2026-12")
        assert not any(line["kind"] == "trueup" for line in december.lines)


def test_an_account_whose_meter_was_removed_is_no_longer_billed_or_estimated(db, three_months):
    bill(db, "TP-7", "2026-10", issue=True)
    with db() as session:
        session.get(Meter, three_months).removed_at = from_kyiv_wall(datetime(2026, 11, 1))
    result = bill(db, "TP-7", "2026-11")
    assert result.invoices == 0 and result.problems == []


def test_without_any_billed_month_nothing_is_guessed(db):
    with db() as session:
        org, site = office(session)
        account_with_meter(session, org, site, "02002")
    result = bill(db, "TP-7", "2026-10")
    assert result.invoices == 0 and "no billed month to estimate from" in result.problems[0]
    with pytest.raises(BillingError, match="cannot issue 2026-10 for site TP-7: account 02002"):
        bill(db, "TP-7", "2026-10", issue=True)


def test_the_accountants_correction_goes_onto_the_next_invoice_and_refers_to_the_original(app, db, three_months):
    with db() as session:
        org = session.scalar(select(Organisation))
        august = invoice_of(session, "01001", "2026-08")
        frozen = (august.total, august.lines)
        with pytest.raises(CorrectionError, match="not an issued invoice"):
            record_correction(session, org, "999999", Decimal("-1"), "typo", "buh")
        with pytest.raises(CorrectionError, match="more than two decimals"):
            record_correction(session, org, august.number, Decimal("-1.005"), "typo", "buh")
        with pytest.raises(CorrectionError, match="say why"):
            record_correction(session, org, august.number, Decimal("-1"), " ", "buh")
    runner = app.test_cli_runner()
    result = runner.invoke(args=["correct", "--org", str(org.id), "--invoice", august.number, "--amount=-120.75",
                                 "--kwh=-25", "--reason", "лічильник повірено: завищував покази", "--json"])
    assert result.exit_code == 0, result.output
    bill(db, "TP-7", "2026-10")
    bill(db, "TP-7", "2026-10")  # the draft replaced: the correction is still there once
    with db() as session:
        [line] = [x for x in invoice_of(session, "01001", "2026-10").lines if x["kind"] == "correction"]
        assert line["amount"] == "-120.75" and line["refers_to"] == august.id
        assert f"перерахунок за рахунком №{august.number} за 2026-08: лічильник повірено" in line["description"]
        assert session.scalar(select(func.count()).select_from(LedgerEntry).where(
            LedgerEntry.kind == "correction")) == 0  # a draft charges nothing
    bill(db, "TP-7", "2026-10", issue=True)
    with db() as session:
        october = invoice_of(session, "01001", "2026-10")
        entry = session.scalar(select(LedgerEntry).where(LedgerEntry.kind == "correction"))
        assert (entry.amount, entry.corrects_invoice_id, entry.invoice_id) == (Decimal("-120.75"), august.id,
                                                                               october.id)
        assert session.scalar(select(Correction.applied_invoice_id)) == october.id
        august = invoice_of(session, "01001", "2026-08")
        assert (august.total, august.lines) == frozen
        # The correction moved the account's balance by exactly its amount.
        assert october.total == Decimal("1690.50") - Decimal("120.75")


def test_a_meter_replaced_mid_month_adds_both_segments(db):
    with db() as session:
        org, site = office(session)
        _, old = account_with_meter(session, org, site, "03003", "OLD-1")
        old.removed_at = from_kyiv_wall(datetime(2026, 10, 15, 12))
        _, new = account_with_meter(session, org, site, "03003", "NEW-1", installed_at=datetime(2026, 10, 15, 12))
        read(session, old, datetime(2026, 10, 1), "5000")
        read(session, old, datetime(2026, 10, 15, 12), "5200")  # the removal reading
        read(session, new, datetime(2026, 10, 15, 12), "0")  # the new meter starts at zero
        read(session, new, datetime(2026, 11, 1), "180")
        read(session, new, datetime(2026, 12, 1), "400")
    bill(db, "TP-7", "2026-10", issue=True)
    bill(db, "TP-7", "2026-11")
    with db() as session:
        october = invoice_of(session, "03003", "2026-10")
        assert october.quantity_kwh == Decimal(380) and october.total == Decimal("1835.40")  # 380 × 4.83
        assert [(m["meter"], m["start"], m["end"], m["quantity"]) for m in october.meters] == [
            ("OLD-1", "5000", "5200", "200"), ("NEW-1", "0", "180", "180")]
        assert invoice_of(session, "03003", "2026-11").quantity_kwh == Decimal(220)  # the new meter alone


def test_a_reading_lower_than_the_one_before_is_named_and_nothing_is_billed(db):
    with db() as session:
        org, site = office(session)
        _, meter = account_with_meter(session, org, site, "04004", "M-44")
        read(session, meter, datetime(2026, 10, 1), "7000")
        read(session, meter, datetime(2026, 10, 20), "6900", source="resident")
        read(session, meter, datetime(2026, 11, 1), "7300")
        _, fine = account_with_meter(session, org, site, "04005", "M-45")
        read(session, fine, datetime(2026, 10, 1), "100")
        read(session, fine, datetime(2026, 11, 1), "200")
    with pytest.raises(BillingError, match=r"meter M-44: the reading of 2026-10-20 00:00 \(6900.000, submitted by "
                                           r"the resident\) is lower than the one before it \(7000.000"):
        bill(db, "TP-7", "2026-10")
    with db() as session:
        assert session.scalar(select(func.count()).select_from(Invoice)) == 0  # not even the good account


def test_of_several_falls_the_first_by_meter_and_time_is_named_and_other_registers_are_no_fall(db):
    with db() as session:
        org, site = office(session)
        _, later = account_with_meter(session, org, site, "05005", "M-B")
        read(session, later, datetime(2026, 10, 1), "500")
        read(session, later, datetime(2026, 10, 5), "400")  # falls first in time, but M-B sorts after M-A
        read(session, later, datetime(2026, 11, 1), "600")
        _, first = account_with_meter(session, org, site, "05006", "M-A")
        read(session, first, datetime(2026, 10, 1), "900")
        read(session, first, datetime(2026, 10, 25), "800")
        read(session, first, datetime(2026, 10, 28), "700")
        read(session, first, datetime(2026, 11, 1), "1000")
        other = create_site(session, org, "TP-8")
        _, meter = account_with_meter(session, org, other, "06006", "M-V")
        read(session, meter, datetime(2026, 10, 1), "100")
        read(session, meter, datetime(2026, 10, 15), "230.0", register="voltage_l1")  # not a counter
        read(session, meter, datetime(2026, 11, 1), "150")
    with pytest.raises(BillingError, match=r"meter M-A: the reading of 2026-10-25 00:00 \(800.000"):
        bill(db, "TP-7", "2026-10")
    result = bill(db, "TP-8", "2026-10")
    assert result.invoices == 1 and not result.problems
    with db() as session:
        assert invoice_of(session, "06006", "2026-10").quantity_kwh == Decimal(50)


def test_the_accountant_records_a_correction_from_the_billing_page(client, db, three_months):
    with db() as session:
        org = session.scalar(select(Organisation))
        create_user(session, "buh@coop.ua", "correct horse battery", "accountant", org)
        create_user(session, "board@coop.ua", "correct horse battery", "manager", org)
        august = invoice_of(session, "01001", "2026-08").number
    client.post("/login", data={"email": "board@coop.ua", "password": "correct horse battery"})
    assert "Перерахунок за виставленим рахунком" not in client.get("/sites/TP-7/billing").get_data(as_text=True)
    assert client.post("/sites/TP-7/corrections", data={"invoice": august, "amount": "-10",
                                                         "reason": "x"}).status_code == 403
    client.get("/logout")
    client.post("/login", data={"email": "buh@coop.ua", "password": "correct horse battery"})
    wrong = client.post("/sites/TP-7/corrections", data={"invoice": "777", "amount": "-10", "reason": "x"},
                        follow_redirects=True).get_data(as_text=True)
    assert "Рахунок №777 не є виставленим рахунком" in wrong  # the page's language: Ukrainian by default
    page = client.post("/sites/TP-7/corrections", data={"invoice": august, "amount": "-45,20", "kwh": "-10",
                                                        "reason": "помилка в показнику", "period": "2026-10"},
                       follow_redirects=True).get_data(as_text=True)
    assert "Перерахунок записано" in page and "помилка в показнику" in page and "−45,20" in page.replace("-", "−")
    bill(db, "TP-7", "2026-10")
    with db() as session:
        [line] = [x for x in invoice_of(session, "01001", "2026-10").lines if x["kind"] == "correction"]
        assert line["amount"] == "-45.20" and line["quantity"] == "-10" and line["price"] == "4.52"


def test_another_organisation_can_neither_see_nor_correct_the_invoice(client, db, three_months):
    with db() as session:
        august = invoice_of(session, "01001", "2026-08").number
        other, _ = office(session, name="ОК «Інший»", code="TP-9")
        create_user(session, "buh@other.ua", "correct horse battery", "accountant", other)
        with pytest.raises(CorrectionError, match="not an issued invoice of ОК «Інший»"):
            record_correction(session, other, august, Decimal("-10"), "чужий рахунок", "buh@other.ua")
    client.post("/login", data={"email": "buh@other.ua", "password": "correct horse battery"})
    assert client.post("/sites/TP-7/corrections", data={"invoice": august, "amount": "-10",
                                                         "reason": "x"}).status_code == 404
    with db() as session:
        assert session.scalar(select(func.count()).select_from(Correction)) == 0


def test_a_segment_whose_grid_has_a_gap_is_named(db):

    with db() as session:
        org, site = office(session, kind="supplier", name="ТОВ «Енергозбут»", code="PS-9", price="")
        session.add_all([Tariff(org_id=org.id, kind="supplier", segment="business", purchase_price=Decimal("6.5"),
                                valid_from=date(2026, 1, 1), valid_to=date(2026, 10, 10)),
                         Tariff(org_id=org.id, kind="supplier", segment="business", purchase_price=Decimal("6.9"),
                                valid_from=date(2026, 10, 20))])
        _, meter = account_with_meter(session, org, site, "B-1", category="business")
        read(session, meter, month("2026-10"), "0")
        read(session, meter, month("2026-11"), "100")
    with pytest.raises(BillingError, match=r"segment business: gap between tariffs #\d+ від 01.01.2026 \(business\) "
                                           r"\(to 2026-10-10\) and #\d+ від 20.10.2026"):
        bill(db, "PS-9", "2026-10")
