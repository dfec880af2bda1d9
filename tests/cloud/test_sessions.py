"""Sessions live on the server: logout ends them (a copied cookie stops working), they expire, the cookie is
SameSite=Lax, HttpOnly and Secure over https, and a sensitive change wants the password typed recently."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import func, select, update

from cloud import create_app
from cloud.accounts.organisations import create_user
from cloud.models import BillingRun, Invoice, LedgerEntry, Organisation, UserSession, utcnow
from tests.cloud.conftest import setup_cooperative
from tests.cloud.office import account_with_meter, office, read

PASSWORD = "correct horse battery"


def signed_in(app, db, seed_scenario, role="accountant"):
    setup_cooperative(db, seed_scenario)
    with db() as session:
        create_user(session, f"{role}@coop.ua", PASSWORD, role, session.scalar(select(Organisation)))
    client = app.test_client()
    assert client.post("/login", data={"email": f"{role}@coop.ua", "password": PASSWORD}).status_code == 302
    return client


def test_a_copied_cookie_stops_working_at_logout(app, db, seed_scenario):
    owner = signed_in(app, db, seed_scenario)
    thief = app.test_client()
    thief.set_cookie("session", owner.get_cookie("session").value)
    assert thief.get("/sites/").status_code == 200
    owner.post("/logout")
    assert thief.get("/sites/").status_code == 302 and owner.get("/sites/").status_code == 302


def test_an_idle_or_old_session_ends(app, db, seed_scenario):
    client = signed_in(app, db, seed_scenario)
    with db() as session:
        session.execute(update(UserSession).values(seen_at=utcnow() - timedelta(hours=13)))
    assert client.get("/sites/").status_code == 302
    client = signed_in(app, db, seed_scenario, "manager")
    with db() as session:
        session.execute(update(UserSession).where(UserSession.ended_at.is_(None))
                        .values(created_at=utcnow() - timedelta(hours=73)))
    assert client.get("/sites/").status_code == 302


def test_the_cookie_is_lax_httponly_and_secure_behind_https(database_url, app):
    cookie = app.test_client().get("/login?lang=en").headers["Set-Cookie"]
    assert "SameSite=Lax" in cookie and "HttpOnly" in cookie and "Secure" not in cookie
    served = create_app({"DATABASE_URL": database_url, "SECRET_KEY": "t", "PUBLIC_URL": "https://balans.example"})
    assert "Secure" in served.test_client().get("/login?lang=en").headers["Set-Cookie"]


def test_a_correction_wants_the_password_typed_within_ten_minutes(app, db, seed_scenario):
    client = signed_in(app, db, seed_scenario)
    with db() as session:
        session.execute(update(UserSession).values(authenticated_at=utcnow() - timedelta(minutes=11)))
    refused = client.post("/sites/TP-118/corrections", data={"invoice": "000001", "amount": "-10", "reason": "x"},
                          headers={"Referer": "http://localhost/sites/TP-118/billing"})
    assert refused.status_code == 401 and "Для цієї дії введіть пароль ще раз." in refused.get_data(as_text=True)
    assert client.post("/reauth", data={"password": "wrong", "next": "/sites/"}).status_code == 401
    confirmed = client.post("/reauth", data={"password": PASSWORD, "next": "/sites/TP-118/billing"})
    assert confirmed.status_code == 302 and confirmed.headers["Location"] == "/sites/TP-118/billing"
    assert client.post("/sites/TP-118/corrections", data={"invoice": "000001", "amount": "-10",
                                                          "reason": "x"}).status_code == 302


def stale_password(db, minutes=11):
    with db() as session:
        session.execute(update(UserSession).values(authenticated_at=utcnow() - timedelta(minutes=minutes)))


def issued(db) -> tuple[str | None, int, int]:
    with db() as session:
        return (session.scalar(select(BillingRun.status)),
                session.scalar(select(func.count()).select_from(Invoice).where(Invoice.number.is_not(None))),
                session.scalar(select(func.count()).select_from(LedgerEntry)))


def test_issuing_invoices_wants_the_password_typed_within_ten_minutes(app, db):
    """The billing page's «issue» button (SENSITIVE_BUTTONS), not its «draft», asks for the password again."""
    with db() as session:
        org, site = office(session)
        for number, kwh in (("01001", "300"), ("01002", "150")):
            _, meter = account_with_meter(session, org, site, number)
            read(session, meter, datetime(2026, 10, 1), "1000")
            read(session, meter, datetime(2026, 11, 1), str(1000 + int(kwh)))
        create_user(session, "buh@coop.ua", PASSWORD, "accountant", org)
    client = app.test_client()
    assert client.post("/login", data={"email": "buh@coop.ua", "password": PASSWORD}).status_code == 302
    stale_password(db)
    billing_page = {"Referer": "http://localhost/sites/TP-7/billing?period=2026-10"}
    # A draft changes nothing that counts: an old password will do.
    assert client.post("/sites/TP-7/billing", data={"period": "2026-10", "action": "draft"}).status_code == 302
    assert issued(db) == ("draft", 0, 0)

    refused = client.post("/sites/TP-7/billing", data={"period": "2026-10", "action": "issue"}, headers=billing_page)
    assert refused.status_code == 401 and "Для цієї дії введіть пароль ще раз." in refused.get_data(as_text=True)
    assert issued(db) == ("draft", 0, 0), "nothing of the refused issue is done"

    confirmed = client.post("/reauth", data={"password": PASSWORD, "next": "/sites/TP-7/billing?period=2026-10"})
    assert confirmed.status_code == 302 and confirmed.headers["Location"] == "/sites/TP-7/billing?period=2026-10"
    assert client.post("/sites/TP-7/billing", data={"period": "2026-10", "action": "issue"}).status_code == 302
    assert issued(db) == ("issued", 2, 2)


def test_issuing_within_ten_minutes_of_signing_in_asks_nothing(app, db, seed_scenario):
    client = signed_in(app, db, seed_scenario)
    stale_password(db, minutes=9)
    answer = client.post("/sites/TP-118/billing", data={"period": "2026-10", "action": "issue"})
    assert answer.status_code == 302  # past the password check (the site has no readings: a problem is flashed)
