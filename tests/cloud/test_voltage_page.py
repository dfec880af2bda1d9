"""Voltage quality: the phase voltages in the gateway's readings judged per EN 50160 for a Kyiv week, the
episodes it reported on a timeline, the worst point first."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import func, select

from cloud.accounts.organisations import create_user
from cloud.models import Meter, Organisation, VoltageDay
from shared.batch import GENESIS_HASH, b64, seal_batch
from shared.calendar import iso_utc

PASSWORD = "correct horse battery"


def post(client, batch):
    return client.post("/api/v1/batches", data=batch.body, headers={
        "X-Balans-Gateway": "gw-tp118", "X-Balans-Signature": b64(batch.signature),
        "Content-Type": "application/json"})


def test_a_low_line_is_listed_first_with_its_dip_on_the_timeline(client, db, gateway):
    start = datetime(2026, 10, 4, 21)  # Monday 5 October 00:00 Kyiv
    readings = []
    for i in range(0, 7 * 24 * 6):
        t = iso_utc(start + timedelta(minutes=10 * i))
        readings.append({"m": "TP118-L4", "t": t, "q": {"import_kwh": f"{i}.000", "voltage_l1": "198.0"}})
        readings.append({"m": "TP118-L1", "t": t, "q": {"import_kwh": f"{i}.000", "voltage_l1": "231.0"}})
    batch = seal_batch(gateway.key, gateway="gw-tp118", seq=1, prev=GENESIS_HASH, created="2026-10-12T00:00:00Z",
                       readings=readings, events=[{"t": "2026-10-06T09:00:00Z", "kind": "voltage_under_voltage",
                                                   "m": "TP118-L4", "detail": {
                                                       "phase": "l1", "start": "2026-10-06T08:00:00Z",
                                                       "end": "2026-10-06T09:00:00Z", "extreme_v": "190.0"}}])
    assert client.post("/api/v1/batches", data=batch.body, headers={
        "X-Balans-Gateway": "gw-tp118", "X-Balans-Signature": b64(batch.signature),
        "Content-Type": "application/json"}).status_code == 201
    with db() as session:
        create_user(session, "eng@coop.ua", PASSWORD, "manager", session.get(Organisation, gateway.org_id))
    assert client.post("/login", data={"email": "eng@coop.ua", "password": PASSWORD}).status_code == 302
    page = client.get("/sites/TP-118/voltage?week=2026-10-07").get_data(as_text=True)
    assert page.index('data-meter="TP118-L4"') < page.index('data-meter="TP118-L1"')
    assert "не відповідає" in page and "відповідає EN 50160" in page and 'class="v-under_voltage"' in page
    assert "1008 / 1008" in page
    assert client.get("/sites/TP-118/voltage?week=someday").status_code == 422


def test_a_weeks_figures_are_kept_and_summed_again_when_new_readings_arrive(client, db, gateway):
    """The first look stores each point's days (``voltage_days``); a later batch with a reading of that day
    drops just that meter's day, and the next look counts the new reading."""
    start = datetime(2026, 10, 4, 21)  # Monday 5 October 00:00 Kyiv
    readings = [{"m": "TP118-L1", "t": iso_utc(start + timedelta(minutes=10 * i)),
                 "q": {"import_kwh": f"{i}.000", "voltage_l1": "231.0"}} for i in range(0, 7 * 24 * 6, 2)]
    first = seal_batch(gateway.key, gateway="gw-tp118", seq=1, prev=GENESIS_HASH, created="2026-10-12T00:00:00Z",
                       readings=readings)
    assert post(client, first).status_code == 201
    with db() as session:
        create_user(session, "eng@coop.ua", PASSWORD, "manager", session.get(Organisation, gateway.org_id))
    assert client.post("/login", data={"email": "eng@coop.ua", "password": PASSWORD}).status_code == 302
    page = client.get("/sites/TP-118/voltage?week=2026-10-07").get_data(as_text=True)
    assert "504 / 1008" in page
    with db() as session:
        stored = session.scalars(select(VoltageDay).join(Meter, Meter.id == VoltageDay.meter_id)
                                 .where(Meter.code == "TP118-L1", VoltageDay.phase == "l1")).all()
        assert len(stored) == 7 and sum(d.windows for d in stored) == 504
    late = seal_batch(gateway.key, gateway="gw-tp118", seq=2, prev=first.hash, created="2026-10-12T00:05:00Z",
                      readings=[{"m": "TP118-L1", "t": "2026-10-06T10:10:00Z",
                                 "q": {"import_kwh": "999.000", "voltage_l1": "180.0"}}])
    assert post(client, late).status_code == 201
    with db() as session:
        assert session.scalar(select(func.count()).select_from(VoltageDay).join(Meter, Meter.id == VoltageDay.meter_id)
                              .where(Meter.code == "TP118-L1")) == 6  # 6 October dropped
    again = client.get("/sites/TP-118/voltage?week=2026-10-07&lang=en").get_data(as_text=True)
    assert "505 / 1008" in again and "180.0" in again
