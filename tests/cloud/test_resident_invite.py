"""The head of the cooperative adds a resident to account 01001 (issue 17): invited by e-mail from the people
page (a real SMTP server on loopback receives the link), by `invite-user --role resident --account`, or through
the API with ``account_id``; the resident sets a password and sees their own account — whose invoice page shows
the organisation's note and the account's invitation code, as the PDF does. A wrong account is refused with
its field named and nothing written."""

from __future__ import annotations

import re
from datetime import datetime
from email import message_from_bytes
from email.policy import default

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import func, select

from cloud.accounts.organisations import create_user
from cloud.api.tokens import make_token
from cloud.models import Account, AuditLog, Invoice, Meter, Organisation, OutboxMessage, User, UserToken
from cloud.notifications.mail import SmtpSender, send_pending
from provisioning.ports import free_port
from tests.cloud.office import account_with_meter, bill, office, read

PASSWORD = "correct horse battery"
RESIDENT_PASSWORD = "сосновий бір 2026"
NOTE = "Оплата до 20 числа.\nЧергова: 067 000 00 00"


@pytest.fixture
def coop(db) -> int:
    with db() as session:
        org, site = office(session)
        org.invoice_note = NOTE
        create_user(session, "head@coop.ua", PASSWORD, "org_admin", org, name="Голова правління")
        _, meter = account_with_meter(session, org, site, "01001")
        read(session, meter, datetime(2026, 10, 1), "1000")
        read(session, meter, datetime(2026, 11, 1), "1250")
        other, other_site = office(session, name="ОСББ «Липки»", code="TP-1")
        account_with_meter(session, other, other_site, "55555")
        return org.id


@pytest.fixture
def mailbox():
    received = []

    class Inbox:
        async def handle_DATA(self, server, session, envelope):
            received.append(envelope)
            return "250 OK"

    port = free_port()
    controller = Controller(Inbox(), hostname="127.0.0.1", port=port)
    controller.start()

    def deliver(db):
        with db() as session:
            send_pending(session, SmtpSender("127.0.0.1", port, timeout=5), "no-reply@coop.ua")
        return received

    yield deliver
    controller.stop()


def sign_in(client, email="head@coop.ua", password=PASSWORD):
    assert client.post("/login", data={"email": email, "password": password}).status_code == 302


def counts(db) -> tuple:
    with db() as session:
        return tuple(session.scalar(select(func.count()).select_from(t)) for t in (User, UserToken, OutboxMessage))


def test_the_head_invites_a_resident_who_sees_the_invoice_with_the_note_and_code(app, client, db, coop, mailbox):
    bill(db, "TP-7", "2026-10", issue=True)
    sign_in(client)
    page = client.get("/people/").get_data(as_text=True)
    assert 'name="account"' in page and 'value="resident"' in page
    answer = client.post("/people/invite", data={"role": "resident", "account": "01001",
                                                 "email": "Ivanenko@Example.ua", "name": ""})
    assert answer.status_code == 302, answer.get_data(as_text=True)
    with db() as session:
        user = session.scalar(select(User).where(User.email == "ivanenko@example.ua"))
        account = session.scalar(select(Account).where(Account.number == "01001"))
        assert user.role == "resident" and user.account_id == account.id and user.name == "Абонент 01001"
        logged = session.scalar(select(AuditLog).where(AuditLog.action == "user.invite"))
        assert logged.actor == "head@coop.ua" and logged.after["account"] == "01001"
        code, invoice_id = account.invite_code, session.scalar(select(Invoice.id))
    [mail] = mailbox(db)
    assert mail.rcpt_tos == ["ivanenko@example.ua"]
    text = message_from_bytes(mail.content, policy=default).get_content()
    path = re.search(r"http://localhost(/people/welcome/[A-Za-z0-9_\-]+)", text).group(1)
    resident = app.test_client()
    assert resident.post(path, data={"password": RESIDENT_PASSWORD,
                                     "password_again": RESIDENT_PASSWORD}).status_code == 302
    invoice = resident.get(f"/cabinet/invoices/{invoice_id}").get_data(as_text=True)
    assert "Оплата до 20 числа." in invoice and "067 000 00 00" in invoice and 'class="invoice-note"' in invoice
    assert code and code in invoice and "Код для входу в кабінет" in invoice


def test_a_resident_to_an_account_not_the_organisations_is_refused_naming_the_field(client, db, coop):
    sign_in(client)
    before = counts(db)
    for number in ("55555", "", "9999"):  # another organisation's, none, unknown
        answer = client.post("/people/invite", data={"role": "resident", "account": number,
                                                     "email": "x@example.ua"})
        page = answer.get_data(as_text=True)
        assert answer.status_code == 422 and 'name="account" value="' in page
        assert re.search(r'name="account"[^>]*aria-invalid="true"', page)
    assert counts(db) == before


def test_the_cli_invites_a_resident_to_an_account(app, db, coop):
    runner = app.test_cli_runner()
    done = runner.invoke(args=["invite-user", "--email", "petro@example.ua", "--role", "resident",
                               "--account", "01001", "--org", str(coop)])
    assert done.exit_code == 0 and "account 01001" in done.output and "/people/welcome/" in done.output
    before = counts(db)
    wrong = runner.invoke(args=["invite-user", "--email", "olha@example.ua", "--role", "resident",
                                "--account", "55555", "--org", str(coop)])
    assert wrong.exit_code == 1 and "no account 55555" in wrong.output
    staff = runner.invoke(args=["invite-user", "--email", "olha@example.ua", "--role", "clerk",
                                "--account", "01001", "--org", str(coop)])
    assert staff.exit_code != 0 and "--role resident only" in staff.output
    assert counts(db) == before
    with db() as session:
        user = session.scalar(select(User).where(User.email == "petro@example.ua"))
        assert user.role == "resident" and session.get(Account, user.account_id).number == "01001"


def test_the_api_invites_a_resident_by_account_id(client, db, coop):
    with db() as session:
        secret = make_token(session, session.get(Organisation, coop), "1c", "org_admin", "head@coop.ua")[1]
        mine = session.scalar(select(Account.id).where(Account.number == "01001"))
        theirs = session.scalar(select(Account.id).where(Account.number == "55555"))
    headers = {"Authorization": f"Bearer {secret}"}
    before = counts(db)
    for body in ({"email": "a@example.ua", "role": "resident"}, {"email": "a@example.ua", "role": "resident",
                                                                 "account_id": "01001"},
                 {"email": "a@example.ua", "role": "resident", "account_id": theirs},
                 {"email": "a@example.ua", "role": "clerk", "account_id": mine}):
        answer = client.post("/api/v1/people/invite", json=body, headers=headers)
        assert answer.status_code == 422 and answer.get_json()["field"] == "account_id", body
    assert counts(db) == before
    answer = client.post("/api/v1/people/invite", json={"email": "a@example.ua", "role": "resident",
                                                        "account_id": mine}, headers=headers)
    assert answer.status_code == 201 and answer.get_json()["account_id"] == mine and answer.get_json()["mailed"]
    with db() as session:
        assert session.scalar(select(Meter.account_id).where(Meter.code == "M01001")) == mine
