"""The org admin's keys (issue 17): an enrolment token issued on the gateways page enrols the station's gateway
through the real enrol endpoint, an unused one is cancelled, a stolen gateway is revoked in two steps and its
next batch refused, API tokens are made (shown once), listed and revoked — a stale password gets the password
form and changes nothing, a clerk gets 403."""

from __future__ import annotations

import html
import re
from datetime import timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import func, select, update

from cloud.accounts.organisations import create_user
from cloud.clock import utcnow
from cloud.models import ApiToken, AuditLog, EnrolmentToken, Gateway, Organisation, UserSession
from shared.batch import public_key_pem
from tests.cloud.conftest import setup_cooperative
from tests.cloud.test_ingestion import make_batch, post

PASSWORD = "correct horse battery"


@pytest.fixture
def coop(db, seed_scenario) -> tuple[int, str]:
    org_id, site_code = setup_cooperative(db, seed_scenario)
    with db() as session:
        org = session.get(Organisation, org_id)
        create_user(session, "head@coop.ua", PASSWORD, "org_admin", org)
        create_user(session, "clerk@coop.ua", PASSWORD, "clerk", org)
    return org_id, site_code


def sign_in(client, email="head@coop.ua"):
    assert client.post("/login", data={"email": email, "password": PASSWORD}).status_code == 302


def shown(page: str, box: str) -> str:
    return html.unescape(re.search(rf'id="{box}" class="secret-box" value="([^"]+)"', page).group(1))


def site_document(scenario, site_code: str) -> dict:
    return {"site": site_code,
            "lines": [{"number": n, "name": name} for n, name in scenario.line_names.items()],
            "meters": [{"id": m.meter, "profile": m.profile, "role": m.role, "line": m.line, "account": m.account}
                       for m in scenario.meters]}


def enrol_with(client, scenario, site_code: str, token: str):
    key = Ed25519PrivateKey.generate()
    answer = client.post("/api/v1/enrol", json={"token": token, "gateway": "gw-tp118",
                                                "public_key": public_key_pem(key.public_key()),
                                                "site": site_document(scenario, site_code)})
    return answer, key


def test_a_token_issued_on_the_page_enrols_the_gateway_once(app, client, db, coop, seed_scenario):
    _, site_code = coop
    sign_in(client)
    page = client.get("/admin/gateways").get_data(as_text=True)
    assert "Видати токен" in page and site_code in page
    answer = client.post("/admin/enrolment-tokens", data={"site": site_code, "hours": "72"})
    assert answer.status_code == 200
    page = answer.get_data(as_text=True)
    token = shown(page, "enrol-token")
    command = shown(page, "enrol-command")
    assert command.startswith("balans provision enroll --config ") and command.endswith(f"--token {token}")
    assert "Скопіюйте зараз" in page
    assert token not in client.get("/admin/gateways").get_data(as_text=True)  # shown once
    with db() as session:
        assert session.scalar(select(EnrolmentToken.token_hash)) != token
        assert session.scalar(select(AuditLog.actor).where(AuditLog.action == "enrolment_token.issue")) == \
            "head@coop.ua"
    assert "діє до" in client.get("/admin/gateways").get_data(as_text=True)  # listed while unused

    enrolled, key = enrol_with(app.test_client(), seed_scenario, site_code, token)
    assert enrolled.status_code == 201, enrolled.get_json()
    assert post(app.test_client(), make_batch(key)).status_code == 201
    again, _ = enrol_with(app.test_client(), seed_scenario, site_code, token)
    assert again.status_code == 403 and again.get_json()["error"] == "token_used"
    assert "Невикористаних токенів немає" in client.get("/admin/gateways").get_data(as_text=True)


def test_an_unused_token_is_cancelled(app, client, db, coop, seed_scenario):
    _, site_code = coop
    sign_in(client)
    token = shown(client.post("/admin/enrolment-tokens", data={"site": site_code, "hours": "24"})
                  .get_data(as_text=True), "enrol-token")
    with db() as session:
        token_id = session.scalar(select(EnrolmentToken.id))
    assert client.post(f"/admin/enrolment-tokens/{token_id}/cancel").status_code == 302
    refused, _ = enrol_with(app.test_client(), seed_scenario, site_code, token)
    assert refused.status_code == 403 and refused.get_json()["error"] == "token_expired"
    with db() as session:
        assert session.scalar(select(func.count()).select_from(AuditLog)
                              .where(AuditLog.action == "enrolment_token.cancel")) == 1


@pytest.mark.parametrize(("form", "words"), [({"site": "TP-999", "hours": "72"}, "Оберіть підстанцію"),
                                             ({"hours": "100000"}, "строк дії")])
def test_a_bad_token_request_names_the_field_and_issues_nothing(client, db, coop, form, words):
    sign_in(client)
    answer = client.post("/admin/enrolment-tokens", data={"site": coop[1], **form})
    assert answer.status_code == 422 and words in answer.get_data(as_text=True)
    with db() as session:
        assert session.scalar(select(func.count()).select_from(EnrolmentToken)) == 0


def test_a_revoked_gateways_next_batch_is_refused(client, db, gateway):
    with db() as session:
        create_user(session, "head@coop.ua", PASSWORD, "org_admin", session.get(Organisation, gateway.org_id))
        gateway_id = session.scalar(select(Gateway.id))
    sign_in(client)
    assert "Відкликати" in client.get("/admin/gateways").get_data(as_text=True)
    # The list's button only opens the confirmation page: nothing is revoked yet.
    confirm = client.post(f"/admin/gateways/{gateway_id}/revoke", data={})
    assert confirm.status_code == 200 and "Так, відкликати" in confirm.get_data(as_text=True)
    assert post(client, make_batch(gateway.key)).status_code == 201
    done = client.post(f"/admin/gateways/{gateway_id}/revoke", data={"confirm": gateway.code, "reason": "вкрадено"})
    assert done.status_code == 302
    refused = post(client, make_batch(gateway.key, seq=2, prev=_head(db)))
    assert refused.status_code == 403 and refused.get_json()["error"] == "revoked_gateway"
    with db() as session:
        entry = session.scalar(select(AuditLog).where(AuditLog.action == "gateway.revoke"))
        assert entry.actor == "head@coop.ua" and entry.after["reason"] == "вкрадено"


def _head(db) -> str:
    with db() as session:
        return session.scalar(select(Gateway.chain_head))


def test_a_stale_password_gets_the_password_form_and_nothing_changes(client, db, coop):
    _, site_code = coop
    sign_in(client)
    with db() as session:
        session.execute(update(UserSession).values(authenticated_at=utcnow() - timedelta(minutes=11)))
    for url, form in (("/admin/enrolment-tokens", {"site": site_code, "hours": "72"}),
                      ("/admin/api-tokens", {"name": "1С", "role": "accountant"})):
        answer = client.post(url, data=form)
        assert answer.status_code == 401 and 'name="password"' in answer.get_data(as_text=True)
    with db() as session:
        assert session.scalar(select(func.count()).select_from(EnrolmentToken)) == 0
        assert session.scalar(select(func.count()).select_from(ApiToken)) == 0
    assert client.get("/admin/gateways").status_code == 200  # reading still works


def test_a_clerk_gets_403(client, db, coop):
    sign_in(client, "clerk@coop.ua")
    assert client.get("/admin/api-tokens").status_code == 403
    assert client.post("/admin/enrolment-tokens", data={"site": coop[1], "hours": "72"}).status_code == 403
    assert client.post("/admin/api-tokens", data={"name": "x", "role": "clerk"}).status_code == 403
    with db() as session:
        assert session.scalar(select(func.count()).select_from(EnrolmentToken)) == 0


def test_api_tokens_are_made_shown_once_listed_and_revoked(app, client, db, coop):
    sign_in(client)
    bad = client.post("/admin/api-tokens", data={"name": "", "role": "accountant"})
    assert bad.status_code == 422 and "Назвіть ключ" in bad.get_data(as_text=True)
    assert client.post("/admin/api-tokens", data={"name": "1С", "role": "operator"}).status_code == 422
    page = client.post("/admin/api-tokens", data={"name": "сайт кооперативу", "role": "org_admin"}) \
        .get_data(as_text=True)
    token = shown(page, "api-token")
    assert token.startswith("blns_") and token not in client.get("/admin/api-tokens").get_data(as_text=True)
    auth = {"Authorization": f"Bearer {token}"}
    assert client.get("/api/v1/api-tokens", headers=auth).get_json()["tokens"][0]["name"] == "сайт кооперативу"
    listing = client.get("/admin/api-tokens").get_data(as_text=True)
    assert "сайт кооперативу" in listing and "адміністратор організації" in listing
    with db() as session:
        token_id = session.scalar(select(ApiToken.id))
        assert session.scalar(select(ApiToken.last_used_at)) is not None
    assert client.post(f"/admin/api-tokens/{token_id}/revoke").status_code == 302
    assert client.get("/api/v1/api-tokens", headers=auth).status_code == 401


def test_the_api_issues_lists_and_cancels_enrolment_tokens_and_revokes_a_gateway(client, db, gateway):
    with db() as session:
        org = session.get(Organisation, gateway.org_id)
        token = client.application.test_cli_runner().invoke(args=["api-token", "create", "--org", str(org.id),
                                                                  "--name", "скрипт", "--role", "org_admin"])
    token = token.output.strip().splitlines()[-1]
    auth = {"Authorization": f"Bearer {token}"}
    made = client.post("/api/v1/enrolment-tokens", headers=auth, json={"site": gateway.site, "hours": 24})
    assert made.status_code == 201 and "balans provision enroll" in made.get_json()["command"]
    assert client.post("/api/v1/enrolment-tokens", headers=auth, json={"site": "nope"}).get_json()["field"] == "site"
    [listed] = client.get("/api/v1/enrolment-tokens", headers=auth).get_json()["tokens"]
    assert client.delete(f"/api/v1/enrolment-tokens/{listed['id']}", headers=auth).status_code == 200
    assert client.get("/api/v1/enrolment-tokens", headers=auth).get_json()["tokens"] == []
    revoked = client.post(f"/api/v1/gateways/{gateway.code}/revoke", headers=auth, json={"reason": "замінено"})
    assert revoked.get_json()["status"] == "revoked"
    assert post(client, make_batch(gateway.key)).status_code == 403


def test_the_cli_makes_lists_and_revokes_api_tokens(app, db, coop):
    runner = app.test_cli_runner()
    org_id = str(coop[0])
    made = runner.invoke(args=["api-token", "create", "--org", org_id, "--name", "1С", "--role", "accountant"])
    assert made.exit_code == 0 and made.output.strip().splitlines()[-1].startswith("blns_")
    listed = runner.invoke(args=["api-token", "list", "--org", org_id]).output
    assert "1С\taccountant" in listed and "used —" in listed
    token_id = listed.split("\t", 1)[0]
    assert runner.invoke(args=["api-token", "revoke", "--org", org_id, token_id]).exit_code == 0
    assert "revoked" in runner.invoke(args=["api-token", "list", "--org", org_id]).output
    bad = runner.invoke(args=["api-token", "create", "--org", org_id, "--name", "x", "--role", "resident"])
    assert bad.exit_code == 1 and "role must be one of" in bad.output
