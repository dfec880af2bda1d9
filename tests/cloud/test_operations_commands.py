"""``balans cloud events | ack-event | gateway-health | voltage``: the operations pages from the shell — the same
services, the same refusals naming the option, the acknowledgement audited."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

from sqlalchemy import select

from cloud.models import AuditLog, Event
from shared.batch import GENESIS_HASH, b64, seal_batch
from shared.calendar import iso_utc

ENROLLED = ["TP118-IN", "TP118-L1", "TP118-L2", "TP118-L3", "TP118-L4", "TP118-L5"]


def post(client, batch):
    return client.post("/api/v1/batches", data=batch.body, headers={
        "X-Balans-Gateway": "gw-tp118", "X-Balans-Signature": b64(batch.signature),
        "Content-Type": "application/json"})


def a_week_of_voltage(client, gateway):
    """A week of 10-minute voltages at two points (one sagging at 198 V), a dip and a tamper event."""
    start = datetime(2026, 10, 4, 21)  # Monday 5 October 00:00 Kyiv
    readings = []
    for i in range(7 * 24 * 6):
        t = iso_utc(start + timedelta(minutes=10 * i))
        readings.append({"m": "TP118-L4", "t": t, "q": {"import_kwh": f"{i}.000", "voltage_l1": "198.0"}})
        readings.append({"m": "TP118-L1", "t": t, "q": {"import_kwh": f"{i}.000", "voltage_l1": "231.0"}})
    batch = seal_batch(gateway.key, gateway="gw-tp118", seq=1, prev=GENESIS_HASH, created="2026-10-12T00:00:00Z",
                       readings=readings, events=[
                           {"t": "2026-10-06T09:00:00Z", "kind": "voltage_under_voltage", "m": "TP118-L4",
                            "detail": {"phase": "l1", "start": "2026-10-06T08:00:00Z", "end": "2026-10-06T09:00:00Z",
                                       "extreme_v": "190.0"}},
                           {"t": "2026-10-06T09:30:00Z", "kind": "tamper", "m": "TP118-L2", "detail": {}}])
    assert post(client, batch).status_code == 201


def test_events_listed_and_acknowledged_once_from_the_shell(client, db, gateway):
    a_week_of_voltage(client, gateway)
    runner = client.application.test_cli_runner()
    listed = runner.invoke(args=["events", "--site", "TP-118", "--open", "--json"])
    assert listed.exit_code == 0, listed.output
    events = json.loads(listed.output)["events"]
    tamper = next(e for e in events if e["kind"] == "tamper")
    assert {"tamper", "voltage_under_voltage"} <= {e["kind"] for e in events}
    assert "tamper" in runner.invoke(args=["events", "--site", "TP-118"]).output
    done = runner.invoke(args=["ack-event", str(tamper["id"]), "--note", "seal checked, intact", "--json"])
    assert done.exit_code == 0, done.output
    assert json.loads(done.output)["note"] == "seal checked, intact"
    again = runner.invoke(args=["ack-event", str(tamper["id"]), "--note", "twice"])
    assert again.exit_code != 0 and "acknowledged by cli already" in again.output
    assert runner.invoke(args=["ack-event", "999999"]).exit_code != 0
    still_open = json.loads(runner.invoke(args=["events", "--site", "TP-118", "--open", "--json"]).output)["events"]
    assert tamper["id"] not in {e["id"] for e in still_open}
    with db() as session:
        event = session.get(Event, tamper["id"])
        assert (event.acknowledged_by, event.note) == ("cli", "seal checked, intact")
        assert session.scalar(select(AuditLog).where(AuditLog.action == "event.acknowledge")).entity == \
            f"event:{tamper['id']}"
    bad = runner.invoke(args=["events", "--site", "TP-118", "--kind", "weather"])
    assert bad.exit_code != 0 and "--kind" in bad.output
    long = runner.invoke(args=["ack-event", str(events[0]["id"] or tamper["id"]), "--note", "x" * 501])
    assert long.exit_code != 0 and "note" in long.output


def test_gateway_health_and_voltage_from_the_shell(client, db, gateway):
    a_week_of_voltage(client, gateway)
    runner = client.application.test_cli_runner()
    health = runner.invoke(args=["gateway-health", "--site", "TP-118", "--json"])
    assert health.exit_code == 0, health.output
    found = json.loads(health.output)["gateways"][0]
    assert found["gateway"] == "gw-tp118" and "late_batches" in found and "clock_offset_s" in found
    assert "gw-tp118" in runner.invoke(args=["gateway-health"]).output
    voltage = runner.invoke(args=["voltage", "--site", "TP-118", "--week", "2026-10-07", "--json"])
    assert voltage.exit_code == 0, voltage.output
    points = json.loads(voltage.output)["points"]
    assert points[0]["meter"] == "TP118-L4" and not points[0]["compliant"] and points[0]["means"] == 1008
    assert points[1]["meter"] == "TP118-L1" and points[1]["compliant"]
    text = runner.invoke(args=["voltage", "--site", "TP-118", "--week", "2026-10-07"]).output
    assert "TP118-L4 L1: NOT compliant" in text and "1008/1008 means" in text
    bad = runner.invoke(args=["voltage", "--site", "TP-118", "--week", "someday"])
    assert bad.exit_code != 0 and "week" in bad.output
    assert runner.invoke(args=["voltage", "--site", "NOPE"]).exit_code != 0
