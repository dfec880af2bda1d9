"""CSV exports through a saved mapping: the two shipped layouts as PrivatBank and monobank write them, debit rows
kept apart, and a broken cell named by line and column."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from cloud.payments.csv_statement import (
    CsvImporter,
    CsvMapping,
    MappingError,
    parse,
    parse_all,
    parse_amount,
    shipped_mappings,
)
from cloud.payments.formats import parse_statement
from cloud.payments.matching import AccountIndex, match_account
from cloud.payments.statement import StatementError

FIXTURES = Path(__file__).parent / "fixtures"
PRIVAT = CsvMapping.load("privatbank-business")
MONO = CsvMapping.load("monobank-business")
# Two generic layouts (test mappings next to the fixtures): separate Дебет / Кредит columns under a title block,
# and one signed amount with a bank id.
DEBIT_CREDIT = CsvMapping.load(str(FIXTURES / "debit-credit.toml"))
SIGNED = CsvMapping.load(str(FIXTURES / "signed-amount.toml"))


def test_both_layouts_are_shipped():
    assert {"privatbank-business", "monobank-business"} <= set(shipped_mappings())


def test_a_privatbank_business_export_as_the_bank_writes_it():
    contents = parse_all((FIXTURES / "privatbank_business_november.csv").read_bytes(), "privat.csv", PRIVAT)
    assert [(t.amount, t.payer, t.source) for t in contents.incoming] == [
        (Decimal("1250.40"), "IВАНЕНКО ОЛЕГ ПЕТРОВИЧ", "line 2"),  # the bank's Latin «I», as written
        (Decimal("2028.60"), "Бондаренко Ольга Петрiвна", "line 4"),
        (Decimal("300.00"), "Руденко Петро", "line 5")]
    first, second, third = contents.incoming
    assert first.payer_iban == "UA213223130000026007233566001" and first.key.startswith("sha:")
    assert second.purpose == 'Оплата "за свiтло" ос.рахунок №04001 за жовтень'  # quotes are plain text
    assert third.purpose == '"Сосновий Бiр" рахунок 5015 Руденко'
    # Money out: the bank's fee, the supplier, and a refund to Іваненко — «-70 000.00» read whole.
    assert [(t.amount, t.payer_iban, t.direction) for t in contents.outgoing] == [
        (Decimal("15.00"), "UA903052992990004149123456789", "out"),
        (Decimal("70000.00"), "UA493052990000026005005000001", "out"),
        (Decimal("1250.40"), "UA213223130000026007233566001", "out")]
    # Matching reads the Latin «i» as Ukrainian: «ос.рахунок №04001» finds the account.

    assert match_account(second.purpose, "", AccountIndex(["04001"])).account == "04001"


def test_a_monobank_business_export_as_the_bank_writes_it():
    contents = CsvImporter(MONO).parse_all((FIXTURES / "monobank_business_november.csv").read_bytes(), "mono.csv")
    assert [(t.amount, t.payer, t.purpose, t.source) for t in contents.incoming] == [
        (Decimal("400.00"), "Мороз Ганна Іванівна", "ос.рах. 001001; Мороз", "line 7"),  # header wrapped: lines 3–6
        # A paying agent's transfer: the actual payer (фактичний платник) is who paid.
        (Decimal("1300.00"), "Руденко Петро Іванович", "рахунок 5015 за жовтень", "line 9")]
    assert [(t.amount, t.payer_iban) for t in contents.outgoing] == [
        (Decimal("120.00"), "UA203220010000026000300054321"), (Decimal("400.00"), "UA093220010000026208300012345")]
    again = CsvImporter(MONO).parse_all((FIXTURES / "monobank_business_november.csv").read_bytes(), "mono.csv")
    assert [t.key for t in again.incoming] == [t.key for t in contents.incoming]


def test_a_comma_separated_monobank_export_without_the_optional_columns_reads_too():
    data = ("Дата операції,Вид операції (дебет/кредит),Деталі операції,Контрагент,IBAN контрагента,"
            "Сума в валюті рахунку\n03.11.2026,Кредит,о/р 1001,Мороз,UA09,\"1,300.00\"\n").encode()
    [found] = parse(data, "mono.csv", MONO)
    assert (found.amount, found.payer) == (Decimal("1300.00"), "Мороз")


@pytest.mark.parametrize(("direction", "amount", "why"), [
    ("Кредит", "-5.00", "the sign says the other direction"), ("Дебет", "5.00", "the sign says the other direction"),
    ("Переказ", "5.00", "neither кредит/credit/c nor дебет/debit/d"),
])
def test_a_monobank_row_whose_direction_and_sign_disagree_stops_the_import(direction, amount, why):
    data = (f"Дата операції;Вид операції (дебет/кредит);Деталі операції;Контрагент;IBAN контрагента;"
            f"Сума в валюті рахунку\n03.11.2026;{direction};о/р 1001;Мороз;UA09;{amount}\n").encode()
    with pytest.raises(StatementError, match=f"line 2, column .*{why}"):
        parse(data, "mono.csv", MONO)


def test_the_generic_debit_credit_layout_gives_the_credit_rows():
    found = parse((FIXTURES / "debit_credit_november.csv").read_bytes(), "privat.csv", DEBIT_CREDIT)
    assert [(t.amount, t.payer, t.source) for t in found] == [
        (Decimal("1250.40"), "ІВАНЕНКО ОЛЕГ ПЕТРОВИЧ", "line 5"),  # the title block above the table is skipped
        (Decimal("2028.60"), "Бондаренко Ольга Петрівна", "line 7")]  # line 6, the bank fee, is a debit
    assert found[0].payer_iban == "UA213223130000026007233566001"
    assert found[0].purpose == "Оплата за ел.енергію; о/р 1234, жовтень"  # a ';' inside quotes
    assert found[1].purpose == "особовий рахунок №04001 за жовтень"  # a purpose over two lines
    assert found[0].key.startswith("sha:")  # no reference column: a hash, stable across re-imports


def test_the_generic_signed_layout_keeps_the_positive_rows_and_the_banks_id():
    found = CsvImporter(SIGNED).parse((FIXTURES / "signed_amount_november.csv").read_bytes(), "mono.csv")
    assert [(t.amount, t.key) for t in found] == [(Decimal("400.00"), "ref:mono-8f1c2a"),
                                                  (Decimal("1300.00"), "ref:mono-8f1c2c")]


@pytest.mark.parametrize(("text", "comma", "value"), [
    ("1 250,40", True, "1250.40"), ("1.250,40", True, "1250.40"), ("15", True, "15.00"), ("1\u00a0000,5", True, "1000.50"),
    ("1,300.00", False, "1300.00"), ("-120.00", False, "-120.00"), ("\u2212120.00", False, "-120.00"),
])
def test_amounts_as_banks_write_them(text, comma, value):
    assert parse_amount(text, comma) == Decimal(value)


HEADER = "Дата операції;Дебет;Кредит;Валюта;Кореспондент;Рахунок кореспондента;ЄДРПОУ кореспондента;" \
         "Призначення платежу;Номер документа\n"
GOOD = "03.11.2026;;100,00;UAH;Іваненко;UA21;123;о/р 1234;1\n"


@pytest.mark.parametrize(("row", "where", "why"), [
    ("04.11.2026;;дві гривні;UAH;X;;;о/р 1;2\n", "line 3, column 'Кредит'", "not an amount: 'дві гривні'"),
    ("04.11.2026;;10,001;UAH;X;;;о/р 1;2\n", "line 3, column 'Кредит'", "not an amount"),
    ("31.11.2026;;10,00;UAH;X;;;о/р 1;2\n", "line 3, column 'Дата операції'", "not a date: '31.11.2026'"),
    ("04.11.2026;5,00;10,00;UAH;X;;;о/р 1;2\n", "line 3, column 'Кредит'", "both debit"),
    ("04.11.2026;;10,00\n", "line 3", "3 cells"),
    ('04.11.2026;;10,00;UAH;"X;;;о/р 1;2\n', "line 3", "not readable as CSV"),
])
def test_a_broken_row_names_the_line_and_column_and_nothing_is_returned(row, where, why):
    with pytest.raises(StatementError) as error:
        parse((HEADER + GOOD + row).encode("cp1251"), "privat.csv", DEBIT_CREDIT)
    assert f"privat.csv: {where}: " in str(error.value) and why in str(error.value), str(error.value)


def test_a_file_in_the_wrong_encoding_or_layout_says_so():
    with pytest.raises(StatementError, match="looks like UTF-8"):
        parse((HEADER + GOOD).encode("utf-8"), "privat.csv", DEBIT_CREDIT)
    with pytest.raises(StatementError, match="looks like UTF-8"):
        parse((FIXTURES / "monobank_business_november.csv").read_bytes(), "mono.csv", PRIVAT)
    with pytest.raises(StatementError, match=r"line 2: byte 0xff is not utf-8"):
        parse("Дата та час операції\n".encode() + b"\xff\n", "mono.csv", MONO)
    with pytest.raises(StatementError, match="format: no CSV mapping 'nope'; shipped: "):
        parse_statement(b"", "x.csv", "csv:nope")


def test_a_mapping_of_your_own_is_one_toml_file(tmp_path):
    own = tmp_path / "ukrsib.toml"
    own.write_text('encoding = "utf-8"\ndelimiter = "|"\ndate_formats = ["%Y-%m-%d"]\ndecimal_comma = false\n'
                   '[columns]\ndate = "Date"\namount = "Amount"\npurpose = "Details"\n', encoding="utf-8")
    data = "Date|Amount|Details\n2026-11-03|99.50|о/р 1234\n2026-11-03|-5.00|fee\n".encode()
    [found] = parse_statement(data, "u.csv", f"csv:{own}")
    assert (found.amount, found.purpose) == (Decimal("99.50"), "о/р 1234")
    with pytest.raises(MappingError, match="unknown column keys"):
        CsvMapping.from_toml('[columns]\ndate = "D"\namount = "A"\nsumma = "S"\n', "bad")
