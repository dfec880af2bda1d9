"""Gateway health: last seen, the clock offset read from the batches' own seal time, gaps in the chain, meters
answering, and the link chart over the week."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select, update

from cloud.accounts.organisations import create_user
from cloud.clock import utcnow
from cloud.models import Batch, Gateway, Organisation
from cloud.operations.health import gateway_health
from shared.batch import b64, seal_batch
from shared.calendar import iso_utc

PASSWORD = "correct horse battery"


def post(client, batch):
    return client.post("/api/v1/batches", data=batch.body, headers={
        "X-Balans-Gateway": "gw-tp118", "X-Balans-Signature": b64(batch.signature),
        "Content-Type": "application/json"})


def test_a_gateway_five_minutes_fast_with_a_gap_in_its_chain(client, db, gateway):
    now = utcnow()
    first = seal_batch(gateway.key, gateway="gw-tp118", seq=1, prev="0" * 64, created=iso_utc(now + timedelta(minutes=5)),
                       readings=[{"m": "TP118-IN", "t": iso_utc(now), "q": {"import_kwh": "100.000"}}])
    assert post(client, first).status_code == 201
    third = seal_batch(gateway.key, gateway="gw-tp118", seq=3, prev="1" * 64, created=iso_utc(now + timedelta(minutes=5)))
    post(client, third)
    with db() as session:
        create_user(session, "head@coop.ua", PASSWORD, "org_admin", session.get(Organisation, gateway.org_id))
    assert client.post("/login", data={"email": "head@coop.ua", "password": PASSWORD}).status_code == 302
    page = client.get("/gateways/gw-tp118/health").get_data(as_text=True)
    assert "Годинник шлюзу розходиться" in page and ("+4 хв 5" in page or "+5 хв 0" in page)
    assert "Версія ПЗ" in page and "шлюз ще не надіслав сигнал стану" in page
    assert 'class="link-bar"' in page and 'class="link-gap"' in page
    assert client.get("/sites/TP-118/gateways").status_code == 200
    assert client.get("/gateways/nope/health").status_code == 404


def sent(client, gateway, created: list) -> None:
    """Batches 1…n sealed at these instants (the gateway's clock), posted in order, chained."""
    prev = "0" * 64
    for seq, at in enumerate(created, start=1):
        batch = seal_batch(gateway.key, gateway="gw-tp118", seq=seq, prev=prev, created=iso_utc(at))
        assert post(client, batch).status_code == 201
        prev = batch.hash


def received(db, when: dict[int, object]) -> None:
    """When the cloud received each batch (the test posts them all now)."""
    with db() as session:
        for seq, at in when.items():
            session.execute(update(Batch).where(Batch.seq == seq).values(received_at=at))
        session.commit()


def health_of(db, gateway):
    with db() as session:
        found = session.scalar(select(Gateway).where(Gateway.code == "gw-tp118"))
        return gateway_health(session, found, gateway.site, utcnow())


def test_a_backlog_draining_after_an_outage_is_no_clock_drift(client, db, gateway):
    """Eight batches sent on time, hourly; then the link was down and four batches sealed 5–2 h ago all arrive
    in the last few minutes. The clock is right: only the backlog is late."""
    now = utcnow().replace(microsecond=0)
    prompt = [now - timedelta(hours=14 - i) for i in range(8)]
    late = [now - timedelta(hours=5 - i) for i in range(4)]
    sent(client, gateway, prompt + late)
    received(db, {i + 1: at + timedelta(seconds=3) for i, at in enumerate(prompt)}
             | {9 + i: now - timedelta(minutes=4 - i) for i in range(4)})
    health = health_of(db, gateway)
    assert abs(health.clock_offset) < timedelta(minutes=1)
    assert not health.clock_drift and "gateway_clock_drift" not in health.problems
    assert health.late == 4 and health.backlogged and health.as_json()["late_batches"] == 4


def test_a_clock_ten_minutes_slow_is_drift_even_with_a_backlog(client, db, gateway):
    """Every batch sealed ten minutes behind the cloud's clock, two of them also sent late: drift, and a
    backlog of two."""
    now = utcnow().replace(microsecond=0)
    stamps = [now - timedelta(hours=10 - i) for i in range(10)]
    sent(client, gateway, [at - timedelta(minutes=10) for at in stamps])
    received(db, {i + 1: at for i, at in enumerate(stamps[:8])} | {9: now - timedelta(minutes=2), 10: now})
    health = health_of(db, gateway)
    assert timedelta(minutes=-10, seconds=-5) <= health.clock_offset <= timedelta(minutes=-9, seconds=-55)
    assert health.clock_drift and "gateway_clock_drift" in health.problems
    assert health.late == 1  # batch 9: sealed 3 h 10 min ago on the gateway's clock, received 2 min ago
