"""camt.053 statements as banks send them: booked credits only, entries with several transactions, payer and
purpose found where each version keeps them, and broken files refused with the element named."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest

from cloud.payments import camt053
from cloud.payments.formats import importer_for, parse_statement
from cloud.payments.statement import StatementError
from tests.cloud.payments.statements import camt053 as statement
from tests.cloud.payments.statements import entry

FIXTURES = Path(__file__).parent / "fixtures"


def read(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def test_a_days_statement_gives_the_booked_credits_and_nothing_else():
    found = camt053.parse(read("camt053_v08_november.xml"), "nov.xml")
    # The fee (DBIT), the pending credit (PDNG) and the reversed one (RvslInd) are not payments.
    assert [(t.amount, t.payer) for t in found] == [
        (Decimal("1250.40"), "ІВАНЕНКО ОЛЕГ ПЕТРОВИЧ"), (Decimal("400.00"), "Мороз Ганна"),
        (Decimal("300.00"), "Руденко Петро"), (Decimal("2028.60"), "Бондаренко Ольга")]
    assert sum(t.amount for t in found) == Decimal("3979.00")
    first = found[0]
    assert (first.booked, first.value_date, first.currency) == (date(2026, 11, 3), date(2026, 11, 3), "UAH")
    assert first.payer_iban == "UA213223130000026007233566001"  # spaces dropped
    assert first.bank_reference == "PB2026110300017" and first.key == "ref:PB2026110300017"
    assert first.end_to_end_id == ""  # NOTPROVIDED is no reference
    assert first.statement_iban == "UA853005280000026007012345678"


def test_one_entry_with_two_transactions_gives_two_payments_each_with_its_amount_and_key():
    _, moroz, rudenko, _ = camt053.parse(read("camt053_v08_november.xml"), "nov.xml")
    assert (moroz.amount, rudenko.amount) == (Decimal("400.00"), Decimal("300.00"))
    assert moroz.key != rudenko.key and moroz.key.startswith("ref:PB2026110300018")
    assert moroz.payer == "Мороз Ганна"  # the ultimate debtor, not the paying agent
    assert rudenko.purpose == "Оплата послуг, особовий рахунок №05015 Руденко"  # Ustrd lines joined
    assert rudenko.source.endswith("Ntry[2]/NtryDtls[1]/TxDtls[2]")


def test_structured_reference_and_end_to_end_id_are_kept():
    bondarenko = camt053.parse(read("camt053_v08_november.xml"), "nov.xml")[-1]
    assert bondarenko.structured_reference == "04001"
    assert bondarenko.end_to_end_id == "E2E-BONDARENKO-11"
    assert bondarenko.matching_text == "Комунальні платежі 04001"
    assert bondarenko.key.startswith("sha:")  # no AcctSvcrRef: the key is a hash


def test_version_02_with_text_status_amounts_in_amtdtls_and_twin_payments_without_references():
    found = camt053.parse(read("camt053_v02_legacy.xml"), "osch.xml")
    assert [t.amount for t in found] == [Decimal("250.00"), Decimal("250.00"), Decimal("99.99")]
    assert found[0].key != found[1].key  # two identical payments are two payments, not a duplicate
    assert found[2].purpose == "Готівка через касу банку, рах 12 34"  # an entry without TxDtls: AddtlNtryInf


@pytest.mark.parametrize("version", ["02", "04", "08", "10", "13"])
def test_every_namespace_version_02_to_13_is_read(version):
    data = statement(entry("10.00", "о/р 1", "R1")).replace(b"camt.053.001.08", f"camt.053.001.{version}".encode())
    assert [t.amount for t in camt053.parse(data, "v.xml")] == [Decimal("10.00")]


def test_the_importer_interface_reads_the_same_as_the_function():
    data = read("camt053_v08_november.xml")
    assert importer_for("camt053").parse(data, "nov.xml") == camt053.parse(data, "nov.xml")
    assert parse_statement(data, "nov.xml", "camt053") == camt053.parse(data, "nov.xml")


BAD_AMOUNT = "Document/BkToCstmrStmt/Stmt[1]/Ntry[2]/Amt"


@pytest.mark.parametrize(("broken", "where", "why"), [
    (b"<Document><BkToCstmrStmt><Stmt><Ntry>", "line 1", "not well-formed"),
    (b"<Document>\n<BkToCstmrStmt>\n<Stmt></Ntry>", "line 3", "mismatched tag"),
    (statement(entry("10.00", "о/р 1", "A"), entry("12,50", "о/р 1", "B")), BAD_AMOUNT, "not an amount: '12,50'"),
    (statement(entry("10.00", "о/р 1", "A"), entry("-5.00", "о/р 1", "B")), BAD_AMOUNT, "must be positive"),
    (statement(entry("10.00", "о/р 1", "A"), entry("1.005", "о/р 1", "B")), BAD_AMOUNT, "kopecks"),
    (statement(entry("10.00", "о/р 1", "A", day="2026-13-40")), "Stmt[1]/Ntry[1]/BookgDt", "not a date"),
    (statement(entry("10.00", "о/р 1", "A", cdt="CREDIT")), "Stmt[1]/Ntry[1]/CdtDbtInd", "CRDT or DBIT"),
    (statement(entry("700.00", "", "A", details=[("400.00", "о/р 1", "X", "UA1", None),
                                                 ("200.00", "о/р 2", "Y", "UA2", None)])),
     "Stmt[1]/Ntry[1]/Amt", "add up to 600.00"),
    (statement(entry("10.00", "о/р 1", "SAME"), entry("20.00", "о/р 2", "SAME")),
     "Stmt[1]/Ntry[2]", "also on a different payment at Document/BkToCstmrStmt/Stmt[1]/Ntry[1]"),
    (b'<?xml version="1.0"?><!DOCTYPE d [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;">]><Document>&b;</Document>',
     "prolog", "DTD"),
    (b'<?xml version="1.0"?><!DOCTYPE d SYSTEM "file:///etc/passwd"><Document/>', "prolog", "DTD"),
    (b'<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.052.001.08"><BkToCstmrAcctRpt/></Document>',
     "Document", "not a camt.053"),
    (b'<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.08"><GrpHdr/></Document>', "Document",
     "no BkToCstmrStmt"),
])
def test_a_broken_statement_names_the_element_and_why(broken, where, why):
    with pytest.raises(StatementError) as error:
        camt053.parse(broken, "broken.xml")
    message = str(error.value)
    assert message.startswith("broken.xml: ") and where in message and why in message, message


def test_entity_expansion_is_refused_before_any_tree_is_built():
    laughs = b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">' + b"".join(
        b'<!ENTITY lol%d "%s">' % (i, b"".join(b"&lol%s;" % (str(i - 1).encode() if i > 1 else b"") for _ in range(10)))
        for i in range(1, 10)) + b']><Document>&lol9;</Document>'
    with pytest.raises(StatementError, match="prolog"):
        camt053.parse(laughs, "lolz.xml")


@pytest.mark.parametrize(("booked", "day"), [
    ("2026-10-31T22:30:00Z", date(2026, 11, 1)),  # 00:30 on 1 November in Kyiv: November's money
    ("2026-10-31T23:30:00+02:00", date(2026, 10, 31)),
    ("2026-10-31T23:30:00", date(2026, 10, 31)),  # no offset: the bank's own day
])
def test_a_booking_time_counts_on_its_kyiv_day(booked, day):
    xml = statement(entry("100.00", "о/р 01001", "REF-1")).replace(
        b"<BookgDt><Dt>2026-11-03</Dt></BookgDt>", f"<BookgDt><DtTm>{booked}</DtTm></BookgDt>".encode())
    assert [t.booked for t in camt053.parse(xml, "day.xml")] == [day]
