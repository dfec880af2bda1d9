"""Hypothesis over the documents themselves (issue 16): a batch its gateway really signed, with any field given
any JSON value, and an enrolment with any site document — never a 5xx, never a partial write, and a refused
enrolment leaves its token usable."""

from __future__ import annotations

import copy
import json

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from cloud.ingest.enrolment import issue_token
from cloud.models import Batch, EnrolmentToken, Event, Gateway, IntervalEnergy, Reading, Site
from shared.batch import GENESIS_HASH, b64, public_key_pem

FUZZ = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

AWKWARD_TEXT = st.sampled_from([
    "", "abc", "NaN", "sNaN", "Infinity", "-1", "1E+30", "1e-30", "0", "99999999999999999999.999", "18.434",
    "1970-01-01T00:00:00Z", "2099-01-01T00:00:00Z", "9999-12-31T23:59:59-05:00", "0001-01-01T00:00:00+05:00",
    "2026-10-01T00:00:00", "2026-10-01T00:00:00Z", "<script>alert(1)</script>", "TP118-IN", "\x00", "Ї" * 300,
])
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats(allow_nan=False) | AWKWARD_TEXT
    | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6) | AWKWARD_TEXT, inner, max_size=3),
    max_leaves=6)

READING_T = "2026-10-01T00:00:00Z"
VALID = {
    "v": 1, "gateway": "gw-tp118", "seq": 1, "prev": GENESIS_HASH, "created": "2026-10-01T00:15:00Z",
    "priority": "normal",
    "readings": [{"m": "TP118-IN", "t": READING_T, "q": {"import_kwh": "17919.000", "voltage_l1": "229.400"}}],
    "intervals": [{"m": "TP118-IN", "t": READING_T, "imp": "18.434", "exp": "0.000", "f": "measured"}],
    "events": [{"t": READING_T, "kind": "meter_online", "m": "TP118-IN", "detail": {}}],
}
# Every place a value sits in a batch: the document's own keys and each row's.
PLACES = ([(key,) for key in VALID]
          + [("readings", 0, key) for key in VALID["readings"][0]] + [("readings", 0, "q", "import_kwh")]
          + [("intervals", 0, key) for key in VALID["intervals"][0]]
          + [("events", 0, key) for key in VALID["events"][0]])


def counts(session) -> tuple[int, int, int]:
    return tuple(session.scalar(select(func.count()).select_from(t)) for t in (Batch, Reading, IntervalEnergy))


def mutated(data) -> dict:
    document = copy.deepcopy(VALID)
    for _ in range(data.draw(st.integers(1, 3), label="mutations")):
        place = data.draw(st.sampled_from(PLACES), label="place")
        holder = document
        for step in place[:-1]:
            holder = holder[step] if isinstance(holder, dict | list) and _has(holder, step) else None
            if holder is None:
                break
        if not isinstance(holder, dict):
            continue
        if data.draw(st.booleans(), label="drop"):
            holder.pop(place[-1], None)
        else:
            holder[place[-1]] = data.draw(JSON_VALUES, label="value")
    return document


def _has(holder, step) -> bool:
    return step in holder if isinstance(holder, dict) else isinstance(step, int) and step < len(holder)


@FUZZ
@given(data=st.data())
def test_a_signed_batch_with_any_field_any_value_is_stored_whole_or_refused_whole(client, db, gateway, data):
    document = mutated(data)
    body = json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode()
    with db() as session:
        before = counts(session)
    response = client.post("/api/v1/batches", data=body, headers={
        "X-Balans-Gateway": "gw-tp118", "X-Balans-Signature": b64(gateway.key.sign(body)),
        "Content-Type": "application/json"})
    assert response.status_code < 500, response.get_data(as_text=True)
    with db() as session:
        after = counts(session)
    if response.status_code == 201:
        assert after == (before[0] + 1, before[1] + len(document["readings"]), before[2] + len(document["intervals"]))
    else:
        assert after == before, response.get_json()
        assert response.get_json()["error"]


SITE_PLACES = [("site",), ("lines",), ("meters",), ("lines", 0, "number"), ("lines", 0, "name"),
               ("meters", 0, "id"), ("meters", 0, "profile"), ("meters", 0, "role"), ("meters", 0, "line"),
               ("meters", 0, "account")]


@FUZZ
@given(data=st.data())
def test_an_enrolment_with_any_site_document_is_whole_or_leaves_the_token_usable(client, db, gateway, data):
    site = {"site": gateway.site, "lines": [{"number": 1, "name": "Лінія 1"}],
            "meters": [{"id": "FUZZ-1", "profile": "nik-2303", "role": "line_input", "line": 1, "account": None}]}
    for _ in range(data.draw(st.integers(1, 3), label="mutations")):
        place = data.draw(st.sampled_from(SITE_PLACES), label="place")
        holder = site
        for step in place[:-1]:
            holder = holder[step] if isinstance(holder, dict | list) and _has(holder, step) else None
            if holder is None:
                break
        if isinstance(holder, dict):
            holder[place[-1]] = data.draw(JSON_VALUES, label="value")
    document = data.draw(st.sampled_from(["object", "not an object"]), label="shape")
    with db() as session:
        token = issue_token(session, session.scalar(select(Site).where(Site.code == gateway.site)))
        session.commit()
        events = session.scalar(select(func.count()).select_from(Event))
    code = f"gw-fuzz-{data.draw(st.integers(0, 10**9), label='code')}"
    payload = {"token": token, "gateway": code, "public_key": public_key_pem(Ed25519PrivateKey.generate().public_key()),
               "site": site if document == "object" else [site]}
    response = client.post("/api/v1/enrol", json=payload)
    assert response.status_code < 500, response.get_data(as_text=True)
    if response.status_code != 201:
        with db() as session:
            assert session.scalar(select(Gateway).where(Gateway.code == code)) is None
            used = session.scalars(select(EnrolmentToken.used_at).order_by(EnrolmentToken.id.desc())).first()
            assert used is None, "a refused enrolment must not spend the token"
            assert session.scalar(select(func.count()).select_from(Event)) == events
