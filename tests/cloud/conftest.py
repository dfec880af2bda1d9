"""Cloud fixtures: the seed's cooperative set up in the cloud, and an enrolled gateway."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import select

from cloud.accounts.organisations import create_organisation, create_site, set_tariff, upsert_account
from cloud.ingest.enrolment import issue_token
from cloud.models import Site
from shared.batch import public_key_pem


@dataclass
class EnrolledGateway:
    code: str
    key: Ed25519PrivateKey
    site: str
    org_id: int


def setup_cooperative(db, scenario, name_suffix: str = ""):
    with db() as session:
        org = create_organisation(session, scenario.organisation["name"] + name_suffix, "cooperative",
                                  scenario.organisation["edrpou"], scenario.organisation["iban"])
        site = create_site(session, org, scenario.site + name_suffix, scenario.site_name)
        set_tariff(session, org, "cooperative", Decimal("4.20"), Decimal("1.15"), date(2026, 1, 1))
        for meter in scenario.subscribers():
            upsert_account(session, org, meter.account, meter.holder, meter.address, site)
        return org.id, site.code


def enrol(client, db, scenario, site_code: str, gateway_code: str, only=None) -> Ed25519PrivateKey:

    with db() as session:
        token = issue_token(session, session.scalar(select(Site).where(Site.code == site_code)))
    key = Ed25519PrivateKey.generate()
    site_document = {
        "site": site_code,
        "lines": [{"number": n, "name": name} for n, name in scenario.line_names.items()],
        "meters": [{"id": m.meter, "profile": m.profile, "role": m.role, "line": m.line, "account": m.account}
                   for m in scenario.meters if only is None or m.meter in only],
    }
    response = client.post("/api/v1/enrol", json={"token": token, "gateway": gateway_code,
                                                  "public_key": public_key_pem(key.public_key()),
                                                  "site": site_document})
    assert response.status_code == 201, response.get_json()
    return key


@pytest.fixture
def gateway(client, db, seed_scenario, request) -> EnrolledGateway:
    """The seed's station enrolled (only the meters a test module lists in ENROLLED, when it does)."""
    org_id, site_code = setup_cooperative(db, seed_scenario)
    key = enrol(client, db, seed_scenario, site_code, "gw-tp118", getattr(request.module, "ENROLLED", None))
    return EnrolledGateway("gw-tp118", key, site_code, org_id)
