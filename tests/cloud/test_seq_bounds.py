"""A batch's seq is bounded (no jump of millions, nothing past what the database stores) and the gateways page
shows gaps as ranges, never every missing number."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from cloud.accounts.organisations import create_user
from cloud.ingest.chain import MAX_SEQ_AHEAD, missing_ranges
from cloud.models import Batch, Gateway, Organisation
from shared.batch import MAX_SEQ
from tests.cloud.test_ingestion import make_batch, post

PASSWORD = "correct horse battery"


def stored(db) -> int:
    with db() as session:
        return session.scalar(select(func.count()).select_from(Batch))


@pytest.mark.parametrize("seq", [3_000_000, MAX_SEQ, MAX_SEQ + 1, 2**63 - 1, 2**63])
def test_a_seq_far_ahead_or_past_the_database_is_refused_naming_it(client, db, gateway, seq):
    assert post(client, make_batch(gateway.key)).status_code == 201
    response = post(client, make_batch(gateway.key, seq=seq, t="2026-10-01T00:15:00Z"))
    assert response.status_code == 422, response.get_data(as_text=True)
    assert response.get_json()["field"] == "seq"
    assert stored(db) == 1


def test_a_gateway_that_lost_batches_is_still_heard(client, db, gateway):
    first = make_batch(gateway.key)
    assert post(client, first).status_code == 201
    far = make_batch(gateway.key, seq=1 + MAX_SEQ_AHEAD, t="2026-10-01T00:15:00Z")
    assert post(client, far).status_code == 201
    with db() as session:
        assert missing_ranges(session, session.scalar(select(Gateway))) == [(2, MAX_SEQ_AHEAD)]


def test_the_gateways_page_shows_gaps_as_ranges(client, db, gateway):
    for seq, minute in ((1, "00"), (5, "15"), (100, "30"), (102, "45")):
        assert post(client, make_batch(gateway.key, seq=seq, t=f"2026-10-01T00:{minute}:00Z")).status_code == 201
    with db() as session:
        create_user(session, "admin@coop.ua", PASSWORD, "org_admin", session.scalar(select(Organisation)))
    client.post("/login", data={"email": "admin@coop.ua", "password": PASSWORD})
    page = client.get("/admin/gateways").get_data(as_text=True)
    assert "2–4, 6–99, 101" in page
