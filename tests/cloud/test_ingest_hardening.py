"""A signed batch is still checked: times in a window of the clocks, quantities a meter can show, plain-text
events; every refusal is a 422 naming the field, and nothing of the batch is written."""

from __future__ import annotations

import pytest

from shared.batch import GENESIS_HASH, seal_batch
from tests.cloud.test_ingestion import counts, post

READING = {"m": "TP118-IN", "t": "2026-10-01T00:00:00Z", "q": {"import_kwh": "17919.000"}}
INTERVAL = {"m": "TP118-IN", "t": "2026-10-01T00:00:00Z", "imp": "18.434", "exp": "0.000", "f": "measured"}
EVENT = {"t": "2026-10-01T00:00:00Z", "kind": "meter_online", "m": "TP118-IN", "detail": {}}


def sealed(key, created="2026-10-01T00:15:00Z", readings=(READING,), intervals=(INTERVAL,), events=(EVENT,)):
    return seal_batch(key, gateway="gw-tp118", seq=1, prev=GENESIS_HASH, created=created,
                      readings=list(readings), intervals=list(intervals), events=list(events))


@pytest.mark.parametrize(("change", "field"), [
    ({"readings": [{**READING, "t": "1970-01-01T00:00:00Z"}]}, "readings[0].t"),
    ({"readings": [{**READING, "t": "2099-01-01T00:00:00Z"}]}, "readings[0].t"),
    ({"intervals": [{**INTERVAL, "t": "9999-12-31T23:45:00Z"}]}, "intervals[0].t"),
    ({"intervals": [{**INTERVAL, "t": "2150-01-01T00:00:00Z", "imp": "999999.000"}]}, "intervals[0].t"),
    ({"intervals": [{**INTERVAL, "imp": "999999.000"}]}, "intervals[0].imp"),
    ({"intervals": [{**INTERVAL, "imp": "1E+30"}]}, "intervals[0].imp"),
    ({"intervals": [{**INTERVAL, "f": "<b>x</b>"}]}, "intervals[0].f"),
    ({"readings": [{**READING, "q": {"import_kwh": "abc"}}]}, "readings[0].q.import_kwh"),
    ({"readings": [{**READING, "q": {"import_kwh": "-5.000"}}]}, "readings[0].q.import_kwh"),
    ({"readings": [{**READING, "t": "0001-01-01T00:00:00+05:00"}]}, "readings[0].t"),
    ({"events": [{**EVENT, "t": "9999-12-31T23:59:59-05:00"}]}, "events[0].t"),
    ({"events": [{**EVENT, "m": ["TP118-IN"]}]}, "events[0].m"),
    ({"events": [{**EVENT, "kind": "security:bad_signature"}]}, "events[0].kind"),
    ({"events": [{**EVENT, "detail": {"reason": "<script>alert(1)</script>"}}]}, "events[0].detail.reason"),
    ({"created": "2099-01-01T00:00:00Z"}, "created"),
    ({"created": "1970-01-01T00:00:00Z", "readings": [{**READING, "t": "1970-01-01T00:00:00Z"}]}, "created"),
    ({"created": "0001-01-01T00:00:00+05:00"}, "created"),
])
def test_implausible_content_is_refused_naming_the_field(client, db, gateway, change, field):
    batch = sealed(gateway.key, **change)
    response = post(client, batch)
    assert response.status_code == 422, response.get_data(as_text=True)
    assert response.get_json()["field"] == field
    assert counts(db) == (0, 0, 0)


def test_a_backlog_of_weeks_is_still_accepted(client, db, gateway):
    # A gateway offline for a month sends its old readings when it is back: dated weeks before `created`.
    batch = sealed(gateway.key, created="2026-11-05T00:00:00Z")
    assert post(client, batch).status_code == 201
    assert counts(db) == (1, 1, 1)
