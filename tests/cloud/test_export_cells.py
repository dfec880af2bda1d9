"""No export runs a formula on the accountant's machine: a text cell that Excel would read as one (= + - @, a tab,
a carriage return first) is written with a leading apostrophe, in CSV and in XLSX, where it is a text cell and
never a formula; a number — a negative recalculation too — stays a number. Every report of the catalogue is
checked, downloaded from the pages the way the accountant gets it."""

from __future__ import annotations

import csv
import io
from datetime import datetime
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st
from openpyxl import load_workbook

from cloud.accounts.organisations import create_user
from cloud.audit import audit
from cloud.billing.corrections import record_correction
from cloud.models import Account, Organisation
from cloud.reports.catalogue import REPORT_KINDS
from cloud.reports.export import Column, Report, money, to_csv, to_xlsx
from shared.spreadsheet_cells import FORMULA_STARTS, neutralise
from tests.cloud.office import account_with_meter, bill, invoice_of, office, read

PASSWORD = "correct horse battery"
EVIL_ACCOUNT = '=HYPERLINK("http://evil","x")'
EVIL_HOLDER = "@SUM(1+1)*cmd|' /C calc'!A0"
EVIL_CATEGORY = "+cmd|' /C notepad'!A0"


@pytest.fixture
def planted(db):
    """An office whose account number, holder, category and organisation name are formulas; October and
    November issued, with an accountant's credit in November (a negative recalculation)."""
    with db() as session:
        org, site = office(session, name="=1+2 «Сосновий Бір»")
        create_user(session, "buh@coop.ua", PASSWORD, "accountant", org)
        account, meter = account_with_meter(session, org, site, EVIL_ACCOUNT, "M-EVIL", category=EVIL_CATEGORY)
        account.holder = EVIL_HOLDER
        plain, plain_meter = account_with_meter(session, org, site, "-01002", "M-2")
        plain.holder = "\tІван\rПетренко"
        for when, counter in ((datetime(2026, 10, 1), "1000"), (datetime(2026, 11, 1), "1100"),
                              (datetime(2026, 12, 1), "1150")):
            read(session, meter, when, counter)
            read(session, plain_meter, when, counter)
    bill(db, "TP-7", "2026-10", issue=True)
    with db() as session:
        org = session.query(Organisation).one()
        record_correction(session, org, invoice_of(session, EVIL_ACCOUNT, "2026-10").number, Decimal("-50.00"),
                          "лічильник повірено", "buh@coop.ua")
    bill(db, "TP-7", "2026-11", issue=True)
    with db() as session:
        assert session.query(Account).filter(Account.number == EVIL_ACCOUNT).one().holder == EVIL_HOLDER


def signed_in(client):
    client.post("/login", data={"email": "buh@coop.ua", "password": PASSWORD})
    return client


def test_a_formula_in_an_account_number_is_text_in_the_csv_and_the_xlsx(client, planted):
    signed_in(client)
    raw = client.get("/reports/turnover?period=2026-11&format=csv").get_data().decode("utf-8-sig")
    rows = list(csv.reader(io.StringIO(raw), delimiter=";"))
    accounts = {row[0]: row for row in rows[1:]}
    assert "'" + EVIL_ACCOUNT in accounts and EVIL_ACCOUNT not in accounts
    assert accounts["'" + EVIL_ACCOUNT][1] == "'" + EVIL_HOLDER
    assert "'-01002" in accounts and accounts["'-01002"][1] == "'\tІван\rПетренко"

    book = load_workbook(io.BytesIO(client.get("/reports/turnover?period=2026-11&format=xlsx").get_data()))
    sheet = book.active
    cells = {sheet.cell(row=r, column=1).value: r for r in range(4, sheet.max_row + 1)}
    evil = sheet.cell(row=cells["'" + EVIL_ACCOUNT], column=1)
    assert evil.data_type != "f" and evil.value.startswith("'")
    assert sheet.cell(row=evil.row, column=2).value == "'" + EVIL_HOLDER
    assert sheet["A2"].value.startswith("'=1+2")  # the subtitle names the organisation
    # The credit is a negative number, and stays one: money is not text.
    recalculations = [c.value for c in sheet[3]].index("Перерахунки") + 1
    credit = sheet.cell(row=evil.row, column=recalculations)
    assert credit.data_type == "n" and credit.value == -50
    assert accounts["'" + EVIL_ACCOUNT][recalculations - 1] == "-50,00"


@pytest.mark.parametrize("kind", REPORT_KINDS)
def test_no_report_writes_a_cell_excel_would_run(client, planted, kind):
    signed_in(client)
    raw = client.get(f"/reports/{kind}?period=2026-11&format=csv").get_data().decode("utf-8-sig")
    for row in csv.reader(io.StringIO(raw), delimiter=";"):
        for cell in row:
            assert not cell.startswith(FORMULA_STARTS) or is_number(cell), (kind, cell)
    book = load_workbook(io.BytesIO(client.get(f"/reports/{kind}?period=2026-11&format=xlsx").get_data()))
    for row in book.active.iter_rows():
        for cell in row:
            assert cell.data_type != "f", (kind, cell.coordinate, cell.value)
            assert not (isinstance(cell.value, str) and cell.value.startswith(FORMULA_STARTS)), (kind, cell.value)


def is_number(text: str) -> bool:
    try:
        Decimal(text.replace(",", "."))
    except ArithmeticError:
        return False
    return True


def test_only_text_is_neutralised_and_a_workbook_takes_any_text():
    columns = (Column("account", "col_account"), money("amount", "col_paid"), Column("note", "col_holder"))
    rows = [("=1+1", Decimal("-120.50"), "-5"), ("ok", Decimal("0.10"), "Іван\x01\x0bПетренко")]
    sheet = Report("t", "=title", "+subtitle", columns, rows, notes=("@note",))
    assert to_csv(sheet).decode("utf-8-sig").split("\r\n")[1:-1] == ["'=1+1;-120,50;'-5", "ok;0,10;Іван\x01\x0bПетренко"]
    book = load_workbook(io.BytesIO(to_xlsx(sheet)))  # control characters a workbook cannot hold are dropped
    page = book.active
    assert [page["A1"].value, page["A2"].value] == ["'=title", "'+subtitle"]
    assert [page["A4"].value, page["B4"].value, page["C4"].value] == ["'=1+1", -120.5, "'-5"]
    assert page["B4"].data_type == "n" and page["C5"].value == "ІванПетренко"
    assert page["A7"].value == "'@note"
    assert neutralise(-3) == -3 and neutralise("−3") == "−3" and neutralise("") == ""
    assert [neutralise(start + "x") for start in "=+-@\t\r"] == ["'" + start + "x" for start in "=+-@\t\r"]


@given(st.text())
def test_any_text_is_kept_and_never_starts_a_formula(text):
    safe = neutralise(text)
    assert not safe.startswith(FORMULA_STARTS)
    assert safe == text or safe == "'" + text


def test_the_audit_log_export_keeps_a_planted_formula_as_text(client, db, planted):
    with db() as session:
        org = session.query(Organisation).one()
        create_user(session, "admin@coop.ua", PASSWORD, "org_admin", org)
        audit(session, org.id, EVIL_HOLDER, "reading.enter", EVIL_ACCOUNT)
    client.post("/login", data={"email": "admin@coop.ua", "password": PASSWORD})
    rows = list(csv.reader(io.StringIO(client.get("/admin/audit.csv").get_data(as_text=True).lstrip("\ufeff"))))
    planted_row = next(row for row in rows if row[3] == "reading.enter" and row[4].endswith(EVIL_ACCOUNT))
    assert planted_row[2] == "'" + EVIL_HOLDER and planted_row[4] == "'" + EVIL_ACCOUNT
    assert not any(cell.startswith(FORMULA_STARTS) for row in rows for cell in row)
