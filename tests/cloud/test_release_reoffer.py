"""Re-offering a rolled-back version (docs/updates.md): the operator, from the command line or the page, clears one
gateway's rollback of a version; its offer then says ``again: true`` even while the gateway still reports that
old rollback, until the gateway reports a new outcome — and a new rollback blocks the version again."""

from __future__ import annotations

import json
import urllib.error
import urllib.parse

import pytest
from sqlalchemy import select

from cloud.accounts.organisations import create_user
from cloud.models import AuditLog, GatewayUpdate, Organisation
from tests.cloud.test_updates import CODES, PASSWORD, beat, fleet, signed_in  # noqa: F401 — fleet: a fixture

pytestmark = pytest.mark.timeout(90)
OFFER = {"version": "0.2.0", "target": "balans-0.2.0-py3-none-any.whl"}


def rolled_back(at: str) -> dict:
    return {"slot": "base", "version": "0.1.0", "trial": None, "last": {
        "version": "0.2.0", "status": "rolled_back", "slot": None,
        "reason": "no meter answered before the deadline", "at": at}}


def test_a_reoffered_version_is_offered_again_once_more_and_a_new_rollback_blocks_it(fleet, db):  # noqa: F811
    runner, code = fleet["runner"], CODES[3]
    assert runner.invoke(args=["release", "rollout", "0.2.0", "--gateways", code]).exit_code == 0
    assert beat(fleet, code, 1, update=rolled_back("2026-10-05T10:00:00Z"))["update"] is None
    refused = runner.invoke(args=["release", "reoffer", "0.2.0", "--gateways", CODES[4]])
    assert refused.exit_code != 0 and f"{CODES[4]} has not rolled 0.2.0 back" in refused.output
    done = runner.invoke(args=["release", "reoffer", "0.2.0", "--gateways", code])
    assert done.exit_code == 0, done.output
    # The gateway still reports its old rollback (its last outcome) until it has a new one: offered, again.
    assert beat(fleet, code, 2, update=rolled_back("2026-10-05T10:00:00Z"))["update"] == {**OFFER, "again": True}
    assert beat(fleet, code, 3, update=rolled_back("2026-10-05T10:00:00Z"))["update"] == {**OFFER, "again": True}
    state = json.loads(runner.invoke(args=["release", "status", "--json"]).output)
    assert {row["gateway"]: row for row in state["gateways"]}[code]["last"]["status"] == "reoffered"
    with db() as session:
        entry = session.scalar(select(AuditLog).where(AuditLog.action == "release.reoffer"))
        assert entry.entity == f"gateway:{code}" and entry.before["status"] == "rolled_back"
        assert entry.after == {"version": "0.2.0", "status": "reoffered", "superseded_at": "2026-10-05T10:00:00Z"}
    # It tried again and failed again: a new rollback (a new time) blocks it, in the very answer.
    assert beat(fleet, code, 4, update=rolled_back("2026-10-05T11:30:00Z"))["update"] is None
    assert beat(fleet, code, 5, update=rolled_back("2026-10-05T11:30:00Z"))["update"] is None
    with db() as session:
        assert session.scalar(select(GatewayUpdate).where(GatewayUpdate.version == "0.2.0")).status == "rolled_back"


def test_the_operator_reoffers_from_the_page_and_an_organisations_admin_cannot(fleet, db):  # noqa: F811
    code = CODES[5]
    assert fleet["runner"].invoke(args=["release", "rollout", "0.2.0", "--percent", "100"]).exit_code == 0
    beat(fleet, code, 1, update=rolled_back("2026-10-05T10:00:00Z"))
    with db() as session:
        org = session.get(Organisation, fleet["org_id"])
        create_user(session, "operator@balans.ua", PASSWORD, "operator", org)
        create_user(session, "admin@coop.ua", PASSWORD, "org_admin", org)
    base = f"http://127.0.0.1:{fleet['port']}"
    admin_page = signed_in(fleet, "admin@coop.ua").open(f"{base}/admin/updates", timeout=10).read().decode()
    assert 'action="/admin/updates/reoffer"' not in admin_page
    operator = signed_in(fleet, "operator@balans.ua")
    page = operator.open(f"{base}/admin/updates", timeout=10).read().decode()
    row = page[page.index(f'id="gw-{code}"'):]
    form = row[row.index('action="/admin/updates/reoffer"'):row.index("</form>")]
    assert 'name="csrf_token"' in form and f'value="{code}"' in form and 'value="0.2.0"' in form
    with pytest.raises(urllib.error.HTTPError) as forbidden:
        signed_in(fleet, "admin@coop.ua").open(f"{base}/admin/updates/reoffer", data=urllib.parse.urlencode(
            {"version": "0.2.0", "gateway": code}).encode(), timeout=10)
    assert forbidden.value.code == 403
    done = operator.open(f"{base}/admin/updates/reoffer", data=urllib.parse.urlencode(
        {"version": "0.2.0", "gateway": code}).encode(), timeout=10)
    assert done.status == 200 and done.url.endswith("/admin/updates")
    assert beat(fleet, code, 2, update=rolled_back("2026-10-05T10:00:00Z"))["update"] == {**OFFER, "again": True}
    with db() as session:
        assert session.scalar(select(AuditLog).where(AuditLog.action == "release.reoffer")).actor == \
            "operator@balans.ua"
    wrong = operator.open(f"{base}/admin/updates/reoffer", data=urllib.parse.urlencode(
        {"version": "0.2.0", "gateway": CODES[6]}).encode(), timeout=10).read().decode()
    assert "err_reoffer_not_rolled_back" in wrong or CODES[6] in wrong  # said, not a server error
    # Applied after all: the reoffer is over, nothing more to offer.
    beat(fleet, code, 3, running="0.2.0", update={"slot": "a", "version": "0.2.0", "trial": None, "last": {
        "version": "0.2.0", "status": "applied", "slot": "a", "at": "2026-10-05T12:00:00Z"}})
    assert beat(fleet, code, 4, running="0.2.0")["update"] is None
