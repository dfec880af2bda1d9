"""The organisation's people (issue 17): the head of the cooperative invites the accountant by e-mail (a real SMTP
server on loopback receives the link), a forgotten password is reset by a mailed link that signs every other
browser out, a clerk who left is disabled, the last org admin cannot be, and a resident joins with the code
printed on their first issued invoice — on the pages, in the CLI and through the JSON API."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from email import message_from_bytes
from email.policy import default

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import func, select, update

from cloud.accounts.invite_codes import ALPHABET, LENGTH, ensure_invite_code
from cloud.accounts.organisations import create_user
from cloud.api.tokens import make_token
from cloud.clock import utcnow
from cloud.models import Account, AuditLog, Meter, Organisation, OutboxMessage, User, UserSession, UserToken
from cloud.notifications.mail import SmtpSender, send_pending
from provisioning.ports import free_port
from tests.cloud.office import account_with_meter, bill, office, read

PASSWORD = "correct horse battery"
NEW_PASSWORD = "сосновий бір 2026"


@pytest.fixture
def coop(db) -> int:
    with db() as session:
        org, site = office(session)
        create_user(session, "head@coop.ua", PASSWORD, "org_admin", org, name="Голова правління")
        account_with_meter(session, org, site, "01001")
        return org.id


def sign_in(client, email="head@coop.ua", password=PASSWORD):
    answer = client.post("/login", data={"email": email, "password": password, "csrf_token": csrf(client, "/login")})
    assert answer.status_code == 302, answer.get_data(as_text=True)


def csrf(client, url) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', client.get(url).get_data(as_text=True)).group(1)


@pytest.fixture
def mailbox():
    """A real SMTP server on loopback; ``deliver(db)`` sends the outbox to it and returns the mails received."""
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


def link_in(envelope, path: str) -> str:
    text = message_from_bytes(envelope.content, policy=default).get_content()
    return re.search(rf"http://localhost({re.escape(path)}[A-Za-z0-9_\-]+)", text).group(1)


def counts(db) -> tuple:
    with db() as session:
        return tuple(session.scalar(select(func.count()).select_from(t)) for t in (User, UserToken, OutboxMessage))


# Invitations.

def test_the_head_invites_the_accountant_who_sets_a_password_by_the_mailed_link(app, client, db, coop, mailbox):
    app.config["WTF_CSRF_ENABLED"] = True
    sign_in(client)
    page = client.get("/people/").get_data(as_text=True)
    assert "head@coop.ua" in page and "Запросити" in page
    answer = client.post("/people/invite", data={"email": "Buh@Coop.ua", "name": "Олена Коваль", "role": "accountant",
                                                 "csrf_token": csrf(client, "/people/")})
    assert answer.status_code == 302
    assert "buh@coop.ua" in client.get("/people/").get_data(as_text=True)
    [mail] = mailbox(db)
    assert mail.rcpt_tos == ["buh@coop.ua"]
    path = link_in(mail, "/people/welcome/")
    with db() as session:
        token = session.scalar(select(UserToken))
        assert token.purpose == "invite" and token.token_hash != path.rsplit("/", 1)[1]  # only its SHA-256
        assert timedelta(hours=71) < token.expires_at - utcnow() <= timedelta(hours=72)
        assert session.scalar(select(AuditLog).where(AuditLog.action == "user.invite")).actor == "head@coop.ua"

    newcomer = app.test_client()
    assert "buh@coop.ua" in newcomer.get(path).get_data(as_text=True)
    assert newcomer.post("/login", data={"email": "buh@coop.ua", "password": "",
                                         "csrf_token": csrf(newcomer, "/login")}).status_code == 401
    differs = newcomer.post(path, data={"password": NEW_PASSWORD, "password_again": NEW_PASSWORD + "!",
                                        "csrf_token": csrf(newcomer, path)})
    assert differs.status_code == 422 and "Паролі не збігаються" in differs.get_data(as_text=True)
    short = newcomer.post(path, data={"password": "123", "password_again": "123", "csrf_token": csrf(newcomer, path)})
    assert short.status_code == 422 and "щонайменше 8" in short.get_data(as_text=True)
    done = newcomer.post(path, data={"password": NEW_PASSWORD, "password_again": NEW_PASSWORD,
                                     "csrf_token": csrf(newcomer, path)})
    assert done.status_code == 302
    assert newcomer.get("/payments/unmatched").status_code == 200  # signed in, as the accountant
    used = app.test_client().get(path)
    assert used.status_code == 410 and "вже використано" in used.get_data(as_text=True)
    sign_in(app.test_client(), "buh@coop.ua", NEW_PASSWORD)


def test_an_expired_invitation_says_so(app, client, db, coop, mailbox):
    sign_in(client)
    client.post("/people/invite", data={"email": "clerk@coop.ua", "role": "clerk"})
    path = link_in(mailbox(db)[0], "/people/welcome/")
    with db() as session:
        session.execute(update(UserToken).values(expires_at=utcnow() - timedelta(minutes=1)))
    expired = app.test_client().get(path)
    assert expired.status_code == 410 and "Термін дії посилання минув" in expired.get_data(as_text=True)
    assert app.test_client().post(path, data={"password": NEW_PASSWORD, "password_again": NEW_PASSWORD}) \
        .status_code == 410
    assert app.test_client().get("/people/welcome/nonsense").status_code == 404


@pytest.mark.parametrize(("form", "field_words"), [
    ({"email": "not-an-address", "role": "clerk"}, "не адреса e-mail"),
    ({"email": "head@coop.ua", "role": "clerk"}, "вже є"),
    ({"email": "x@coop.ua", "role": "operator"}, "Роль"),
    ({"email": "x@coop.ua", "role": "resident"}, "Роль"),
])
def test_a_bad_invitation_names_the_field_and_writes_nothing(client, db, coop, form, field_words):
    sign_in(client)
    before = counts(db)
    answer = client.post("/people/invite", data=form)
    assert answer.status_code == 422 and field_words in answer.get_data(as_text=True)
    assert counts(db) == before


def test_a_clerk_gets_403_and_a_stranger_signs_in_first(client, db, coop):
    assert client.get("/people/").status_code == 302
    with db() as session:
        create_user(session, "clerk@coop.ua", PASSWORD, "clerk", session.get(Organisation, coop))
    sign_in(client, "clerk@coop.ua")
    assert client.get("/people/").status_code == 403
    assert client.post("/people/invite", data={"email": "x@coop.ua", "role": "clerk"}).status_code == 403


# Resets.

def test_a_forgotten_password_is_reset_by_link_and_every_other_session_ends(app, client, db, coop, mailbox):
    office_pc = app.test_client()
    sign_in(office_pc)
    known = client.post("/forgot", data={"email": "head@coop.ua"}).get_data(as_text=True)
    unknown = client.post("/forgot", data={"email": "nobody@coop.ua"}).get_data(as_text=True)
    assert "Якщо такий обліковий запис є, ми надіслали лист" in known
    assert known == unknown  # the answer does not tell which e-mails exist
    [mail] = mailbox(db)
    path = link_in(mail, "/reset/")
    with db() as session:
        row = session.scalar(select(UserToken))
        assert row.purpose == "reset" and timedelta(minutes=59) < row.expires_at - utcnow() <= timedelta(hours=1)
    reset = client.post(path, data={"password": NEW_PASSWORD, "password_again": NEW_PASSWORD})
    assert reset.status_code == 302
    assert office_pc.get("/people/").status_code == 302  # the office PC was signed out
    assert client.get("/people/").status_code == 200  # this browser is signed in afresh
    with db() as session:
        assert session.scalar(select(func.count()).select_from(UserSession).where(UserSession.ended_at.is_(None))) == 1
    assert app.test_client().post("/login", data={"email": "head@coop.ua", "password": PASSWORD}).status_code == 401
    sign_in(app.test_client(), "head@coop.ua", NEW_PASSWORD)
    assert "вже використано" in app.test_client().get(path).get_data(as_text=True)


def test_reset_requests_are_throttled(app, client, db, coop, mailbox):
    app.config["LOGIN_ACCOUNT_FAILURES"] = 3
    for _ in range(3):
        assert client.post("/forgot", data={"email": "head@coop.ua"}).status_code == 200
    locked = client.post("/forgot", data={"email": "head@coop.ua"})
    assert locked.status_code == 429 and "Retry-After" in locked.headers
    assert len(mailbox(db)) == 3
    sign_in(app.test_client())  # the login itself is not locked by reset requests


# Disabling and roles.

def test_a_disabled_clerk_is_signed_out_at_once_and_can_be_enabled(app, client, db, coop):
    with db() as session:
        clerk = create_user(session, "clerk@coop.ua", PASSWORD, "clerk", session.get(Organisation, coop))
        clerk_id = clerk.id
    clerks_pc = app.test_client()
    sign_in(clerks_pc, "clerk@coop.ua")
    sign_in(client)
    assert client.post(f"/people/{clerk_id}", data={"active": "0"}).status_code == 302
    assert clerks_pc.get("/sites/").status_code == 302
    with db() as session:
        assert session.scalar(select(UserSession.ended_at).where(UserSession.user_id == clerk_id)) is not None
        entry = session.scalar(select(AuditLog).where(AuditLog.action == "user.disable"))
        assert entry.actor == "head@coop.ua" and entry.after == {"active": False}
    assert clerks_pc.post("/login", data={"email": "clerk@coop.ua", "password": PASSWORD}).status_code == 401
    assert client.post(f"/people/{clerk_id}", data={"active": "1"}).status_code == 302
    sign_in(clerks_pc, "clerk@coop.ua")
    assert client.post(f"/people/{clerk_id}", data={"role": "manager"}).status_code == 302
    with db() as session:
        assert session.get(User, clerk_id).role == "manager"
        assert session.scalar(select(AuditLog).where(AuditLog.action == "user.role")).before == {"role": "clerk"}


def test_the_head_cannot_disable_themselves_nor_demote_the_last_org_admin(client, db, coop):
    sign_in(client)
    with db() as session:
        head_id = session.scalar(select(User.id).where(User.email == "head@coop.ua"))
    itself = client.post(f"/people/{head_id}", data={"active": "0"})
    assert itself.status_code == 422 and "Не можна вимкнути себе" in itself.get_data(as_text=True)
    demoted = client.post(f"/people/{head_id}", data={"role": "manager"})
    assert demoted.status_code == 422 and "останній адміністратор" in demoted.get_data(as_text=True)
    with db() as session:
        head = session.get(User, head_id)
        assert (head.active, head.role) == (True, "org_admin")
        second = create_user(session, "deputy@coop.ua", PASSWORD, "org_admin", session.get(Organisation, coop))
        second_id = second.id
    assert client.post(f"/people/{second_id}", data={"role": "manager"}).status_code == 302


def test_another_organisations_person_is_not_found(client, db, coop):
    with db() as session:
        other, _ = office(session, name="ОСББ «Липки»", code="TP-1")
        stranger_id = create_user(session, "x@lypky.ua", PASSWORD, "clerk", other).id
    sign_in(client)
    assert client.get(f"/people/{stranger_id}").status_code == 404
    assert client.post(f"/people/{stranger_id}", data={"active": "0"}).status_code == 404
    assert "x@lypky.ua" not in client.get("/people/").get_data(as_text=True)


# Residents' invitation codes.

def issued_october(db, coop) -> str:
    """October billed and issued for the cooperative's one house; returns the code its account got."""
    with db() as session:
        assert session.scalar(select(Account.invite_code).where(Account.number == "01001")) is None
        counter = session.scalar(select(Meter).where(Meter.code == "M01001"))
        read(session, counter, datetime(2026, 10, 1), "1000")
        read(session, counter, datetime(2026, 11, 1), "1250")
    bill(db, "TP-7", "2026-10", issue=True)
    with db() as session:
        return session.scalar(select(Account.invite_code).where(Account.number == "01001"))


def test_issuing_gives_every_invoiced_account_a_code_and_a_resident_joins_with_it(app, client, db, coop):
    code = issued_october(db, coop)
    assert len(code) == LENGTH and set(code) <= set(ALPHABET)
    form = {"code": code.lower()[:4] + "-" + code.lower()[4:], "email": "ivanenko@example.ua",
            "password": NEW_PASSWORD, "password_again": NEW_PASSWORD}
    joined = client.post("/join", data=form)
    assert joined.status_code == 302
    assert client.get("/cabinet/").status_code == 200
    with db() as session:
        resident = session.scalar(select(User).where(User.email == "ivanenko@example.ua"))
        account = session.scalar(select(Account).where(Account.number == "01001"))
        assert (resident.role, resident.account_id, resident.org_id) == ("resident", account.id, coop)
    again = app.test_client().post("/join", data={**form, "email": "neighbour@example.ua"})
    assert again.status_code == 422 and "вже використано" in again.get_data(as_text=True)

    head = app.test_client()
    sign_in(head)
    with db() as session:
        account_id = session.scalar(select(Account.id).where(Account.number == "01001"))
    assert code in head.get("/people/codes").get_data(as_text=True)
    assert head.post(f"/people/codes/{account_id}").status_code == 302
    with db() as session:
        fresh = session.scalar(select(Account.invite_code).where(Account.number == "01001"))
    assert fresh != code and fresh in head.get("/people/codes?q=01001").get_data(as_text=True)


@pytest.mark.parametrize(("change", "field_words"), [
    ({"password_again": "something else"}, "Паролі не збігаються"),
    ({"email": "head@coop.ua"}, "вже є"),
    ({"code": "ZZZZZZZZ"}, "Такого коду немає"),
])
def test_a_bad_join_names_the_field_and_writes_nothing(client, db, coop, change, field_words):
    with db() as session:
        code = ensure_invite_code(session, session.scalar(select(Account)))
    before = counts(db)
    answer = client.post("/join", data={"code": code, "email": "new@example.ua", "password": NEW_PASSWORD,
                                        "password_again": NEW_PASSWORD, **change})
    assert answer.status_code == 422 and field_words in answer.get_data(as_text=True)
    assert counts(db) == before


def test_a_guesser_of_codes_is_locked_out(app, client, db, coop):
    app.config["LOGIN_ADDRESS_FAILURES"] = 4
    with db() as session:
        code = ensure_invite_code(session, session.scalar(select(Account)))
    for guess in range(4):
        answer = client.post("/join", data={"code": f"AAAAAAA{guess + 2}", "email": f"g{guess}@example.ua",
                                            "password": NEW_PASSWORD, "password_again": NEW_PASSWORD})
    assert answer.status_code == 429
    right = client.post("/join", data={"code": code, "email": "g9@example.ua", "password": NEW_PASSWORD,
                                       "password_again": NEW_PASSWORD})
    assert right.status_code == 429  # even the right code, while locked
    sign_in(client)  # the login form is not locked by it


# The command line.

def cli(app, *args):
    result = app.test_cli_runner().invoke(args=list(args))
    return result.exit_code, result.output


def test_the_cli_invites_lists_disables_enables_and_sets_roles(app, db, coop):
    code, output = cli(app, "invite-user", "--email", "installer@coop.ua", "--role", "installer", "--name", "Петро")
    assert code == 0 and "/people/welcome/" in output
    assert "installer@coop.ua\tinstaller\tactive\tnever" in cli(app, "users", "--org", str(coop))[1]
    assert cli(app, "invite-user", "--email", "installer@coop.ua", "--role", "clerk")[0] == 1
    assert cli(app, "disable-user", "--email", "installer@coop.ua")[1].endswith("disabled\n")
    assert cli(app, "enable-user", "--email", "installer@coop.ua")[1].endswith("active\n")
    assert cli(app, "set-role", "--email", "installer@coop.ua", "--role", "clerk")[0] == 0
    code, output = cli(app, "disable-user", "--email", "head@coop.ua")
    assert code == 1 and "last org admin" in output
    code, output = cli(app, "invite-codes", "--site", "TP-7", "--list")
    assert code == 0 and output.startswith("1 codes made") and re.search(r"01001\t[2-9A-Z]{8}", output)
    with db() as session:
        assert session.scalar(select(OutboxMessage.to)) == "installer@coop.ua"
        assert session.scalar(select(User.role).where(User.email == "installer@coop.ua")) == "clerk"


# The JSON API.

def test_the_api_lists_invites_and_changes_people(client, db, coop):
    with db() as session:
        _, token = make_token(session, session.get(Organisation, coop), "сайт кооперативу", "org_admin", "head")
        clerk_token = make_token(session, session.get(Organisation, coop), "1С", "clerk", "head")[1]
    auth = {"Authorization": f"Bearer {token}"}
    listed = client.get("/api/v1/people", headers=auth).get_json()["people"]
    assert [p["email"] for p in listed] == ["head@coop.ua"]
    made = client.post("/api/v1/people/invite", headers=auth, json={"email": "m@coop.ua", "role": "manager"})
    assert made.status_code == 201 and made.get_json()["role"] == "manager"
    before = counts(db)
    bad = client.post("/api/v1/people/invite", headers=auth, json={"email": "x@coop.ua", "role": "operator"})
    assert bad.status_code == 422 and bad.get_json()["field"] == "role" and counts(db) == before
    user_id = made.get_json()["id"]
    changed = client.put(f"/api/v1/people/{user_id}", headers=auth, json={"role": "accountant", "active": False})
    assert changed.status_code == 200 and changed.get_json()["active"] is False
    assert client.put(f"/api/v1/people/{user_id}", headers=auth, json={"active": "no"}).get_json()["field"] == "active"
    assert client.get("/api/v1/people", headers={"Authorization": f"Bearer {clerk_token}"}).status_code == 403
    with db() as session:
        assert session.scalar(select(AuditLog.actor).where(AuditLog.action == "user.role")) == "api:сайт кооперативу"
