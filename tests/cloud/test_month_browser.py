"""The cottage town's whole November walked in a real browser (Debian's Chromium), as the office does it, against
a real server, a real job worker and a real SMTP server on loopback: the head of the cooperative imports 300
subscribers from the accountant's XLSX (two bad rows named by line and column, fixed, re-uploaded, applied), sets
net billing to «money» with an export price, drafts the month (the job's progress bar reaches done), reviews it,
issues it (typing the password again), e-mails the invoices (the SMTP server receives them with their PDFs),
uploads the bank's camt.053 with one payment the bank could not tie to an account, and assigns that payment in
the queue — then sees the account's overpayment. At a phone's width: the month, the job and the statement's
outcome. Screenshots go to ``$BALANS_SCREENSHOTS`` when set.

The readings go in as the office's meter readers bring them: a CSV of the round uploaded on the readings page,
and the three meters it missed typed into the round's form."""

from __future__ import annotations

import io
import os
import re
import threading
from email import message_from_bytes
from email.policy import default
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from openpyxl import Workbook
from sqlalchemy import func, select, update
from werkzeug.serving import make_server

from cloud.accounts.organisations import create_user
from cloud.jobs.worker import Worker
from cloud.models import Account, Invoice, Line, Organisation, Payment, Reading, UserSession
from provisioning.ports import free_port
from tests.cloud.office import office
from tests.cloud.payments.statements import camt053, entry
from tests.cloud.test_register_browser import PASSWORD, WIDTHS

pytestmark = pytest.mark.skipif(not Path("/usr/bin/chromium").exists(), reason="Debian's chromium is not installed")
SUBSCRIBERS = 300
HEAD = "head@coop.ua"
BROWSER_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"]


def workbook(bad: bool) -> bytes:
    """The accountant's register: a title row, Ukrainian headers, an e-mail for every tenth subscriber."""
    book = Workbook()
    sheet = book.active
    sheet.append(["Реєстр абонентів ОК «Сосновий Бір»"])
    sheet.append(["Особовий рахунок", "ТП", "ПІБ", "Адреса", "Телефон", "E-mail", "Пільга, %", "Лічильник", "Лінія"])
    for i in range(1, SUBSCRIBERS + 1):
        phone = f"067 {i:03d} 45 67"
        benefit = "50" if i % 25 == 0 else ""
        if bad and i == 17:
            phone = "067-12"
        if bad and i == 230:
            benefit = "п'ятдесят"
        sheet.append([f"{i:05d}", "TP-7", f"Абонент {i}", f"вул. Соснова, {i}", phone,
                      f"a{i}@coop.ua" if i % 10 == 0 else "", benefit, f"M{i:05d}", str(1 + i % 2)])
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


TYPED = (17, 150, 299)  # the meters the round's file missed on 1 December: typed on the page


def december(i: int) -> int:
    return 1000 + 7 * i + 100 + i % 90


def readings_csv() -> str:
    """What the office's meter readers brought: every meter on 1 November, all but three on 1 December."""
    rows = ["meter,at,value"]
    for i in range(1, SUBSCRIBERS + 1):
        rows.append(f"M{i:05d},2026-11-01T00:00,{1000 + 7 * i}")
        if i not in TYPED:
            rows.append(f"M{i:05d},2026-12-01T00:00,{december(i)}")
    return "\n".join(rows) + "\n"


@pytest.fixture
def mailbox():
    received = []

    class Inbox:
        async def handle_DATA(self, server, session, envelope):
            received.append(envelope)
            return "250 OK"

    controller = Controller(Inbox(), hostname="127.0.0.1", port=free_port())
    controller.start()
    yield controller.port, received
    controller.stop()


@pytest.fixture
def office_server(app, db, database_url, mailbox, tmp_path):
    """The app served on loopback, its worker in a thread, mail to the loopback SMTP server."""
    if not database_url.startswith("sqlite"):
        pytest.skip("one database is enough for a walk through the pages")
    with db() as session:
        org, site = office(session)
        for number in ("1", "2"):
            session.add(Line(org_id=org.id, site_id=site.id, number=number))
        create_user(session, HEAD, PASSWORD, "org_admin", org, name="Голова правління")
    app.config.update(WTF_CSRF_ENABLED=True, SMTP_HOST="127.0.0.1", SMTP_PORT=mailbox[0],
                      MAIL_FROM="ОК «Сосновий Бір» <billing@coop.ua>", BACKUP_DIR=str(tmp_path / "backups"))
    running = make_server("127.0.0.1", free_port(), app, threaded=True)
    threading.Thread(target=running.serve_forever, daemon=True).start()
    worker = Worker(app, name="walk", scheduled=False, poll_seconds=0.2)
    working = threading.Thread(target=worker.forever, daemon=True)
    working.start()
    yield f"http://127.0.0.1:{running.server_port}"
    worker.stop.set()
    working.join(timeout=10)
    running.shutdown()


def sign_in(page, server):
    page.goto(server + "/login")
    page.fill("input[name=email]", HEAD)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")


def finished_job(page) -> int:
    """On a job's page: wait for the progress bar to reach its end and the badge to say done."""
    page.wait_for_url(re.compile(r".*/jobs/\d+$"))
    page.wait_for_selector(".badge.job-done", timeout=30_000)
    bar = page.locator("#job-progress")
    assert bar.get_attribute("value") == bar.get_attribute("max")
    return int(page.url.rsplit("/", 1)[1])


def test_the_office_walks_the_whole_month(app, db, office_server, mailbox, tmp_path):
    from playwright.sync_api import sync_playwright  # noqa: PLC0415 - only where a browser runs

    server, (_, mails) = office_server, mailbox
    shots = Path(os.environ.get("BALANS_SCREENSHOTS", tmp_path))
    shots.mkdir(parents=True, exist_ok=True)
    (tmp_path / "abonenty.xlsx").write_bytes(workbook(bad=True))
    (tmp_path / "abonenty-v2.xlsx").write_bytes(workbook(bad=False))
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=BROWSER_ARGS)
        page = browser.new_context(viewport=WIDTHS["desktop"], locale="uk-UA").new_page()
        page.on("dialog", lambda dialog: dialog.accept())  # «Видати рахунки?» — yes
        page.set_default_timeout(20_000)

        # a–c. The register: two bad rows named by line and column, fixed, re-uploaded, applied.
        sign_in(page, server)
        page.click("text=Реєстр")
        page.click("text=Імпорт реєстру")
        page.set_input_files("input[name=file]", str(tmp_path / "abonenty.xlsx"))
        page.click("text=Переглянути")
        errors = page.locator("tr.fate-error-row")
        assert errors.count() == 2
        assert errors.nth(0).locator("td").first.inner_text() == "19"
        assert "«Телефон»: «067-12» — не номер телефону" in errors.nth(0).inner_text()
        assert errors.nth(1).locator("td").first.inner_text() == "232"
        assert "«Пільга, %»: «п'ятдесят» — не число" in errors.nth(1).inner_text()
        page.click("text=Завантажити виправлений файл")
        page.set_input_files("input[name=file]", str(tmp_path / "abonenty-v2.xlsx"))
        page.click("text=Переглянути")
        assert f"Нові: {SUBSCRIBERS}" in page.inner_text(".legend")
        page.click(f"text=Застосувати ({SUBSCRIBERS} рядків)")
        assert f"Реєстр оновлено: нових {SUBSCRIBERS}" in page.inner_text("main")

        # d. Net billing: the surplus paid in money at the export price.
        page.goto(server + "/settings/net-billing")
        page.check("input[name=net_billing][value=money]")
        page.fill("input[name=export_price]", "3,50")
        page.click("button:has-text('Зберегти')")
        assert "Збережено." in page.inner_text("main")
        with db() as session:
            org = session.scalar(select(Organisation))
            assert org.net_billing == "money" and str(org.export_price).startswith("3.5")

        # e. The readings: the round's CSV uploaded, then the three meters it missed typed into the round.
        (tmp_path / "obkhid-2026-11.csv").write_text(readings_csv(), encoding="utf-8")
        page.goto(server + "/sites/TP-7/month?period=2026-11")
        page.click("text=Внести показники")
        page.set_input_files("input[name=file]", str(tmp_path / "obkhid-2026-11.csv"))
        page.click("button:has-text('Завантажити')")
        assert f"Із файлу збережено показників: {2 * SUBSCRIBERS - len(TYPED)}." in page.inner_text("main")
        assert page.locator("input.reading-input").count() == len(TYPED)
        for i in TYPED:
            page.fill(f"input[name=value-M{i:05d}]", str(december(i)))
        page.screenshot(path=str(shots / "readings-round-desktop.png"), full_page=False)
        page.click("button:has-text('Зберегти показники')")
        assert f"Збережено показників: {len(TYPED)}." in page.inner_text("main")
        assert "Усі лічильники мають показник" in page.inner_text("main")
        with db() as session:
            assert session.scalar(select(func.count()).select_from(Reading)) == 2 * SUBSCRIBERS

        # f. The month: draft (the job runs in the worker), then the review against October.
        page.goto(server + "/sites/TP-7/month?period=2026-11")
        assert f"{SUBSCRIBERS} " in page.inner_text(".month-counts")
        page.click("text=Сформувати чернетку")
        draft_job = finished_job(page)
        assert f"{SUBSCRIBERS}" in page.inner_text("dl.money")
        page.screenshot(path=str(shots / "month-draft-job-desktop.png"), full_page=False)
        page.click("text=До роботи місяця")
        assert page.locator("table.month-changes tbody tr").count() == 100  # the biggest changes first
        page.screenshot(path=str(shots / "month-review-desktop.png"), full_page=False)

        # g. Issue: the password was typed long ago, so it is asked again.
        with db() as session:
            session.execute(update(UserSession).values(authenticated_at=func.datetime("now", "-1 hour")))
        page.click("button:has-text('Видати рахунки')")
        page.fill("input[name=password]", PASSWORD)
        page.click("button:has-text('Підтвердити')")
        page.wait_for_url(re.compile(r".*/sites/TP-7/month.*"))
        page.click("button:has-text('Видати рахунки')")
        finished_job(page)
        page.click("text=До роботи місяця")
        assert "Видано" in page.inner_text("main") or "видано" in page.inner_text("main").lower()

        # h. E-mail: one message with its PDF for each subscriber who has an address.
        page.click("button:has-text('Надіслати e-mail абонентам')")
        finished_job(page)
        page.screenshot(path=str(shots / "month-email-job-desktop.png"), full_page=False)
        assert len(mails) == SUBSCRIBERS // 10
        for envelope in mails:
            message = message_from_bytes(envelope.content, policy=default)
            [attachment] = list(message.iter_attachments())
            assert attachment.get_content_type() == "application/pdf"
            assert attachment.get_content().startswith(b"%PDF")
        assert sorted(m.rcpt_tos[0] for m in mails)[:2] == ["a100@coop.ua", "a10@coop.ua"]

        # i. The bank's statement: 00005 paid with its number; a payment for 00042 says only «Абонент».
        with db() as session:
            owed = session.scalar(select(Invoice.total).join(Account, Account.id == Invoice.account_id)
                                  .where(Account.number == "00042", Invoice.period == "2026-11"))
            five = session.scalar(select(Invoice.total).join(Account, Account.id == Invoice.account_id)
                                  .where(Account.number == "00005", Invoice.period == "2026-11"))
        paid = owed + 100
        (tmp_path / "vypyska-2026-12-03.xml").write_bytes(camt053(
            entry(f"{five:.2f}", "Оплата за електроенергію, о/р 00005, листопад 2026", "PB2026120300001",
                  payer="Абонент 5", iban="UA213223130000026007233566005", day="2026-12-03"),
            entry(f"{paid:.2f}", "За світло, Соснова", "PB2026120300002", payer="Абонент 42",
                  iban="UA213223130000026007233566042", day="2026-12-03")))
        page.goto(server + "/sites/TP-7/month?period=2026-11")
        page.click("text=Завантажити виписку банку")
        page.set_input_files("input[name=file]", str(tmp_path / "vypyska-2026-12-03.xml"))
        page.click("button:has-text('Імпортувати')")
        page.wait_for_url(re.compile(r".*/payments/statements/\d+$"))
        statement_url = page.url
        legend = page.inner_text(".legend")
        assert "Зараховано: 1" in legend and "Не розпізнано: 1" in legend
        assert page.locator("svg.fates rect").count() == 2
        page.screenshot(path=str(shots / "statement-outcome-desktop.png"), full_page=True)

        # j. The unmatched queue: the payment goes to 00042, whose account then shows the overpayment.
        page.click("text=Розібрати нерозпізнані (1)")
        item = page.locator("li", has_text="За світло, Соснова")
        item.locator("input[name=account]").fill("00042")
        item.locator("button:has-text('Зарахувати')").click()
        assert "00042" in page.inner_text("main")
        page.screenshot(path=str(shots / "unmatched-assigned-desktop.png"), full_page=False)
        page.goto(server + "/payments/account?number=00042")
        book = page.inner_text("main")
        assert re.search(r"Переплата:\s*100,00", book) and re.search(r"[Зз]алишок 0,00", book)
        page.screenshot(path=str(shots / "account-00042-desktop.png"), full_page=True)

        # The phone: the month, the draft's job, the statement's outcome.
        phone = browser.new_context(viewport=WIDTHS["phone"], locale="uk-UA").new_page()
        sign_in(phone, server)
        phone.goto(server + "/sites/TP-7/month?period=2026-11")
        phone.screenshot(path=str(shots / "month-phone.png"), full_page=False)
        payments = phone.locator(".month-steps > li").last
        assert payments.locator("a[href='/payments/statements']").is_visible()
        payments.screenshot(path=str(shots / "month-payments-phone.png"))
        phone.goto(f"{server}/jobs/{draft_job}")
        assert phone.locator(".badge.job-done").is_visible()
        phone.screenshot(path=str(shots / "month-draft-job-phone.png"), full_page=False)
        phone.goto(statement_url)
        assert phone.locator("svg.fates").is_visible()
        phone.screenshot(path=str(shots / "statement-outcome-phone.png"), full_page=True)
        phone.goto(server + "/payments/statements")
        phone.screenshot(path=str(shots / "statements-phone.png"), full_page=True)
        for shown in (page, phone):
            assert shown.evaluate("document.documentElement.scrollWidth") <= shown.viewport_size["width"]
        browser.close()
    with db() as session:
        assert session.scalar(select(func.count()).select_from(Payment).where(Payment.account_id.is_(None))) == 0
        assert session.scalar(select(func.count()).select_from(Invoice).where(Invoice.status == "issued")) == \
            SUBSCRIBERS
