"""The reports add up: a month of the seed's three houses billed (one with a benefit and a subsidy, one a
business), a bank statement and the cashier in November — then every report on screen, in CSV, in XLSX and from
the CLI shows the same figures, and they agree with the ledger and with each other.
"""

from __future__ import annotations

import csv
import io
import json
import re
import threading
import uuid
import zipfile
from datetime import date, timedelta
from decimal import Decimal
from html.parser import HTMLParser
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from openpyxl import load_workbook
from playwright.sync_api import sync_playwright
from sqlalchemy import func, select
from werkzeug.serving import make_server

from cloud.accounts.organisations import create_organisation, create_user
from cloud.billing.corrections import record_correction
from cloud.billing.ledger import account_balance
from cloud.models import Account, Invoice, LedgerEntry, Organisation, Payment
from cloud.payments.importer import cash_payment, import_statement
from cloud.payments.reversals import reverse_payment
from cloud.reports.accounting import debtors as find_debtors
from cloud.reports.analytics import collection
from cloud.reports.catalogue import REPORT_KINDS, build_report
from cloud.reports.export import Column, Report, to_csv, to_xlsx
from provisioning.ports import free_port
from tests.cloud.office import account_with_meter, bill, invoice_of, month, office, read
from tests.cloud.payments.statements import camt053, entry
from tests.cloud.test_billing import HOUSES, billed_month, run  # noqa: F401  (billed_month is a fixture)

ENROLLED = set(HOUSES)
PASSWORD = "correct horse battery"
TODAY = date(2026, 12, 15)  # the day the office reads the reports


@pytest.fixture
def books(db, billed_month):  # noqa: F811
    """October billed (04001 with a benefit and a subsidy, 01002 a business); November's money in."""
    with db() as session:
        bondarenko = session.scalar(select(Account).where(Account.number == "04001"))
        bondarenko.benefit_pct, bondarenko.benefit_norm_kwh, bondarenko.subsidy_uah = 50, 100, Decimal("850.00")
        session.scalar(select(Account).where(Account.number == "01002")).category = "business"
    run(db, billed_month, issue=True)
    with db() as session:
        org = session.scalar(select(Organisation))
        statement = camt053(entry("1000.00", "о/р 04001", "P-1", day="2026-11-05"),
                            entry("2028.60", "ос.рах. 01001 Іваненко", "P-2", day="2026-11-06"),
                            entry("2100.00", "рахунок 01002 за жовтень", "P-3", day="2026-11-06"),
                            entry("500.00", "за світло", "P-4", day="2026-11-07", iban="UA000000000000000000000000001"))
        result = import_statement(session, org, statement, "nov.xml", "camt053")
        assert (result.matched, result.unmatched) == (3, 1)
        cash_payment(session, org, session.scalar(select(Account).where(Account.number == "04001")),
                     Decimal("100.00"), date(2026, 11, 10), "cashier", "КВ-17")
        create_user(session, "buh@coop.ua", PASSWORD, "accountant", org)
        return org.id


def report(db, org_id, kind, period, lang="uk"):
    with db() as session:
        return build_report(session, session.get(Organisation, org_id), kind, period, TODAY, lang)


def test_the_turnover_sheet_closes_on_the_ledger(db, books):
    october, november = report(db, books, "turnover", "2026-10"), report(db, books, "turnover", "2026-11")
    with db() as session:
        ledger = Decimal(session.scalar(select(func.sum(LedgerEntry.amount))))
        balances = {a.number: account_balance(session, a.id) for a in session.scalars(select(Account))}
        invoiced = Decimal(session.scalar(select(func.sum(Invoice.total))))
    # 04001: 662 kWh → 3 197.46, benefit 50 % of 100 kWh → 241.50, subsidy 850.00.
    assert (october.total("accrued"), october.total("benefits"), october.total("subsidies")) == (
        Decimal("6834.45"), Decimal("241.50"), Decimal("850.00"))
    assert october.total("closing_debit") == invoiced == Decimal("5742.95")
    assert november.total("opening_debit") == october.total("closing_debit")
    assert november.total("paid") == Decimal("5228.60")  # the unmatched 500.00 is not on any account
    assert november.total("closing_debit") - november.total("closing_credit") == ledger == sum(balances.values())
    for row in november.rows:
        closing = row[november.column("closing_debit")] - row[november.column("closing_credit")]
        assert closing == balances[row[0]], row[0]
    assert dict((r[0], r[november.column("closing_credit")]) for r in november.rows)["01002"] == Decimal("491.61")


def test_debtors_are_the_positive_closing_balances_aged(db, books):
    november, debtors = report(db, books, "turnover", "2026-11"), report(db, books, "debtors", "2026-11")
    closing = {r[0]: r[november.column("closing_debit")] for r in november.rows if r[november.column("closing_debit")]}
    assert {r[0]: r[debtors.column("debt")] for r in debtors.rows} == closing == {"04001": Decimal("1005.96")}
    assert debtors.total("debt") == november.total("closing_debit")
    for row in debtors.rows:  # the buckets add up to the debt
        assert sum(row[3:7], Decimal(0)) == row[2]
    assert "30.11.2026" in debtors.subtitle  # a past period is aged on its last day
    with db() as session:  # half a year on, the same debt is 90+ days old and marked red on the page
        later = build_report(session, session.get(Organisation, books), "debtors", "2027-12",
                             date.today() + timedelta(days=200))
    assert later.rows[0][later.column("days_90+")] == Decimal("1005.96") and later.marks == ["row-suspected_theft"]
    with db() as session:  # reminders read the same debtors, benefits and subsidies not counted twice

        [bondarenko] = find_debtors(session, books, TODAY)
    assert bondarenko.debt == Decimal("1005.96") and bondarenko.oldest_due is not None


def test_collection_rate_is_paid_over_accrued(db, books):
    october, november = report(db, books, "turnover", "2026-10"), report(db, books, "turnover", "2026-11")
    rates = report(db, books, "collection", "2026-11")
    rows = {r[0]: r for r in rates.rows}
    to_pay = (october.total("accrued") + october.total("recalculations") - october.total("benefits")
              - october.total("subsidies"))
    assert rows["2026-10"][rates.column("to_pay")] == to_pay == Decimal("5742.95")
    assert rows["2026-11"][rates.column("paid")] == november.total("paid")
    assert rates.total("rate_pct") == (Decimal("5228.60") * 100 / to_pay).quantize(Decimal("0.1")) == Decimal("91.0")
    with db() as session:
        assert collection(session, books, "2026-10").accrued == to_pay


def test_payments_by_day_and_channel_reconcile_with_the_sheet(db, books):
    payments, november = report(db, books, "payments", "2026-11"), report(db, books, "turnover", "2026-11")
    by_day = {r[0]: r for r in payments.rows}
    assert sorted(by_day) == [date(2026, 11, d) for d in (5, 6, 7, 10)]
    assert by_day[date(2026, 11, 6)][payments.column("channel_bank")] == Decimal("4128.60")
    assert by_day[date(2026, 11, 10)][payments.column("channel_cash")] == Decimal("100.00")
    assert payments.total("total") == Decimal("5728.60") and payments.total("count") == 5
    assert payments.total("total") - payments.total("unmatched") == november.total("paid")
    assert [label for label, _, _ in payments.bars()] == ["05.11", "06.11", "07.11", "10.11"]


def test_a_reversed_payment_leaves_paid_and_the_payments_report_in_step(db, books):
    with db() as session:  # the bank takes 01002's 2 100.00 back; a queued payment is refunded to its payer
        overpaid = session.scalar(select(Payment).where(Payment.amount == Decimal("2100.00")))
        reverse_payment(session, overpaid, "reversal", "R-1", date(2026, 11, 21), "bank")
        queued = session.scalar(select(Payment).where(Payment.account_id.is_(None)))
        reverse_payment(session, queued, "refund", "R-2", date(2026, 11, 22), "accountant")
    payments, november = report(db, books, "payments", "2026-11"), report(db, books, "turnover", "2026-11")
    assert november.total("paid") == Decimal("3128.60")
    assert payments.total("reversed") == Decimal("2100.00")  # the queued one was never on an account
    assert payments.total("total") - payments.total("unmatched") - payments.total("reversed") == november.total(
        "paid")
    assert [r[0] for r in payments.rows][-1] == date(2026, 11, 21)  # a day with only a reversal has its row
    [owes_again, debtor] = report(db, books, "debtors", "2026-11").rows  # largest debt first
    assert (owes_again[0], owes_again[2]) == ("01002", Decimal("1608.39"))
    assert debtor[2] + owes_again[2] == november.total("closing_debit")


def test_consumption_revenue_and_regulator_agree_with_the_sheet(db, books):
    october = report(db, books, "turnover", "2026-10")
    consumption = report(db, books, "consumption", "2026-10")
    assert consumption.rows == [("2026-10", Decimal("1415"), 3, Decimal("471.7"))]
    revenue = {r[0]: r[1] for r in report(db, books, "revenue", "2026-10").rows}
    assert revenue == {"Електроенергія": october.total("accrued"), "Пільги": -october.total("benefits"),
                       "Субсидії": -october.total("subsidies")}
    assert report(db, books, "revenue", "2026-10").total("amount") == october.total("closing_debit")
    regulator = report(db, books, "regulator", "2026-11")
    november = report(db, books, "turnover", "2026-11")
    assert [r[0] for r in regulator.rows] == ["непобутові споживачі", "побутові споживачі"]
    for key in ("accrued", "paid", "debt", "benefits", "subsidies"):
        column = {"debt": "closing_debit"}.get(key, key)
        assert regulator.total(key) == november.total(column), key
    assert regulator.total("prepaid") == november.total("closing_credit") == Decimal("491.61")
    assert report(db, books, "regulator", "2026-10").total("volume_kwh") == Decimal("1415")


class Table(HTMLParser):
    """The cells of the report's table as a person reads them on the page."""

    def __init__(self):
        super().__init__()
        self.rows, self.cell, self.inside = [], None, False

    def handle_starttag(self, tag, attrs):
        if tag == "table" and dict(attrs).get("data-report"):
            self.inside = True
        elif self.inside and tag == "tr":
            self.rows.append([])
        elif self.inside and tag in ("td", "th"):
            self.cell = ""

    def handle_endtag(self, tag):
        if tag == "table":
            self.inside = False
        elif self.inside and tag in ("td", "th") and self.cell is not None:
            self.rows[-1].append(self.cell.strip())
            self.cell = None

    def handle_data(self, data):
        if self.cell is not None:
            self.cell += data


def screen_number(text: str) -> Decimal | None:
    """«5 742,95» (narrow no-break spaces, decimal comma) → Decimal."""
    if text in ("", "—"):
        return None
    return Decimal(text.replace("\u202f", "").replace(" ", "").replace(",", "."))


def csv_number(text: str) -> Decimal | None:
    return Decimal(text.replace(",", ".")) if text else None


def cell_value(value):
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return Decimal(str(value))
    return value


@pytest.mark.parametrize("kind", REPORT_KINDS)
def test_screen_csv_and_xlsx_show_the_same_figures(client, db, books, kind):
    expected = report(db, books, kind, "2026-11" if kind in ("turnover", "debtors", "payments", "collection")
                      else "2026-10")
    period = expected.subtitle.rsplit("період ", 1)[1].split(" ")[0]
    client.post("/login", data={"email": "buh@coop.ua", "password": PASSWORD})
    page = client.get(f"/reports/{kind}?period={period}")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert expected.title in html and 'type="month"' in html
    assert "format=csv" in html and "format=xlsx" in html
    table = Table()
    table.feed(html)
    header, *body = table.rows
    assert header == expected.headers()
    lines = [*expected.rows, expected.totals]
    assert len(body) == len(lines)
    numeric = [i for i, c in enumerate(expected.columns) if c.numeric]
    for shown, row in zip(body, lines, strict=True):
        for i in numeric:
            value = row[i]
            assert screen_number(shown[i]) == (None if value in (None, "") else Decimal(value)), (kind, shown)

    download = client.get(f"/reports/{kind}?period={period}&format=csv")
    assert download.mimetype == "text/csv" and "attachment" in download.headers["Content-Disposition"]
    raw = download.get_data()
    assert raw.startswith(b"\xef\xbb\xbf")  # the BOM Excel needs to read UTF-8
    header, *body = list(csv.reader(io.StringIO(raw.decode("utf-8-sig")), delimiter=";"))
    assert header == expected.headers()
    for got, row in zip(body, lines, strict=True):
        for i in numeric:
            assert csv_number(got[i]) == (None if row[i] in (None, "") else Decimal(row[i]))
        assert got[0] == (row[0].isoformat() if isinstance(row[0], date) else str(row[0]))

    book = load_workbook(io.BytesIO(client.get(f"/reports/{kind}?period={period}&format=xlsx").get_data()))
    sheet = book.active
    assert sheet["A1"].value == expected.title and sheet.freeze_panes == "A4"
    assert [c.value for c in sheet[3]] == expected.headers() and all(c.font.bold for c in sheet[3])
    for r, row in enumerate(lines, start=4):
        for i, column in enumerate(expected.columns):
            cell = sheet.cell(row=r, column=i + 1)
            if column.numeric:
                assert cell_value(cell.value) == (None if row[i] in (None, "") else Decimal(row[i]))
                assert column.places != 2 or cell.number_format == "#,##0.00"
    assert all(c.font.bold for c in sheet[3 + len(lines)])  # the totals


def test_english_on_request(client, db, books):
    client.post("/login", data={"email": "buh@coop.ua", "password": PASSWORD})
    html = client.get("/reports/turnover?period=2026-11&lang=en").get_data(as_text=True)
    assert "Closing balance, debit" in html and "5,228.60" in html
    uk = client.get("/reports/turnover?period=2026-11&lang=uk").get_data(as_text=True)
    assert "Сальдо на кінець, дебет" in uk and "5\u202f228,60" in uk
    assert client.get("/reports/no-such-report").status_code == 404
    assert client.get("/reports/turnover?period=2026-13").status_code == 400
    overview = client.get("/reports/analytics?period=2026-10").get_data(as_text=True)
    assert "Рівень оплат" in overview and "Зведення для регулятора" in overview and "<svg" in overview


def test_the_cli_writes_the_same_report(app, db, books, tmp_path):
    runner = app.test_cli_runner()
    result = runner.invoke(args=["report", "turnover", "--org", str(books), "--period", "2026-11"])
    assert result.exit_code == 0, result.output
    document = json.loads(result.output)
    assert document["totals"]["paid"] == "5228.60" and document["totals"]["closing_debit"] == "1005.96"
    out = tmp_path / "debtors.xlsx"
    result = runner.invoke(args=["report", "debtors", "--org", str(books), "--period", "2026-11", "--format", "xlsx",
                                 "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert load_workbook(out).active["C4"].value == 1005.96
    result = runner.invoke(args=["report", "payments", "--org", str(books), "--period", "2026-11", "--format", "csv",
                                 "--lang", "en"])
    assert result.output.lstrip("\ufeff").startswith("Date;Bank;Card;Cash;Day total")
    assert runner.invoke(args=["report", "debtors", "--org", str(books), "--period", "2026-11",
                               "--format", "xlsx"]).exit_code != 0  # a workbook needs --out
    bad = runner.invoke(args=["report", "turnover", "--org", str(books), "--period", "Nov"])
    assert bad.exit_code != 0 and "YYYY-MM" in bad.output


def test_money_is_written_exactly_or_not_at_all():
    columns = (Column("what", "Що"), Column("amount", "Сума", "Amount", places=2))
    big = Decimal("12345678901.23")  # more digits than a float keeps exactly with its kopecks
    sheet = Report("t", "Т", "", columns, [("a", big), ("b", Decimal("0.10"))], ("Разом", big + Decimal("0.10")))
    assert to_csv(sheet).decode("utf-8-sig").splitlines()[1:] == ["a;12345678901,23", "b;0,10", "Разом;12345678901,33"]
    xml = to_xlsx(sheet)

    assert b"<v>12345678901.23</v>" in zipfile.ZipFile(io.BytesIO(xml)).read("xl/worksheets/sheet1.xml")
    assert load_workbook(io.BytesIO(xml)).active["B4"].number_format == "#,##0.00"
    with pytest.raises(ValueError, match="more than 2 decimal places"):
        to_csv(Report("t", "Т", "", columns, [("a", Decimal("1.005"))]))
    assert re.fullmatch(r"\ufeff.*\r\n", to_csv(Report("t", "Т", "", columns)).decode(), re.S)


@pytest.mark.slow
@pytest.mark.skipif(not Path("/usr/bin/chromium").exists(), reason="Debian's chromium is not installed")
def test_a_report_reads_on_a_phone(app, client, db, books, database_url, tmp_path):
    """In a real browser at a phone's width: the chart is drawn, the table scrolls inside its card, the page
    itself does not scroll sideways, and both downloads are there."""

    if not database_url.startswith("sqlite"):
        pytest.skip("one database is enough for the look of a page")
    server = make_server("127.0.0.1", free_port(), app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_port}"
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=[
                "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                "--disable-sync"])
            page = browser.new_context(viewport={"width": 390, "height": 844}, locale="uk-UA").new_page()
            page.goto(base + "/login")
            page.fill("input[name=email]", "buh@coop.ua")
            page.fill("input[name=password]", PASSWORD)
            page.click("button[type=submit]")
            page.goto(base + "/reports/payments?period=2026-11")
            assert page.locator("svg.bars rect.bar").count() == 4  # one bar a day
            assert page.locator("a[href$='format=xlsx']").is_visible()
            assert page.evaluate("document.documentElement.scrollWidth") <= 390
            page.screenshot(path=str(tmp_path / "payments-phone.png"), full_page=True)
            with page.expect_download() as download:
                page.click("a[href$='format=csv']")
            assert download.value.suggested_filename == "platezhi-2026-11.csv"
            browser.close()
    finally:
        server.shutdown()


def test_a_heat_network_reports_its_volumes_in_gcal(db):
    with db() as session:
        org = create_organisation(session, "КП «Теплоенерго»", "heat", "12345678", "")
        consumption = build_report(session, org, "consumption", "2026-11", TODAY)
        regulator = build_report(session, org, "regulator", "2026-11", TODAY, "en")
    assert "Спожито, Гкал" in consumption.headers() and "Гкал" in consumption.title
    assert "Volume, Gcal" in regulator.headers()
    assert consumption.columns[consumption.column("kwh")].places == 4  # Gcal to 0.0001, as the invoices keep it
    assert consumption.rows == [] and consumption.total("average_kwh") is None


MONEY_IN = st.lists(st.tuples(
    st.sampled_from(["01001", "01002", "04001", "09999"]),  # 09999 is no one's: the payment waits in the queue
    st.decimals(min_value=Decimal("0.01"), max_value=Decimal("4000.00"), places=2),
    st.sampled_from([date(2026, 11, 3), date(2026, 11, 30), date(2026, 12, 1), date(2026, 12, 24)]),
    st.sampled_from(["bank", "cash"]),
    st.booleans()), min_size=1, max_size=6)  # True: the payment is reversed by the accountant afterwards


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(money_in=MONEY_IN)
def test_the_reports_agree_after_any_money_in_and_back(db, books, money_in):
    """Whatever comes in (by bank or cashier, matched or not) and goes back, every month's sheet closes on the
    ledger, the debtors are its positive balances, and the payments report reconciles with its «paid»."""
    with db() as session:
        org = session.get(Organisation, books)
        for account, amount, day, channel, reverse in money_in:
            ref = f"H-{uuid.uuid4().hex[:12]}"
            if channel == "cash" and account != "09999":
                payment, _ = cash_payment(session, org, session.scalar(select(Account).where(
                    Account.org_id == books, Account.number == account)), amount, day, "cashier", ref)
            else:
                import_statement(session, org, camt053(entry(f"{amount:.2f}", f"о/р {account}", ref,
                                                             day=day.isoformat())), f"{ref}.xml", "camt053")
                payment = session.scalar(select(Payment).where(Payment.key.like(f"%{ref}%")))
            if reverse:
                reverse_payment(session, payment, "hand", f"storno-{ref}", day, "accountant")
    with db() as session:
        balances = {a.number: account_balance(session, a.id) for a in session.scalars(
            select(Account).where(Account.org_id == books))}
    opening = None
    for period in ("2026-10", "2026-11", "2026-12"):
        sheet = report(db, books, "turnover", period)
        if opening is not None:
            assert sheet.total("opening_debit") - sheet.total("opening_credit") == opening
        opening = sheet.total("closing_debit") - sheet.total("closing_credit")
        debtors, payments = report(db, books, "debtors", period), report(db, books, "payments", period)
        assert debtors.total("debt") == sheet.total("closing_debit")
        assert all(sum(r[3:7], Decimal(0)) == r[2] for r in debtors.rows)
        if payments.rows:
            assert payments.total("total") - payments.total("unmatched") - payments.total("reversed") == \
                sheet.total("paid")
        [month] = [r for r in report(db, books, "collection", period).rows if r[0] == period]
        assert month[6] == sheet.total("paid")
    closing = {r[0]: r[sheet.column("closing_debit")] - r[sheet.column("closing_credit")] for r in sheet.rows}
    assert closing == balances  # December is the last month with entries: its sheet is the ledger


def test_an_accountants_correction_is_a_recalculation_everywhere(db):
    """A correction (перерахунок) of August recorded by the accountant lands on October's invoice: the sheet
    shows it under «Перерахунки», the revenue structure as its own line, and both still add up."""
    with db() as session:
        org, site = office(session)
        _, meter = account_with_meter(session, org, site, "01001")
        for period, value in (("2026-08", "1000"), ("2026-09", "1300"), ("2026-10", "1650"), ("2026-11", "2050")):
            read(session, meter, month(period), value)
        org_id = org.id
    for period in ("2026-08", "2026-09"):
        bill(db, "TP-7", period, issue=True)
    with db() as session:
        august = invoice_of(session, "01001", "2026-08")
        record_correction(session, session.get(Organisation, org_id), august.number, Decimal("-120.75"),
                          "лічильник повірено", "buh")
    bill(db, "TP-7", "2026-10", issue=True)
    sheet = report(db, org_id, "turnover", "2026-10")
    revenue = report(db, org_id, "revenue", "2026-10")
    with db() as session:
        october = invoice_of(session, "01001", "2026-10").total
        ledger = Decimal(session.scalar(select(func.sum(LedgerEntry.amount))))
    assert sheet.total("accrued") == Decimal("1932.00") and sheet.total("recalculations") == Decimal("-120.75")
    assert sheet.total("closing_debit") == ledger
    assert dict((r[0], r[1]) for r in revenue.rows)["Перерахунки"] == Decimal("-120.75")
    assert revenue.total("amount") == october == Decimal("1811.25")  # 400 kWh × 4.83 − 120.75
    [row] = [r for r in report(db, org_id, "collection", "2026-10").rows if r[0] == "2026-10"]
    assert row[5] == october  # to pay: accrued + recalculations
