"""Tenant isolation: every page and API route, tried as another organisation's user and another resident."""

from __future__ import annotations

import re
from datetime import date
from decimal import Decimal

import pytest
from sqlalchemy import select

from cloud.accounts.organisations import create_user
from cloud.models import Account, BillingRun, Invoice, Organisation, Site
from tests.cloud.conftest import setup_cooperative

PASSWORD = "correct horse battery"


@pytest.fixture
def two_orgs(app, db, seed_scenario):
    org_a, site_a = setup_cooperative(db, seed_scenario)
    org_b, _ = setup_cooperative(db, seed_scenario, name_suffix="-B")
    with db() as session:
        a, b = session.get(Organisation, org_a), session.get(Organisation, org_b)
        site = session.scalar(select(Site).where(Site.code == site_a))
        acc1 = session.scalar(select(Account).where(Account.org_id == org_a, Account.number == "01001"))
        acc2 = session.scalar(select(Account).where(Account.org_id == org_a, Account.number == "01002"))
        run = BillingRun(org_id=org_a, site_id=site.id, period="2026-10", status="issued")
        session.add(run)
        session.flush()
        invoice = Invoice(org_id=org_a, run_id=run.id, account_id=acc1.id, period="2026-10", number="000001",
                          status="issued", due_date=date(2026, 11, 20), quantity_kwh=Decimal(100),
                          total=Decimal("483.00"), lines=[])
        session.add(invoice)
        session.flush()
        create_user(session, "head@a.ua", PASSWORD, "manager", a)
        create_user(session, "head@b.ua", PASSWORD, "org_admin", b)
        create_user(session, "r1@a.ua", PASSWORD, "resident", a, account=acc1)
        create_user(session, "r2@a.ua", PASSWORD, "resident", a, account=acc2)
        return {"code": site_a, "invoice_id": invoice.id}


def login(client, email):
    response = client.post("/login", data={"email": email, "password": PASSWORD})
    assert response.status_code == 302, email


def org_a_urls(app, params):
    """Every GET page route, its parameters filled with organisation A's records."""
    urls = []
    for rule in app.url_map.iter_rules():
        if "GET" not in rule.methods or rule.endpoint in ("static", "auth.login") or rule.rule.startswith("/api/"):
            continue
        urls.append(rule.rule.replace("<code>", params["code"]).replace("<int:invoice_id>",
                                                                       str(params["invoice_id"])))
    return urls


def test_the_owners_see_their_pages(client, two_orgs):
    login(client, "head@a.ua")
    assert client.get(f"/sites/{two_orgs['code']}").status_code == 200
    client.post("/logout")
    login(client, "r1@a.ua")
    assert client.get(f"/cabinet/invoices/{two_orgs['invoice_id']}").status_code == 200
    pdf = client.get(f"/cabinet/invoices/{two_orgs['invoice_id']}.pdf")
    assert pdf.status_code == 200 and pdf.data.startswith(b"%PDF")
    assert re.fullmatch(r"inline; filename=rakhunok-[0-9A-Za-z-]+\.pdf", pdf.headers["Content-Disposition"])


def test_another_organisations_manager_is_refused_everywhere(app, client, two_orgs):
    login(client, "head@b.ua")
    leaked = []
    for url in org_a_urls(app, two_orgs):
        response = client.get(url)
        body = response.get_data(as_text=True)
        # Organisation A's own markers: its site's link, its people (B has look-alike accounts and names).
        if response.status_code == 200 and (f'href="/sites/{two_orgs["code"]}"' in body or "@a.ua" in body):
            leaked.append(url)
        if url.startswith(("/sites/", "/cabinet")) and url not in ("/sites/",):
            assert response.status_code in (403, 404), url
    assert leaked == []


def test_another_resident_is_refused_everywhere(app, client, two_orgs):
    login(client, "r2@a.ua")
    for url in org_a_urls(app, two_orgs):
        response = client.get(url)
        if url.startswith("/cabinet/invoices/"):
            assert response.status_code == 404, url
        elif url.startswith(("/sites", "/admin", "/reports")):
            assert response.status_code == 403, url
        elif url.startswith("/cabinet"):
            assert "01001" not in response.get_data(as_text=True)


def test_api_routes_ignore_sessions_and_want_a_gateway_signature(app, client, two_orgs):
    login(client, "head@a.ua")
    assert client.post("/api/v1/batches", data=b"{}").status_code == 401
    assert client.post("/api/v1/gateways/gw-x/key", json={"public_key": "x", "signature": "AAAA"}).status_code == 401
    assert client.post("/api/v1/enrol", json={"token": "guess", "gateway": "g", "public_key": "x",
                                              "site": {}}).status_code == 403
