"""Enrolment's site document: a malformed one is a 422 naming the field, and the token survives for the retry."""

from __future__ import annotations

from datetime import UTC, datetime

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import func, select

from cloud.ingest.enrolment import issue_token
from cloud.models import EnrolmentToken, Gateway, Line, Meter, Site
from shared.batch import public_key_pem
from shared.site_document import MeterRole, MeterSpec, build, to_json
from tests.cloud.conftest import setup_cooperative


def seed_site(scenario) -> dict:
    """The seed's station as `balans provision enroll` sends it."""
    meters = (MeterSpec(m.meter, MeterRole(m.role), m.line, m.account, m.profile) for m in scenario.meters)
    return to_json(build(site=scenario.site, lines=scenario.line_names, meters=meters,
                         created=datetime(2026, 10, 1, 6, 30, tzinfo=UTC)))


def post_enrol(client, token: str, site) -> tuple[int, dict]:
    response = client.post("/api/v1/enrol", json={
        "token": token, "gateway": "gw-tp118",
        "public_key": public_key_pem(Ed25519PrivateKey.generate().public_key()), "site": site})
    return response.status_code, response.get_json()


def written(db) -> tuple[int, int, int]:
    with db() as session:
        return tuple(session.scalar(select(func.count()).select_from(t)) for t in (Gateway, Line, Meter))


def test_a_malformed_site_is_refused_naming_the_field_and_the_token_still_works(client, db, seed_scenario):
    _, site_code = setup_cooperative(db, seed_scenario)
    with db() as session:
        token = issue_token(session, session.scalar(select(Site).where(Site.code == site_code)))

    status, answer = post_enrol(client, token, {"lines": ["x"], "meters": []})
    assert (status, answer["error"], answer["field"]) == (422, "invalid", "site.lines[0]")
    assert "must be an object" in answer["message"]

    # The installer mistyped a subscriber's line: the cloud says which meter, and writes nothing.
    site = seed_site(seed_scenario)
    index = next(i for i, m in enumerate(site["meters"]) if m["role"] == "subscriber")
    mistyped = {**site, "meters": [*site["meters"][:index], {**site["meters"][index], "line": "9"},
                                   *site["meters"][index + 1:]]}
    status, answer = post_enrol(client, token, mistyped)
    assert (status, answer["field"]) == (422, f"site.meters[{index}].line")
    assert "'9' is not among the document's lines" in answer["message"]
    assert written(db) == (0, 0, 0)
    with db() as session:
        assert session.scalar(select(EnrolmentToken.used_at)) is None

    status, answer = post_enrol(client, token, site)
    assert status == 201, answer
    assert written(db) == (1, len(seed_scenario.line_names), len(seed_scenario.meters))
    with db() as session:
        roles = dict(session.execute(select(Meter.code, Meter.role)).all())
    assert roles == {m.meter: m.role for m in seed_scenario.meters}

    status, answer = post_enrol(client, token, site)
    assert (status, answer["error"]) == (403, "token_used")
