"""Billing a month: a draft that can be re-run, issued invoices numbered without gaps, PDF with a payable QR
code, and e-mail through the outbox to a real SMTP server on loopback.
"""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import threading
from datetime import date, timedelta
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from aiosmtpd.controller import Controller
from openpyxl import load_workbook
from pypdf import PdfReader
from sqlalchemy import func, select

from cloud.accounts.organisations import create_user
from cloud.billing.delivery import queue_invoice_emails, run_pdf
from cloud.billing.errors import BillingError
from cloud.billing.ledger import account_balance
from cloud.billing.run import billing_run
from cloud.clock import utcnow
from cloud.models import Account, Invoice, LedgerEntry, Organisation, Reading, ReminderRule, Site, Tariff
from cloud.notifications.mail import SmtpSender, TelegramSender, send_pending
from cloud.notifications.reminders import queue_reminders
from cloud.payments.importer import import_statement
from cloud.reports.accounting import debtors, turnover_csv, turnover_sheet, turnover_xlsx
from cloud.reports.analytics import (
    collection,
    consumption_dynamics,
    payments_by_channel_and_day,
    regulator_summary,
)
from provisioning.ports import free_port
from shared.batch import GENESIS_HASH, seal_batch
from shared.calendar import iso_utc, period_bounds
from shared.nbu_qr import decode_url
from tests.cloud.payments.statements import camt053, entry
from tests.cloud.test_ingestion import post

HOUSES = {"M01001": ("01001", 420), "M01002": ("01002", 333), "M04001": ("04001", 662)}
ENROLLED = set(HOUSES)  # the site's other houses are not on this gateway


def month_of_data(key):
    """One batch: each house's counter at the month's bounds and its 2 980 quarter-hours of October in Kyiv
    (the clocks go back on the 25th), exact totals."""
    start, end = period_bounds("2026-10")
    count = int((end - start).total_seconds() // 900)
    readings, intervals = [], []
    for meter, (_, kwh) in HOUSES.items():
        readings += [{"m": meter, "t": iso_utc(start), "q": {"import_kwh": "15000.000"}},
                     {"m": meter, "t": iso_utc(end), "q": {"import_kwh": f"{15000 + kwh}.000"}}]
        per_interval, rest = divmod(kwh * 1000, count)
        for index in range(count):
            wh = per_interval + (1 if index < rest else 0)
            t = iso_utc(start + timedelta(minutes=15 * index))
            intervals.append({"m": meter, "t": t, "imp": f"{Decimal(wh).scaleb(-3):.3f}", "exp": "0.000",
                              "f": "measured"})
    return seal_batch(key, gateway="gw-tp118", seq=1, prev=GENESIS_HASH, created="2026-11-01T00:15:00Z",
                      readings=readings, intervals=intervals)


@pytest.fixture
def billed_month(client, db, gateway):
    assert post(client, month_of_data(gateway.key)).status_code == 201
    with db() as session:
        return session.scalar(select(Site).where(Site.code == gateway.site)).id


def run(db, site_id, issue=False):
    with db() as session:
        return billing_run(session, session.get(Site, site_id), "2026-10", issue=issue)


def test_a_draft_can_be_rerun_and_issuing_numbers_without_gaps(db, billed_month):
    first = run(db, billed_month)
    again = run(db, billed_month)
    assert first.status == again.status == "draft"
    assert again.invoices == 3 and again.summary["distributed_kwh"] == "1415"
    with db() as session:
        assert session.scalar(select(func.count()).select_from(Invoice)) == 3  # replaced, not added
        assert session.scalar(select(func.count()).select_from(LedgerEntry)) == 0  # drafts charge nothing
    issued = run(db, billed_month, issue=True)
    assert issued.status == "issued"
    with db() as session:
        numbers = sorted(session.scalars(select(Invoice.number)))
        assert numbers == ["000001", "000002", "000003"]
        amounts = {n: session.scalar(select(Invoice.total).join(Account).where(Account.number == n))
                   for n, _ in HOUSES.values()}
        assert amounts == {"01001": Decimal("2028.60"), "01002": Decimal("1608.39"), "04001": Decimal("3197.46")}
        account = session.scalar(select(Account).where(Account.number == "04001"))
        assert account_balance(session, account.id) == Decimal("3197.46")  # the ledger's sum
    with pytest.raises(BillingError, match="issued and cannot change"):
        run(db, billed_month)


def test_the_invoice_pdf_carries_the_wording_and_a_qr_code_that_pays_it(db, billed_month, tmp_path):

    run(db, billed_month, issue=True)
    with db() as session:
        pdf = run_pdf(session, session.get(Site, billed_month), "2026-10")
    reader = PdfReader(io.BytesIO(pdf))
    assert len(reader.pages) == 3
    text = " ".join(reader.pages[2].extract_text().split())
    assert "частка витрат на електроенергію з урахуванням коефіцієнта на втрати та обслуговування" in text.lower()
    assert "3 197,46 грн" in text and "ціна продажу" not in text
    if shutil.which("zbarimg") is None or shutil.which("pdftoppm") is None:
        pytest.skip("zbarimg/pdftoppm not installed: the QR code is not decoded here")
    (tmp_path / "run.pdf").write_bytes(pdf)
    subprocess.run(["pdftoppm", "-png", "-r", "150", "-f", "3", "-l", "3", str(tmp_path / "run.pdf"),
                    str(tmp_path / "page")], check=True)
    [image] = tmp_path.glob("page*.png")
    decoded = subprocess.run(["zbarimg", "--raw", "-q", str(image)], capture_output=True).stdout.decode().strip()
    fields = decode_url(decoded)
    assert fields[:9] == ["BCD", "002", "1", "UCT", "", "ОК «Сосновий Бір»", "UA853005280000026007012345678",
                          "UAH3197.46", "43210987"]
    assert "о/р 04001" in fields[11]


def test_invoices_go_out_by_email_through_the_outbox(db, billed_month):

    run(db, billed_month, issue=True)
    with db() as session:
        session.scalar(select(Account).where(Account.number == "04001")).email = "bondarenko@example.ua"
    received = []

    class Inbox:
        async def handle_DATA(self, server, session, envelope):
            received.append(envelope)
            return "250 OK"

    with db() as session:
        site = session.get(Site, billed_month)
        assert queue_invoice_emails(session, site, "2026-10") == 1
        assert queue_invoice_emails(session, site, "2026-10") == 0  # once per invoice
    with db() as session:  # the mail server is down: nothing is lost, the attempt is counted
        assert send_pending(session, SmtpSender("127.0.0.1", 9, timeout=2), "billing@coop.ua") == {
            "sent": 0, "failed": 1}
    port = free_port()
    controller = Controller(Inbox(), hostname="127.0.0.1", port=port)
    controller.start()
    try:
        with db() as session:  # not before the failed message's backoff (a minute) is over
            assert send_pending(session, SmtpSender("127.0.0.1", port), "billing@coop.ua") == {"sent": 0, "failed": 0}
            result = send_pending(session, SmtpSender("127.0.0.1", port), "billing@coop.ua",
                                  now=utcnow() + timedelta(minutes=2))
    finally:
        controller.stop()
    assert result == {"sent": 1, "failed": 0}
    [envelope] = received
    assert envelope.rcpt_tos == ["bondarenko@example.ua"]
    assert b"application/pdf" in envelope.content and b"rakhunok-000003.pdf" in envelope.content


def test_turnover_sheet_and_debtors_add_up_to_the_ledger(db, billed_month):

    run(db, billed_month, issue=True)
    with db() as session:
        org = session.scalar(select(Organisation))
        import_statement(session, org, camt053(entry("1000.00", "о/р 04001", "P-1", day="2026-11-05"),
                                               entry("2028.60", "ос.рах. 01001", "P-2", day="2026-11-06")),
                         "nov.xml", "camt053")
        october, november = turnover_sheet(session, org.id, "2026-10"), turnover_sheet(session, org.id, "2026-11")
        ledger = session.scalar(select(func.sum(LedgerEntry.amount)))
        late = debtors(session, org.id, date.today() + timedelta(days=75))
        org_name = org.name
    assert october.totals()[4] == Decimal("6834.45")  # accrued: 2028.60 + 1608.39 + 3197.46
    assert november.totals()[2] == Decimal("6834.45") and november.totals()[8] == Decimal("3028.60")  # opening, paid
    assert november.totals()[9] - november.totals()[10] == ledger == Decimal("3805.85")
    assert "Оборотно" not in turnover_csv(november) and "Сальдо на кінець, дебет" in turnover_csv(november)
    sheet = load_workbook(io.BytesIO(turnover_xlsx(november, org_name))).active
    assert sheet["A1"].value.startswith("Оборотно-сальдова відомість")
    assert [(d.account, d.debt) for d in late] == [("04001", Decimal("2197.46")), ("01002", Decimal("1608.39"))]
    assert late[0].buckets["31-60"] == Decimal("2197.46")


def test_reminders_go_once_per_rule_and_month_by_email_and_telegram(db, billed_month):


    run(db, billed_month, issue=True)
    with db() as session:
        org = session.scalar(select(Organisation))
        session.add(ReminderRule(org_id=org.id, name="Борг понад 1000 грн, 30 днів", min_debt=Decimal(1000), min_days=30))
        bondarenko = session.scalar(select(Account).where(Account.number == "04001"))
        bondarenko.email, bondarenko.telegram_chat_id = "bondarenko@example.ua", "777001"
        ivanenko = session.scalar(select(Account).where(Account.number == "01001"))
        ivanenko.email, ivanenko.reminders_opt_out = "ivanenko@example.ua", True
    later = date.today() + timedelta(days=55)
    with db() as session:
        org = session.scalar(select(Organisation))
        assert queue_reminders(session, org, later) == 2  # 04001 by e-mail and Telegram; 01001 opted out
        assert queue_reminders(session, org, later) == 0  # at most one per rule and month
    bot_calls, mails = [], []

    class Bot(BaseHTTPRequestHandler):
        def do_POST(self):
            bot_calls.append((self.path, json.loads(self.rfile.read(int(self.headers["Content-Length"])))))
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b'{"ok": true, "result": {}}')

        def log_message(self, *args):
            pass

    class Inbox:
        async def handle_DATA(self, server, session, envelope):
            mails.append(envelope)
            return "250 OK"

    bot = ThreadingHTTPServer(("127.0.0.1", 0), Bot)
    threading.Thread(target=bot.serve_forever, daemon=True).start()
    port = free_port()
    smtp = Controller(Inbox(), hostname="127.0.0.1", port=port)
    smtp.start()
    try:
        with db() as session:
            result = send_pending(session, SmtpSender("127.0.0.1", port), "billing@coop.ua",
                                  telegram=TelegramSender("123:ABC", f"http://127.0.0.1:{bot.server_address[1]}"))
    finally:
        smtp.stop()
        bot.shutdown()
    assert result == {"sent": 2, "failed": 0}
    assert [m.rcpt_tos for m in mails] == [["bondarenko@example.ua"]]
    [(path, message)] = bot_calls
    assert path == "/bot123:ABC/sendMessage" and message["chat_id"] == "777001" and "3197.46" in message["text"]


def test_benefit_subsidy_and_a_mid_month_tariff_change_on_the_invoice_and_in_the_ledger(db, billed_month):
    with db() as session:
        account = session.scalar(select(Account).where(Account.number == "04001"))
        account.benefit_pct, account.benefit_norm_kwh, account.subsidy_uah = Decimal(50), Decimal(100), Decimal(850)
        org = session.scalar(select(Organisation))
        old = session.scalar(select(Tariff))
        old.valid_to = date(2026, 10, 15)
        session.add(Tariff(org_id=org.id, kind="cooperative", purchase_price=Decimal("4.32"),
                           coefficient=Decimal("1.15"), valid_from=date(2026, 10, 16)))
    run(db, billed_month, issue=True)
    with db() as session:
        invoice = session.scalar(select(Invoice).join(Account).where(Account.number == "04001"))
        kinds = [(line["kind"], line["quantity"], line["amount"]) for line in invoice.lines]
        ledger = dict(session.execute(select(LedgerEntry.kind, LedgerEntry.amount).where(
            LedgerEntry.invoice_id == invoice.id)).all())
        sheet = turnover_sheet(session, org.id, "2026-10")
    # 662 kWh: 320 at 4.83 (1–15 Oct) and 342 at 4.968 (16–31 Oct); benefit 50 % of 100 kWh at the new price.
    assert kinds == [("energy", "320", "1545.60"), ("energy", "342", "1699.06"), ("benefit", "100", "-248.40"),
                     ("subsidy", "1", "-850.00")]
    assert invoice.total == Decimal("2146.26")
    assert ledger == {"charge": Decimal("3244.66"), "benefit": Decimal("-248.40"), "subsidy": Decimal("-850.00")}
    row = next(r for r in sheet.rows if r.account == "04001")
    assert (row.accrued, row.benefits, row.subsidies, row.closing) == (
        Decimal("3244.66"), Decimal("248.40"), Decimal("850.00"), Decimal("2146.26"))


def test_a_gap_in_the_tariffs_is_named_and_nothing_is_billed(db, billed_month):
    with db() as session:
        session.scalar(select(Tariff)).valid_to = date(2026, 10, 20)
    with pytest.raises(BillingError, match="ends on 2026-10-20"):
        run(db, billed_month)
    with db() as session:
        assert session.scalar(select(func.count()).select_from(Invoice)) == 0


def test_the_accountant_bills_from_the_web_in_a_few_clicks(app, client, db, billed_month):
    with db() as session:
        create_user(session, "buh@coop.ua", "correct horse battery", "accountant", session.scalar(select(Organisation)))
        code = session.get(Site, billed_month).code
    client.post("/login", data={"email": "buh@coop.ua", "password": "correct horse battery"})
    page = client.get(f"/sites/{code}/billing?period=2026-10").get_data(as_text=True)
    assert "Розрахувати чернетку" in page
    client.post(f"/sites/{code}/billing", data={"period": "2026-10", "action": "draft"})
    client.post(f"/sites/{code}/billing", data={"period": "2026-10", "action": "issue"})
    page = client.get(f"/sites/{code}/billing?period=2026-10").get_data(as_text=True)
    assert "виставлено" in page and "000003" in page
    with db() as session:
        assert session.scalar(select(func.count()).select_from(LedgerEntry)) == 3


def test_a_resident_submits_a_reading_and_a_wrong_one_is_explained(app, client, db, billed_month):
    with db() as session:
        account = session.scalar(select(Account).where(Account.number == "04001"))
        create_user(session, "r@ex.ua", "correct horse battery", "resident", session.scalar(select(Organisation)),
                    account=account)
    client.post("/login", data={"email": "r@ex.ua", "password": "correct horse battery"})
    assert client.get("/cabinet/reading").status_code == 200
    lower = client.post("/cabinet/reading", data={"value": "15000"})
    assert lower.status_code == 422 and "менший за попередній" in lower.get_data(as_text=True)
    assert client.post("/cabinet/reading", data={"value": "абв"}).status_code == 422
    accepted = client.post("/cabinet/reading", data={"value": "15700,5"})
    assert accepted.status_code == 302
    with db() as session:
        reading = session.scalar(select(Reading).where(Reading.source == "resident"))
        assert reading.values == {"import_kwh": "15700.500"}


def test_analytics_for_the_board_and_the_regulator(app, client, db, billed_month):
    run(db, billed_month, issue=True)
    today = date.today().strftime("%Y-%m")
    with db() as session:
        org = session.scalar(select(Organisation))
        import_statement(session, org, camt053(entry("1000.00", "о/р 04001", "P-1", day=f"{today}-02")), "s.xml",
                         "camt053")
        assert payments_by_channel_and_day(session, org.id, today) == [(f"{today}-02", "bank", Decimal("1000.00"), 1)]
        october = collection(session, org.id, "2026-10")
        assert (october.accrued, october.paid) == (Decimal("6834.45"), Decimal("0.00"))
        assert consumption_dynamics(session, org.id) == [("2026-10", Decimal(1415), 3, Decimal("471.7"))]
        [household] = regulator_summary(session, org.id, "2026-10")
        assert (household["volume_kwh"], household["accrued_uah"]) == (Decimal(1415), Decimal("6834.45"))
        create_user(session, "board@coop.ua", "correct horse battery", "manager", org)
    client.post("/login", data={"email": "board@coop.ua", "password": "correct horse battery"})
    page = client.get("/reports/analytics?period=2026-10").get_data(as_text=True)
    assert "Рівень оплат" in page and "Зведення для регулятора" in page
