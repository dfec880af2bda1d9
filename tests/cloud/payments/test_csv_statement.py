"""CSV exports through a saved mapping: the two shipped layouts, debit rows skipped, and a broken cell named by
line and column."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from cloud.payments.csv_statement import (
    CsvImporter,
    CsvMapping,
    MappingError,
    parse,
    parse_amount,
    shipped_mappings,
)
from cloud.payments.formats import parse_statement
from cloud.payments.statement import StatementError

FIXTURES = Path(__file__).parent / "fixtures"
PRIVAT = CsvMapping.load("privatbank-business")
MONO = CsvMapping.load("monobank-business")


def test_both_layouts_are_shipped():
    assert {"privatbank-business", "monobank-business"} <= set(shipped_mappings())


def test_a_privatbank_export_in_cp1251_gives_the_credit_rows():
    found = parse((FIXTURES / "privatbank_november.csv").read_bytes(), "privat.csv", PRIVAT)
    assert [(t.amount, t.payer, t.source) for t in found] == [
        (Decimal("1250.40"), "ІВАНЕНКО ОЛЕГ ПЕТРОВИЧ", "line 5"),  # the title block above the table is skipped
        (Decimal("2028.60"), "Бондаренко Ольга Петрівна", "line 7")]  # line 6, the bank fee, is a debit
    assert found[0].payer_iban == "UA213223130000026007233566001"
    assert found[0].purpose == "Оплата за ел.енергію; о/р 1234, жовтень"  # a ';' inside quotes
    assert found[1].purpose == "особовий рахунок №04001 за жовтень"  # a purpose over two lines
    assert found[0].key.startswith("sha:")  # no reference column: a hash, stable across re-imports


def test_a_monobank_export_keeps_the_positive_rows_and_the_banks_id():
    found = CsvImporter(MONO).parse((FIXTURES / "monobank_november.csv").read_bytes(), "mono.csv")
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
        parse((HEADER + GOOD + row).encode("cp1251"), "privat.csv", PRIVAT)
    assert f"privat.csv: {where}: " in str(error.value) and why in str(error.value), str(error.value)


def test_a_file_in_the_wrong_encoding_or_layout_says_so():
    with pytest.raises(StatementError, match="looks like UTF-8"):
        parse((HEADER + GOOD).encode("utf-8"), "privat.csv", PRIVAT)
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
