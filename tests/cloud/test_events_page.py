"""The events page: what the gateway sent (voltage, tamper, a counter reset) and the security refusals, the
flags nobody stores (a line's suspected theft from the balance, a silent gateway), filtered, acknowledged with a
note — audited, once — and the same through the JSON API."""

from __future__ import annotations

import re
from datetime import datetime, timedelta

from sqlalchemy import select

from cloud.accounts.organisations import create_user
from cloud.api.tokens import make_token
from cloud.clock import utcnow
from cloud.dashboards.daily import rebuild_daily
from cloud.models import AuditLog, Event, Gateway, Line, Meter, Organisation
from shared.batch import GENESIS_HASH, b64, seal_batch
from tests.cloud.office import account_with_meter, intervals, month, office

PASSWORD = "correct horse battery"
ENROLLED = ["TP118-IN", "TP118-L1", "TP118-L2", "TP118-L3", "TP118-L4", "TP118-L5"]


def post(client, batch):
    return client.post("/api/v1/batches", data=batch.body, headers={
        "X-Balans-Gateway": "gw-tp118", "X-Balans-Signature": b64(batch.signature),
        "Content-Type": "application/json"})


def send_events(client, gateway):
    batch = seal_batch(gateway.key, gateway="gw-tp118", seq=1, prev=GENESIS_HASH, created="2026-10-05T10:00:00Z",
                       events=[
                           {"t": "2026-10-05T09:00:00Z", "kind": "voltage_under_voltage", "m": "TP118-L4",
                            "detail": {"phase": "l1", "kind": "under_voltage", "start": "2026-10-05T08:40:00Z",
                                       "end": "2026-10-05T09:00:00Z", "extreme_v": "196.0"}},
                           {"t": "2026-10-05T09:30:00Z", "kind": "tamper", "m": "TP118-L2",
                            "detail": {"reason": "settings write refused"}},
                           {"t": "2026-10-05T09:45:00Z", "kind": "counter_reset", "m": "TP118-L3", "detail": {}}])
    assert post(client, batch).status_code == 201


def sign_in(client, db, org_id, role="manager"):
    with db() as session:
        create_user(session, f"{role}@coop.ua", PASSWORD, role, session.get(Organisation, org_id))
    assert client.post("/login", data={"email": f"{role}@coop.ua", "password": PASSWORD}).status_code == 302


def test_the_manager_sees_filters_and_acknowledges_the_gateways_events(client, db, gateway):
    send_events(client, gateway)
    sign_in(client, db, gateway.org_id)
    page = client.get("/sites/TP-118/events").get_data(as_text=True)
    assert "Знижена напруга" in page and "Втручання в лічильник" in page and "Скидання лічильника" in page
    assert "Шлюз мовчить" not in page
    with db() as session:  # three hours without a batch: silent — computed now, never stored
        session.scalar(select(Gateway)).last_seen = utcnow() - timedelta(hours=3)
        session.commit()
    page = client.get("/sites/TP-118/events").get_data(as_text=True)
    assert "Шлюз мовчить" in page
    voltage_only = client.get("/sites/TP-118/events?kind=voltage").get_data(as_text=True)
    assert "Знижена напруга" in voltage_only and "Втручання в лічильник" not in voltage_only

    with db() as session:
        tamper = session.scalar(select(Event).where(Event.kind == "tamper"))
    token = re.search(r'name="csrf_token" value="([^"]+)"', page)
    form = {"note": "Лінійний оглянув пломбу, все ціле", "next": "/sites/TP-118/events"}
    if token:
        form["csrf_token"] = token.group(1)
    answer = client.post(f"/events/{tamper.id}/ack", data=form)
    assert answer.status_code == 302
    open_page = client.get("/sites/TP-118/events").get_data(as_text=True)
    assert f'id="event-{tamper.id}"' not in open_page
    acked = client.get("/sites/TP-118/events?state=acknowledged").get_data(as_text=True)
    assert "manager@coop.ua" in acked and "все ціле" in acked
    with db() as session:
        row = session.get(Event, tamper.id)
        assert row.acknowledged_by == "manager@coop.ua" and row.note.startswith("Лінійний")
        entry = session.scalar(select(AuditLog).where(AuditLog.action == "event.acknowledge"))
        assert entry.entity == f"event:{tamper.id}" and entry.actor == "manager@coop.ua"

    again = client.post(f"/events/{tamper.id}/ack", data={"note": "ще раз"})
    assert again.status_code == 409 and "вже" in again.get_data(as_text=True)
    with db() as session:
        assert session.get(Event, tamper.id).note.startswith("Лінійний")

    site = client.get("/sites/TP-118").get_data(as_text=True)
    assert "Відкритих подій: 2" in site


def test_a_note_too_long_is_refused_naming_the_field_and_nothing_is_written(client, db, gateway):
    send_events(client, gateway)
    sign_in(client, db, gateway.org_id)
    with db() as session:
        event_id = session.scalar(select(Event.id).where(Event.kind == "tamper"))
    answer = client.post(f"/events/{event_id}/ack", data={"note": "х" * 501})
    assert answer.status_code == 422 and "примітка" in answer.get_data(as_text=True).lower()
    with db() as session:
        assert session.get(Event, event_id).acknowledged_at is None
        assert session.scalar(select(AuditLog).where(AuditLog.action == "event.acknowledge")) is None
    assert client.get("/events?kind=weather").status_code == 422
    assert client.get("/events?period=2026-13").status_code == 422


def test_a_clerk_sees_events_but_neither_refusals_nor_the_button(client, db, gateway):
    send_events(client, gateway)
    with db() as session:
        session.add(Event(org_id=gateway.org_id, gateway_id=session.scalar(select(Event.gateway_id)),
                          ts=datetime(2026, 10, 5, 11), kind="security:bad_signature", detail={}, count=40))
        session.commit()
    sign_in(client, db, gateway.org_id, "clerk")
    page = client.get("/events").get_data(as_text=True)
    assert "Втручання в лічильник" in page and "Підпис не збігся" not in page and "Підтвердити" not in page
    with db() as session:
        event_id = session.scalar(select(Event.id).where(Event.kind == "tamper"))
    assert client.post(f"/events/{event_id}/ack", data={"note": ""}).status_code == 403


def test_an_admin_sees_refusals_aggregated(client, db, gateway):
    send_events(client, gateway)
    with db() as session:
        session.add(Event(org_id=gateway.org_id, gateway_id=session.scalar(select(Event.gateway_id)),
                          ts=datetime(2026, 10, 5, 11), kind="security:bad_signature", detail={}, count=40,
                          last_ts=datetime(2026, 10, 5, 11, 9)))
        session.commit()
    sign_in(client, db, gateway.org_id, "org_admin")
    page = client.get("/events?kind=security").get_data(as_text=True)
    assert "Підпис не збігся" in page and "× 40" in page


def test_suspected_theft_comes_from_the_periods_balance(client, db):
    with db() as session:
        org, site = office(session)
        line = Line(org_id=org.id, site_id=site.id, number="1", name="вул. Соснова")
        session.add(line)
        session.flush()
        station = Meter(org_id=org.id, site_id=site.id, code="IN", role="station_input")
        feeder = Meter(org_id=org.id, site_id=site.id, code="F1", role="feeder", line_id=line.id)
        session.add_all([station, feeder])
        _, house = account_with_meter(session, org, site, "7")
        house.line_id = line.id
        session.flush()
        for meter, wh in ((station, 1000), (feeder, 1000), (house, 800)):  # 20 % lost on line 1
            intervals(session, org, site, meter, month("2026-10"), month("2026-11"), lambda ts, wh=wh: wh)
        rebuild_daily(session, site)  # what ingestion keeps as the intervals arrive
        create_user(session, "manager@coop.ua", PASSWORD, "manager", org)
        session.commit()
    assert client.post("/login", data={"email": "manager@coop.ua", "password": PASSWORD}).status_code == 302
    october = client.get("/sites/TP-7/events?kind=theft&period=2026-10").get_data(as_text=True)
    assert "Підозра на крадіжку" in october and "20.0 %" in october and "вул. Соснова" in october
    november = client.get("/sites/TP-7/events?kind=theft&period=2026-11").get_data(as_text=True)
    assert "Підозра на крадіжку" not in november  # no data in November: no flag, never theft
    api_rows = client.get("/events?kind=theft&period=2026-10&state=acknowledged").get_data(as_text=True)
    assert "Підозра на крадіжку" not in api_rows  # a computed flag is never acknowledged


def test_the_api_lists_and_acknowledges(client, db, gateway):
    send_events(client, gateway)
    with db() as session:
        _, token = make_token(session, session.get(Organisation, gateway.org_id), "диспетчерська", "manager", "test")
        session.commit()
    auth = {"Authorization": f"Bearer {token}"}
    listed = client.get("/api/v1/events?site=TP-118&kind=tamper", headers=auth)
    assert listed.status_code == 200
    [tamper] = [e for e in listed.get_json()["events"] if e["id"]]
    assert tamper["kind"] == "tamper" and tamper["meter"] == "TP118-L2"
    assert client.get("/api/v1/events?state=maybe", headers=auth).get_json()["field"] == "state"
    bad = client.post(f"/api/v1/events/{tamper['id']}/ack", json={"note": 5}, headers=auth)
    assert bad.status_code == 422 and bad.get_json()["field"] == "note"
    done = client.post(f"/api/v1/events/{tamper['id']}/ack", json={"note": "оглянуто"}, headers=auth)
    assert done.status_code == 200 and done.get_json()["acknowledged_by"] == "api:диспетчерська"
    assert client.post("/api/v1/events/999999/ack", json={}, headers=auth).status_code == 404
    with db() as session:
        assert session.scalar(select(AuditLog.actor).where(AuditLog.action == "event.acknowledge")) == \
            "api:диспетчерська"
