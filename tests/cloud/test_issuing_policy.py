"""Who may issue invoices: the accountant (or the organisation's admin). A clerk enters readings and makes the
draft, a manager reviews it; their «issue» is refused with a 403 that says who may, and nothing is issued."""

from __future__ import annotations

from datetime import datetime

import pytest
from sqlalchemy import func, select

from cloud.accounts.organisations import create_user
from cloud.models import BillingRun, Invoice, LedgerEntry
from cloud.permissions import GRANTS, Action, Role, allowed, roles_for
from tests.cloud.office import account_with_meter, office, read

PASSWORD = "correct horse battery"


@pytest.fixture
def october(db):
    """One house read for October, and a user of every office role."""
    with db() as session:
        org, site = office(session)
        _, meter = account_with_meter(session, org, site, "01001")
        read(session, meter, datetime(2026, 10, 1), "1000")
        read(session, meter, datetime(2026, 11, 1), "1100")
        for role in ("clerk", "manager", "accountant", "org_admin"):
            create_user(session, f"{role}@coop.ua", PASSWORD, role, org)


def issued(db) -> tuple[int, int]:
    with db() as session:
        return (session.scalar(select(func.count()).select_from(Invoice).where(Invoice.number.is_not(None))),
                session.scalar(select(func.count()).select_from(LedgerEntry)))


def test_the_table_gives_issuing_to_the_accountant_and_the_admin_only():
    assert roles_for(Action.ISSUE_INVOICES) == ["org_admin", "accountant"]
    assert allowed("clerk", Action.RUN_BILLING) and not allowed("clerk", Action.ISSUE_INVOICES)
    assert not allowed("manager", Action.ISSUE_INVOICES) and allowed("accountant", Action.ISSUE_INVOICES)


@pytest.mark.parametrize("role", ["clerk", "manager"])
def test_a_clerk_or_a_manager_drafts_but_cannot_issue(client, db, october, role):
    client.post("/login", data={"email": f"{role}@coop.ua", "password": PASSWORD})
    client.post("/sites/TP-7/billing", data={"period": "2026-10", "action": "draft"})
    refused = client.post("/sites/TP-7/billing", data={"period": "2026-10", "action": "issue"})
    assert refused.status_code == 403
    assert "бухгалтер або адміністратор" in refused.get_data(as_text=True)
    assert issued(db) == (0, 0)
    with db() as session:
        assert session.scalar(select(BillingRun.status)) == "draft"


@pytest.mark.parametrize("role", ["accountant", "org_admin"])
def test_the_accountant_or_the_admin_issues(client, db, october, role):
    client.post("/login", data={"email": f"{role}@coop.ua", "password": PASSWORD})
    client.post("/sites/TP-7/billing", data={"period": "2026-10", "action": "draft"})
    done = client.post("/sites/TP-7/billing", data={"period": "2026-10", "action": "issue"})
    assert done.status_code == 302 and issued(db) == (1, 1)


def test_the_command_line_asks_the_table_before_it_issues(app, db, october, monkeypatch):
    monkeypatch.setitem(GRANTS, Action.ISSUE_INVOICES, frozenset({Role.ACCOUNTANT}))
    result = app.test_cli_runner().invoke(args=["bill", "--site", "TP-7", "--period", "2026-10", "--issue"])
    assert result.exit_code == 1 and "billing.issue is for accountant" in result.output
    assert issued(db) == (0, 0)
    draft = app.test_cli_runner().invoke(args=["bill", "--site", "TP-7", "--period", "2026-10"])
    assert draft.exit_code == 0, draft.output
