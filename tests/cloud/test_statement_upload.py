"""The accountant uploads the bank's statement on a page (issue 17): the November camt.053 lands on four
accounts, one payment with a misspelt account number waits in the unmatched queue, a second upload of the same
file adds nothing, a broken file is refused naming the element or line and changes nothing, and past imports are
listed with their counts. The same through ``POST /api/v1/payments/statements`` with a Bearer token."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest
from sqlalchemy import func, select

from cloud.accounts.organisations import create_user, upsert_account
from cloud.api.tokens import make_token
from cloud.models import AuditLog, LedgerEntry, Organisation, Payment, StatementImport
from tests.cloud.office import office
from tests.cloud.payments.statements import camt053, entry

FIXTURES = Path(__file__).parent / "payments" / "fixtures"
NOVEMBER = (FIXTURES / "camt053_v08_november.xml").read_bytes()
PRIVAT = (FIXTURES / "privatbank_business_november.csv").read_bytes()
PASSWORD = "correct horse battery"
# One payment whose purpose names no account of ours: «о/р 9999» is a typo for 01234.
MISSPELT = camt053(entry("512.00", "Оплата світло о/р 9999", "PB2026111500001", payer="Коваль Ірина",
                         iban="UA113052990000026001234567890", day="2026-11-15"))


@pytest.fixture
def books(db) -> int:
    with db() as session:
        org, site = office(session)
        for number in ("01001", "01234", "04001", "05015"):
            upsert_account(session, org, number, f"Абонент {number}", f"вул. Соснова, {number}", site)
        create_user(session, "buh@coop.ua", PASSWORD, "accountant", org)
        create_user(session, "clerk@coop.ua", PASSWORD, "clerk", org)
        return org.id


def csrf(client, url) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', client.get(url).get_data(as_text=True)).group(1)


def sign_in(client, email="buh@coop.ua"):
    answer = client.post("/login", data={"email": email, "password": PASSWORD, "csrf_token": csrf(client, "/login")})
    assert answer.status_code == 302


def send(client, data: bytes, name: str, fmt: str = "auto"):
    return client.post("/payments/statements", content_type="multipart/form-data",
                       data={"csrf_token": csrf(client, "/payments/statements"), "format": fmt,
                             "file": (io.BytesIO(data), name)})


def written(db) -> tuple[int, int, int]:
    with db() as session:
        return tuple(session.scalar(select(func.count()).select_from(t)) for t in (StatementImport, Payment,
                                                                                   LedgerEntry))


def test_the_accountant_uploads_the_november_statement_and_sees_its_outcome(app, client, db, books):
    app.config["WTF_CSRF_ENABLED"] = True
    sign_in(client)
    page = client.get("/payments/statements").get_data(as_text=True)
    assert "Виписка банку" in page and 'enctype="multipart/form-data"' in page and "csv:privatbank-business" in page
    answer = send(client, NOVEMBER, "vypyska-2026-11-03.xml")
    assert answer.status_code == 302 and re.fullmatch(r"/payments/statements/\d+", answer.headers["Location"])
    outcome = client.get(answer.headers["Location"]).get_data(as_text=True)
    legend = outcome.split('class="legend">', 1)[1].split("</ul>", 1)[0]
    assert re.findall(r"</i>([^<]+): <strong>(\d+)</strong>", legend) == [
        ("Зараховано", "4"), ("Не розпізнано", "0"), ("Уже імпортовано", "0"), ("Сторновано", "0")]
    assert '<svg class="fates"' in outcome and 'class="split-matched"' in outcome and "style=" not in outcome
    assert "3\u202f979,00" in outcome
    with db() as session:
        assert session.scalar(select(func.count()).select_from(Payment)) == 4
        assert session.scalar(select(AuditLog.actor).where(AuditLog.action == "statement.import")) == "buh@coop.ua"

    assert send(client, MISSPELT, "vypyska-2026-11-15.xml").status_code == 302
    assert "vypyska-2026-11-15.xml" in client.get("/payments/statements").get_data(as_text=True)
    with db() as session:
        latest = session.scalar(select(StatementImport).order_by(StatementImport.id.desc()).limit(1))
        assert latest.counts["unmatched"] == 1 and latest.counts["matched"] == 0
    outcome = client.get(f"/payments/statements/{latest.id}").get_data(as_text=True)
    assert 'href="/payments/unmatched"' in outcome and "Розібрати нерозпізнані (1)" in outcome

    again = send(client, NOVEMBER, "vypyska-2026-11-03.xml")  # the same file a second time adds nothing
    with db() as session:
        third = session.get(StatementImport, int(again.headers["Location"].rsplit("/", 1)[1]))
        assert third.counts["duplicates"] == 4 and third.counts["imported"] == 0
        assert session.scalar(select(func.count()).select_from(Payment)) == 5
    listing = client.get("/payments/statements").get_data(as_text=True)
    rows = listing.split("<tbody>", 1)[1].split("</tbody>", 1)[0].count("<tr>")
    assert rows == 3


def test_a_bank_csv_is_recognised_and_its_broken_line_is_named_and_nothing_is_written(app, client, db, books):
    sign_in(client)
    answer = send(client, PRIVAT, "privat.csv")
    assert answer.status_code == 302
    with db() as session:
        row = session.scalar(select(StatementImport))
        assert row.format == "csv:privatbank-business" and row.counts["matched"] == 3
    before = written(db)
    broken = PRIVAT.replace("1 250.40".encode("cp1251"), "1 25O.40".encode("cp1251"))
    refused = send(client, broken, "privat-broken.csv", "csv:privatbank-business")
    page = refused.get_data(as_text=True)
    assert refused.status_code == 422 and "line 2" in page and "нічого не змінено" in page
    assert written(db) == before

    refused = send(client, NOVEMBER.replace(b"<Amt Ccy=\"UAH\">1250.40</Amt>", b"<Amt Ccy=\"UAH\">12x0.40</Amt>"),
                   "broken.xml")
    assert refused.status_code == 422 and "Ntry[1]" in refused.get_data(as_text=True)
    refused = send(client, b"just some text;1;2\n", "notes.csv")
    assert refused.status_code == 422 and "Оберіть формат" in refused.get_data(as_text=True)
    assert send(client, b"", "empty.xml").status_code == 422
    assert written(db) == before


def test_only_the_accountant_and_the_admin_upload_statements(client, db, books):
    sign_in(client, "clerk@coop.ua")
    assert client.get("/payments/statements").status_code == 403
    assert client.post("/payments/statements", data={"format": "auto"}).status_code == 403
    assert written(db) == (0, 0, 0)


def test_the_month_page_and_the_payment_pages_link_to_the_upload(client, db, books):
    sign_in(client)
    assert 'href="/payments/statements"' in client.get("/payments/unmatched").get_data(as_text=True)
    month = client.get("/sites/TP-7/month?period=2026-11").get_data(as_text=True)
    assert 'href="/payments/statements"' in month and "import-statement" not in month


def test_a_statement_through_the_api(client, db, books):
    with db() as session:
        org = session.get(Organisation, books)
        _, token = make_token(session, org, "bank-sync", "accountant", "admin")
        _, clerk = make_token(session, org, "office-pc", "clerk", "admin")

    def post(body, token=token, **query):
        return client.post("/api/v1/payments/statements", data=body, query_string=query,
                           headers={"Authorization": f"Bearer {token}", "Content-Type": "application/xml"})

    answer = post(NOVEMBER, filename="nov.xml")
    assert answer.status_code == 201
    body = answer.get_json()
    assert (body["format"], body["matched"], body["unmatched"], body["reversed"], body["total_uah"]) == (
        "camt053", 4, 0, 0, "3979.00")
    assert post(NOVEMBER).get_json()["duplicates"] == 4
    bad = post(b"<Document><oops", filename="bad.xml")
    assert bad.status_code == 422 and bad.get_json()["error"] == "invalid" and "bad.xml" in bad.get_json()["message"]
    assert post(PRIVAT, format="csv:nordea").get_json()["field"] == "format"
    assert post(b"").get_json()["field"] == "file"
    assert post(NOVEMBER, clerk).status_code == 403
    assert client.post("/api/v1/payments/statements", data=NOVEMBER).status_code == 401
    listed = client.get("/api/v1/payments/statements", headers={"Authorization": f"Bearer {token}"}).get_json()
    assert [r["duplicates"] for r in listed] == [4, 0]
    with db() as session:
        assert session.scalar(select(func.count()).select_from(Payment)) == 4
        assert session.scalar(select(AuditLog.actor).where(AuditLog.action == "statement.import").limit(1)) == \
            "api:bank-sync"
