"""Every route of the app, walked with ids no table holds (10^20 is past PostgreSQL's bigint), as the office and
as a resident: a 4xx each time, never a 500 (issue 16, item 6)."""

from __future__ import annotations

import pytest
from werkzeug.routing import IntegerConverter

from cloud.accounts.organisations import create_user
from tests.cloud.office import account_with_meter, office

HUGE = 10**20
PASSWORD = "correct horse battery"
STRING_VALUES = {"code": "TP-7", "period": "2026-10", "kind": "losses", "filename": "balans.js"}


def routes(app):
    for rule in app.url_map.iter_rules():
        ints = [name for name, converter in rule._converters.items() if isinstance(converter, IntegerConverter)]
        if not ints:
            continue
        values = {name: HUGE if name in ints else STRING_VALUES.get(name, "x") for name in rule.arguments}
        with app.test_request_context():
            url = app.url_map.bind("localhost").build(rule.endpoint, values)
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            yield method, url


@pytest.mark.parametrize("role", ["org_admin", "resident"])
def test_a_huge_id_anywhere_is_a_4xx(app, client, db, role):
    with db() as session:
        org, site = office(session)
        account, _ = account_with_meter(session, org, site, "01001")
        create_user(session, "who@coop.ua", PASSWORD, role, org, account=account if role == "resident" else None)
    client.post("/login", data={"email": "who@coop.ua", "password": PASSWORD})
    walked = list(routes(app))
    assert len(walked) >= 5, walked  # the walk reaches the id routes: cabinet invoices, corrections, users…
    for method, url in walked:
        response = client.open(url, method=method, data={"amount": "1", "value": "1"})
        assert 400 <= response.status_code < 500, (method, url, response.status_code)


def test_a_json_string_with_a_control_character_or_a_document_nested_too_deep_is_a_400_naming_where(client):
    nul = client.post("/api/v1/enrol", json={"token": "t", "gateway": "g", "public_key": "k",
                                             "site": {"lines": {"1": "Лінія\x00 1"}}})
    assert nul.status_code == 400 and "site.lines.1" in nul.get_json()["message"]
    deep = client.post("/api/v1/enrol", data="[" * 100_000 + "]" * 100_000, content_type="application/json")
    assert deep.status_code == 400 and "32" in deep.get_json()["message"]
    tab = client.post("/api/v1/enrol", json={"token": "t\tx", "gateway": "g", "public_key": "k", "site": {}})
    assert tab.status_code == 403, "a tab is text: the view reads the token (and refuses it as unknown)"
