"""Card payments through a LiqPay stand-in over real HTTP: checkout from the resident's invoice, signed callbacks
applied exactly once, a forged callback refused, a reversal undone on the ledger."""

from __future__ import annotations

import re
import urllib.parse
from datetime import date
from decimal import Decimal

import pytest
from sqlalchemy import create_engine, func, select
from sqlalchemy.orm import Session

from cloud.models import Account, BillingRun, Invoice, LedgerEntry, Organisation, Site
from provisioning.demo import RESIDENT_PASSWORD, seed_cloud, start_cloud
from provisioning.ports import free_port
from tests.cloud.payments.liqpay_standin import LiqPayStandIn
from tests.test_seed_end_to_end import Browser

pytestmark = pytest.mark.slow


@pytest.fixture
def cloud_with_invoice(tmp_path, seed_scenario, monkeypatch):
    url = f"sqlite:///{tmp_path / 'cloud.sqlite3'}"
    seed_cloud(url, seed_scenario)
    engine = create_engine(url)
    with Session(engine) as db, db.begin():
        org = db.scalar(select(Organisation))
        org.liqpay_public_key, org.liqpay_private_key = "sandbox_i000", "sandbox_secret"
        account = db.scalar(select(Account).where(Account.number == "04001"))
        site = db.scalar(select(Site))
        run = BillingRun(org_id=org.id, site_id=site.id, period="2026-10", status="issued")
        db.add(run)
        db.flush()
        db.add(Invoice(org_id=org.id, run_id=run.id, account_id=account.id, period="2026-10", number="000001",
                       status="issued", due_date=date(2026, 11, 20), quantity_kwh=Decimal(662), total=Decimal("3197.46"),
                       lines=[], issued_at=None))
        db.add(LedgerEntry(org_id=org.id, account_id=account.id, kind="charge", amount=Decimal("3197.46"),
                           period="2026-10"))
        account_id = account.id
    stand_in = LiqPayStandIn("sandbox_i000", "sandbox_secret")
    monkeypatch.setenv("BALANS_LIQPAY_CHECKOUT_URL", stand_in.url)
    port = free_port()
    server = start_cloud(url, port, tmp_path)
    yield f"http://127.0.0.1:{port}", stand_in, engine, account_id
    server.terminate()
    server.wait(timeout=10)
    stand_in.close()
    engine.dispose()


def balance(engine, account_id) -> Decimal:
    with Session(engine) as db:
        return db.scalar(select(func.sum(LedgerEntry.amount)).where(LedgerEntry.account_id == account_id))


def test_a_card_payment_from_the_cabinet_lands_once_and_a_reversal_undoes_it(cloud_with_invoice):
    base, stand_in, engine, account_id = cloud_with_invoice
    resident = Browser(base)
    cabinet = resident.login("resident04001@demo.balans.ua", RESIDENT_PASSWORD)
    invoice_page = resident.get(re.search(r'href="(/cabinet/invoices/\d+)"', cabinet).group(1))
    action = re.search(r'action="(/cabinet/invoices/\d+/card)"', invoice_page).group(1)
    token = re.search(r'name="csrf_token" value="([^"]+)"', invoice_page).group(1)

    with resident.opener.open(base + action, data=urllib.parse.urlencode({"csrf_token": token}).encode()) as reply:
        checkout_page = reply.read().decode()
    form = {name: re.search(rf'name="{name}" value="([^"]+)"', checkout_page).group(1) for name in ("data", "signature")}
    # The browser posts the form to LiqPay (the stand-in), which checks the merchant's signature.
    with resident.opener.open(stand_in.url, data=urllib.parse.urlencode(form).encode()) as reply:
        assert reply.status == 200
    [order] = stand_in.checkouts
    assert order["amount"] == "3197.46" and "о/р 04001" in order["description"]

    assert stand_in.callback(order, "success") == (200, {"status": "paid"})
    assert stand_in.callback(order, "success") == (200, {"status": "duplicate"})
    assert balance(engine, account_id) == Decimal("0.00")
    status, answer = stand_in.callback(order, "success", private_key="guessed")
    assert status == 403 and answer["error"] == "bad_callback"
    assert stand_in.callback(order, "reversed") == (200, {"status": "reversed"})
    assert stand_in.callback(order, "reversed") == (200, {"status": "duplicate"})
    assert balance(engine, account_id) == Decimal("3197.46")
