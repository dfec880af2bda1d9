"""The accountant's hand work, on the page and on the command line: cash taken at the office, and the unmatched
queue — a payment assigned to its account, the payer's IBAN remembered, and an IBAN that paid for two accounts
no longer trusted."""

from __future__ import annotations

import html
import json
import re
import threading
import time
from datetime import date, timedelta
from decimal import Decimal

import pytest
from playwright.sync_api import sync_playwright
from sqlalchemy import func, select
from werkzeug.serving import make_server

from cloud.accounts.organisations import create_user
from cloud.models import Account, AuditLog, LedgerEntry, Organisation, PayerIban, Payment
from cloud.payments.importer import cash_payment, import_statement
from provisioning.ports import free_port
from tests.cloud.conftest import setup_cooperative
from tests.cloud.payments.statements import camt053 as statement
from tests.cloud.payments.statements import entry

PASSWORD = "correct horse battery"
PARENT = "UA903052992990004149123456789"  # pays for two flats
NEIGHBOUR = "UA113052990000026203876543210"


@pytest.fixture
def office(app, db, seed_scenario):
    """The seed's cooperative (A) with its accountant and manager, and a second cooperative (B) with its admin."""
    org_a, _ = setup_cooperative(db, seed_scenario)
    org_b, _ = setup_cooperative(db, seed_scenario, name_suffix="-B")
    with db() as session:
        a, b = session.get(Organisation, org_a), session.get(Organisation, org_b)
        create_user(session, "buh@a.ua", PASSWORD, "accountant", a)
        create_user(session, "head@a.ua", PASSWORD, "manager", a)
        create_user(session, "admin@b.ua", PASSWORD, "org_admin", b)
        resident = session.scalar(select(Account).where(Account.org_id == org_a, Account.number == "01002"))
        create_user(session, "r@a.ua", PASSWORD, "resident", a, account=resident)
    return {"a": org_a, "b": org_b}


def login(client, email):
    assert client.post("/login", data={"email": email, "password": PASSWORD}).status_code == 302


def account(session, org_id, number) -> Account:
    return session.scalar(select(Account).where(Account.org_id == org_id, Account.number == number))


def balance(session, org_id, number) -> Decimal:
    found = account(session, org_id, number)
    return session.scalar(select(func.coalesce(func.sum(LedgerEntry.amount), 0))
                          .where(LedgerEntry.account_id == found.id)) or Decimal(0)


def import_camt(db, org_id, *entries, name="nov.xml"):
    with db() as session:
        return import_statement(session, session.get(Organisation, org_id), statement(*entries), name, "camt053",
                                "buh@a.ua")


# ---- cash -----------------------------------------------------------------------------------------------------

def test_an_accountant_books_cash_once_even_when_the_form_is_sent_twice(client, db, office):
    login(client, "buh@a.ua")
    page = client.get("/payments/cash").get_data(as_text=True)
    assert "Оплата в касі" in page and 'name="csrf_token"' in page and 'name="viewport"' in page
    entry_number = re.search(r'name="entry" value="([^"]+)"', page).group(1)
    form = {"account": "1001", "amount": "1 250,40", "date": "2026-11-10", "receipt": "", "entry": entry_number}
    first = client.post("/payments/cash", data=form)
    assert first.status_code == 302
    assert "Оплату 1250.40 грн на о/р 01001 проведено" in client.get("/payments/cash").get_data(as_text=True)
    assert client.post("/payments/cash", data=form).status_code == 302  # a double click, a refresh
    assert "вже проведено раніше" in client.get("/payments/cash").get_data(as_text=True)
    with db() as session:
        payments = session.scalars(select(Payment).where(Payment.channel == "cash")).all()
        assert [(p.amount, p.booked, p.key) for p in payments] == [(Decimal("1250.40"), date(2026, 11, 10),
                                                                    f"cash:{entry_number}")]
        assert balance(session, office["a"], "01001") == Decimal("-1250.40")
        trail = session.scalar(select(AuditLog).where(AuditLog.action == "payment.cash"))
        assert trail.actor == "buh@a.ua" and trail.org_id == office["a"]
        assert trail.after == {"account": "01001", "amount": "1250.40", "booked": "2026-11-10",
                               "receipt": entry_number}


@pytest.mark.parametrize(("field", "value", "says"), [
    ("amount", "дві гривні", "наприклад 1250,40"),
    ("amount", "0", "більшою за нуль"),
    ("amount", "12,345", "не гривні з копійками"),
    ("account", "9999", "немає в реєстрі"),
    ("account", "", "Вкажіть особовий рахунок"),
    ("date", (date.today() + timedelta(days=3)).isoformat(), "ще не настала"),
    ("date", "10.11", "не дата"),
])
def test_a_wrong_cash_entry_books_nothing_and_says_what_is_wrong(client, db, office, field, value, says):
    login(client, "buh@a.ua")
    form = {"account": "01001", "amount": "100", "date": "2026-11-10", "entry": "B-1", field: value}
    response = client.post("/payments/cash", data=form)
    assert response.status_code == 422 and says in response.get_data(as_text=True)
    with db() as session:
        assert session.scalar(select(func.count()).select_from(Payment)) == 0


def test_a_paper_receipt_number_is_the_idempotency_key_and_cannot_be_reused(client, db, office):
    login(client, "buh@a.ua")
    form = {"account": "01001", "amount": "300", "date": "2026-11-10", "receipt": "КВ-17", "entry": "B-1"}
    assert client.post("/payments/cash", data=form).status_code == 302
    again = client.post("/payments/cash", data={**form, "amount": "310", "entry": "B-2"})
    assert again.status_code == 422 and "Квитанцію КВ-17 вже проведено: 300.00 грн" in again.get_data(as_text=True)


def test_the_pages_are_english_on_request(client, office):
    login(client, "buh@a.ua")
    assert "Cash payment" in client.get("/payments/cash?lang=en").get_data(as_text=True)
    assert "Unmatched payments" in client.get("/payments/unmatched").get_data(as_text=True)


@pytest.mark.parametrize(("who", "status"), [("head@a.ua", 403), ("r@a.ua", 403), (None, 302)])
def test_only_an_accountant_or_the_admin_may_enter_payments(client, office, who, status):
    if who:
        login(client, who)
    for url in ("/payments/cash", "/payments/unmatched"):
        assert client.get(url).status_code == status
    assert client.post("/payments/cash", data={"account": "01001", "amount": "5"}).status_code == status


def test_the_forms_want_a_csrf_token(app, client, db, office):
    login(client, "buh@a.ua")
    app.config["WTF_CSRF_ENABLED"] = True
    try:
        form = {"account": "01001", "amount": "50", "date": "2026-11-10", "entry": "B-9"}
        assert client.post("/payments/cash", data=form).status_code == 400
        token = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/payments/cash").get_data(as_text=True))
        assert client.post("/payments/cash", data={**form, "csrf_token": token.group(1)}).status_code == 302
    finally:
        app.config["WTF_CSRF_ENABLED"] = False
    with db() as session:
        assert session.scalar(select(func.count()).select_from(Payment)) == 1


def test_another_organisation_sees_and_touches_none_of_our_payments(client, db, office):
    import_camt(db, office["a"], entry("80.00", "за світло, Петренко", "Q-1", iban=NEIGHBOUR))
    with db() as session:
        queued = session.scalar(select(Payment).where(Payment.org_id == office["a"]))
    login(client, "admin@b.ua")
    assert "Петренко" not in client.get("/payments/unmatched").get_data(as_text=True)
    client.post(f"/payments/unmatched/{queued.id}", data={"account": "01001"})
    # B has its own 01001: cash typed there lands on B's account, never on A's.
    client.post("/payments/cash", data={"account": "01001", "amount": "40", "date": "2026-11-10", "entry": "B-b"})
    with db() as session:
        assert session.get(Payment, queued.id).account_id is None
        assert balance(session, office["a"], "01001") == 0
        assert balance(session, office["b"], "01001") == Decimal("-40.00")


# ---- the unmatched queue --------------------------------------------------------------------------------------

def test_a_queued_payment_assigned_by_hand_teaches_its_iban_for_next_month(client, db, office):
    import_camt(db, office["a"], entry("80.00", "за світло, Петренко", "Q-1", iban=NEIGHBOUR))
    login(client, "buh@a.ua")
    page = client.get("/payments/unmatched").get_data(as_text=True)
    assert "за світло, Петренко" in page and NEIGHBOUR in page and "рахунок не знайдено" in page
    with db() as session:
        queued = session.scalar(select(Payment).where(Payment.org_id == office["a"]))
    response = client.post(f"/payments/unmatched/{queued.id}", data={"account": "4001"}, follow_redirects=True)
    body = html.unescape(response.get_data(as_text=True))
    assert "зараховано на о/р 04001" in body and f"IBAN {NEIGHBOUR} запам'ятано" in body
    assert "Черга порожня" in body
    again = client.post(f"/payments/unmatched/{queued.id}", data={"account": "01001"}, follow_redirects=True)
    assert "вже зараховано" in again.get_data(as_text=True)
    with db() as session:
        assert balance(session, office["a"], "04001") == Decimal("-80.00")
        assert balance(session, office["a"], "01001") == 0
        assert session.scalar(select(AuditLog).where(AuditLog.action == "payment.assign")).actor == "buh@a.ua"
    december = import_camt(db, office["a"], entry("80.00", "за світло", "Q-2", iban=NEIGHBOUR, day="2026-12-03"),
                           name="dec.xml")
    assert (december.matched, december.unmatched) == (1, 0)


def test_an_iban_assigned_to_two_accounts_is_no_longer_used_and_the_page_says_so(client, db, office):
    import_camt(db, office["a"], entry("483.00", "за електроенергію", "P-1", iban=PARENT),
                entry("512.00", "за електроенергію", "P-2", iban=PARENT))
    login(client, "buh@a.ua")
    with db() as session:
        first, second = session.scalars(select(Payment).where(Payment.org_id == office["a"])
                                        .order_by(Payment.id)).all()
    client.post(f"/payments/unmatched/{first.id}", data={"account": "01001"})
    response = client.post(f"/payments/unmatched/{second.id}", data={"account": "01002"}, follow_redirects=True)
    assert "не використовується для автоматичного зіставлення" in response.get_data(as_text=True)
    with db() as session:
        remembered = session.scalar(select(PayerIban).where(PayerIban.iban == PARENT))
        assert remembered.conflict is True
        assert session.scalar(select(AuditLog).where(AuditLog.action == "payer_iban.conflict")) is not None
    # Next month the parent pays without an account number: nobody guesses which flat.
    later = import_camt(db, office["a"], entry("500.00", "за світло", "P-3", iban=PARENT, day="2026-12-03"),
                        name="dec.xml")
    assert (later.matched, later.unmatched) == (0, 1)
    page = client.get("/payments/unmatched").get_data(as_text=True)
    assert "IBAN платив за кілька рахунків (01001, 01002)" in page
    assert "IBAN, що платили за кілька рахунків" in page and PARENT in page


def test_a_statement_that_shows_an_iban_paying_for_two_accounts_marks_it_conflicting(db, office):
    import_camt(db, office["a"], entry("80.00", "о/р 01001", "C-1", iban=PARENT))
    result = import_camt(db, office["a"], entry("90.00", "о/р 01002", "C-2", iban=PARENT, day="2026-12-03"),
                         entry("70.00", "за світло", "C-3", iban=PARENT, day="2026-12-03"), name="dec.xml")
    assert (result.matched, result.unmatched, result.conflicting_ibans) == (1, 1, 1)
    with db() as session:
        assert session.scalar(select(PayerIban).where(PayerIban.iban == PARENT)).conflict is True


# ---- the command line -----------------------------------------------------------------------------------------

def test_the_cli_books_cash_once_per_receipt_and_works_the_queue(app, db, office):
    runner = app.test_cli_runner()
    args = ["cash", "--org", str(office["a"]), "--account", "01001", "--amount", "250,00", "--date", "2026-11-10",
            "--receipt", "КВ-18", "--json"]
    first = runner.invoke(args=args)
    assert first.exit_code == 0, first.output
    assert json.loads(first.output)["status"] == "booked"
    assert json.loads(runner.invoke(args=args).output)["status"] == "already booked"
    refused = runner.invoke(args=["cash", "--org", str(office["a"]), "--account", "777", "--amount", "10"])
    assert refused.exit_code != 0 and "not in the register" in refused.output

    import_camt(db, office["a"], entry("80.00", "за світло", "Q-1", iban=NEIGHBOUR))
    listed = json.loads(runner.invoke(args=["unmatched", "--org", str(office["a"]), "--json"]).output)
    assert [(p["amount_uah"], p["payer_iban"]) for p in listed["payments"]] == [("80.00", NEIGHBOUR)]
    assigned = runner.invoke(args=["assign-payment", "--org", str(office["a"]), "--payment",
                                   str(listed["payments"][0]["payment"]), "--account", "04001"])
    assert assigned.exit_code == 0 and "payer IBAN: remembered" in assigned.output
    with db() as session:
        assert balance(session, office["a"], "01001") == Decimal("-250.00")
        assert balance(session, office["a"], "04001") == Decimal("-80.00")
        assert session.scalar(select(AuditLog).where(AuditLog.action == "payment.cash")).actor == "cli"
    other = runner.invoke(args=["assign-payment", "--org", str(office["b"]), "--payment",
                                str(listed["payments"][0]["payment"]), "--account", "01001"])
    assert other.exit_code != 0 and "does not exist in this organisation" in other.output


@pytest.mark.slow
@pytest.mark.skipif(not __import__("pathlib").Path("/usr/bin/chromium").exists(),
                    reason="Debian's chromium is not installed")
def test_an_accountant_works_the_payments_on_a_phone(app, db, office, database_url, tmp_path):
    """In a real browser at a phone's width, with CSRF on: cash entered through the form, a queued payment
    assigned, and no page scrolls sideways."""


    if not database_url.startswith("sqlite"):
        pytest.skip("one database is enough for the look of a page")
    import_camt(db, office["a"], entry("80.00", "за світло, Петренко", "Q-1", iban=NEIGHBOUR),
                entry("483.00", "за електроенергію", "Q-2", iban=PARENT))
    app.config["WTF_CSRF_ENABLED"] = True
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
            page.fill("input[name=email]", "buh@a.ua")
            page.fill("input[name=password]", PASSWORD)
            page.click("button[type=submit]")
            page.goto(base + "/payments/cash")
            page.fill("input[name=account]", "01001")
            page.fill("input[name=amount]", "1 250,40")
            page.click("form button[type=submit]:has-text('Провести оплату')")
            assert "Оплату 1250.40 грн на о/р 01001 проведено" in page.content()
            assert page.evaluate("document.documentElement.scrollWidth") <= 390
            page.screenshot(path=str(tmp_path / "cash-phone.png"), full_page=True)
            page.goto(base + "/payments/unmatched")
            assert page.evaluate("document.documentElement.scrollWidth") <= 390
            page.screenshot(path=str(tmp_path / "queue-phone.png"), full_page=True)
            page.locator("#payment-1 input[name=account]").fill("04001")
            page.locator("#payment-1 button[type=submit]").click()
            assert "зараховано на о/р 04001" in page.content()
            page.goto(base + "/payments/account?number=04001")
            assert page.evaluate("document.documentElement.scrollWidth") <= 390
            page.screenshot(path=str(tmp_path / "account-phone.png"), full_page=True)
            browser.close()
    finally:
        server.shutdown()
        app.config["WTF_CSRF_ENABLED"] = False
    with db() as session:
        assert balance(session, office["a"], "01001") == Decimal("-1250.40")
        assert balance(session, office["a"], "04001") == Decimal("-80.00")


def test_the_same_receipt_sent_twice_at_once_is_one_payment(db, office, database_url):
    """PostgreSQL: the second entry waits on the first one's receipt, then finds it instead of failing."""
    if database_url.startswith("sqlite"):
        pytest.skip("SQLite writers are queued by the app's write lock; the race is PostgreSQL's")

    outcome = {}

    def second():
        with db() as session:
            org = session.get(Organisation, office["a"])
            payment, created = cash_payment(session, org, account(session, office["a"], "01001"), Decimal("300"),
                                            date(2026, 11, 10), "cashier-2", "КВ-99")
            outcome["second"] = (payment.key, created)

    with db() as session:
        org = session.get(Organisation, office["a"])
        _, created = cash_payment(session, org, account(session, office["a"], "01001"), Decimal("300"),
                                  date(2026, 11, 10), "cashier-1", "КВ-99")
        worker = threading.Thread(target=second)
        worker.start()
        time.sleep(0.5)  # the second one has read nothing yet and now waits on the receipt's unique key
        assert created
    worker.join(timeout=30)
    assert outcome["second"] == ("cash:КВ-99", False)
    with db() as session:
        assert balance(session, office["a"], "01001") == Decimal("-300.00")
