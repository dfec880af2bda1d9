"""The office API's one document (/api/v1/office/openapi.json): it describes every endpoint the office's API
blueprints serve — the register, settings, people, admin, month and jobs — and schemathesis fuzzes each with
the cooperative's org_admin token: never a 5xx, and every answer's status is one the document lists."""

from __future__ import annotations

import re
from datetime import datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cloud import create_app
from cloud.api.tokens import make_token
from cloud.models import Gateway, Organisation
from tests.cloud.office import account_with_meter, office, read

schemathesis = pytest.importorskip("schemathesis")
NOT_SET = schemathesis.core.NOT_SET
DOCUMENT = "/api/v1/office/openapi.json"
OFFICE_APIS = ("register_api", "settings_api", "people_api", "admin_api", "month_api", "jobs_api")


def document() -> dict:
    return create_app({"DATABASE_URL": "sqlite://", "SECRET_KEY": "schema"}).test_client().get(DOCUMENT).get_json()


def test_the_document_lists_every_office_endpoint_and_the_registers_own_stays(client):
    paths = client.get(DOCUMENT).get_json()["paths"]
    served = set()
    for rule in client.application.url_map.iter_rules():
        if rule.endpoint.split(".")[0] in OFFICE_APIS and not rule.rule.endswith("openapi.json"):
            path = re.sub(r"<(?:\w+:)?\w+>", "{}", rule.rule)  # the parameters' names may differ
            served |= {(path, method.lower()) for method in rule.methods - {"HEAD", "OPTIONS"}}
    documented = {(re.sub(r"\{\w+\}", "{}", path), method) for path, item in paths.items() for method in item}
    assert served - documented == set()
    register = client.get("/api/v1/register/openapi.json").get_json()
    assert set(register["paths"]) < set(paths) and "/api/v1/settings/tariffs" not in register["paths"]


@pytest.fixture
def fuzzed(db) -> str:
    """The cooperative with a site, an account read this month, a gateway; its org_admin's token."""
    with db() as session:
        org, site = office(session)
        _, meter = account_with_meter(session, org, site, "00101", installed_at=datetime(2026, 1, 10))
        read(session, meter, datetime(2026, 10, 1), "5000.125")
        session.add(Gateway(org_id=org.id, site_id=site.id, code="GW-1", public_key="-", status="active"))
        return make_token(session, session.get(Organisation, org.id), "fuzz", "org_admin", "head@coop.ua")[1]


def operations() -> list:
    return [result.ok() for result in schemathesis.openapi.from_dict(document()).get_all_operations()]


@pytest.mark.parametrize("operation", operations(), ids=lambda operation: operation.label)
@given(data=st.data())
@settings(max_examples=6, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_request_with_a_good_token_gets_a_5xx_or_an_undocumented_status(operation, data, client, fuzzed):
    case = data.draw(operation.as_strategy())
    kind = "json" if case.media_type == "application/json" else "data"
    body = {} if case.body is NOT_SET else {kind: case.body}
    if kind == "data" and isinstance(case.body, str):
        body = {"data": case.body.encode()}
    response = client.open(case.formatted_path, method=case.method, query_string=case.query or {},
                           headers={**(case.headers or {}), "Authorization": f"Bearer {fuzzed}",
                                    **({"Content-Type": case.media_type} if case.media_type else {})}, **body)
    said = f"{case.method} {case.formatted_path}: {response.status_code} {response.get_data(as_text=True)[:300]}"
    assert response.status_code < 500, said
    assert str(response.status_code) in operation.definition.raw["responses"], said
