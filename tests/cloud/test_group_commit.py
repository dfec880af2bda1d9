"""Group commit: batches that arrive together share one commit, yet each is still stored whole or not at all."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
import sqlalchemy
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import func, select

from cloud.ingest.errors import IngestError
from cloud.ingest.group_writer import BatchWriter
from cloud.models import Batch, Event, Gateway, IntervalEnergy, Reading
from shared.batch import GENESIS_HASH, public_key_pem, seal_batch
from tests.cloud.test_ingestion import make_batch, post


def submit_together(app, db, batches) -> tuple[BatchWriter, list[tuple]]:
    """A writer and what its senders hand it: the gateway, the batch's bytes and its signature."""
    writer = BatchWriter(app.extensions["balans_sessions"], threading.Lock())
    return writer, [("gw-tp118", b.body, b.signature) for b in batches]


def run_as_one_group(writer: BatchWriter, sent: list[tuple]) -> list:
    """Queue every batch while the writer is busy, in this order, then let one group write them all."""
    outcomes: list = [None] * len(sent)

    def send(index: int) -> None:
        try:
            outcomes[index] = writer.submit(*sent[index])
        except Exception as exc:  # each sender gets its own answer
            outcomes[index] = exc

    threads = []
    with writer.lock:  # a group is being written: everything below queues up behind it, in this order
        for index in range(len(sent)):
            threads.append(threading.Thread(target=send, args=(index,)))
            threads[-1].start()
            while len(writer._pending) <= index:
                time.sleep(0.001)
    for thread in threads:
        thread.join(10)
    return outcomes


def test_batches_queued_together_are_answered_one_by_one(app, db, gateway):
    first = make_batch(gateway.key, seq=1)
    second = make_batch(gateway.key, seq=2, prev=first.hash, t="2026-10-01T00:15:00Z")
    rival = make_batch(gateway.key, seq=2, prev=first.hash, t="2026-10-01T00:15:00Z", imp="99.000")
    writer, sent = submit_together(app, db, [first, second, rival, first])
    outcomes = run_as_one_group(writer, sent)
    assert [o.status for o in outcomes if not isinstance(o, Exception)] == ["stored", "stored", "duplicate"]
    assert isinstance(outcomes[2], IngestError) and outcomes[2].code == "seq_conflict"
    with db() as session:
        assert session.scalar(select(func.count()).select_from(Batch)) == 2
        assert session.scalar(select(func.count()).select_from(Reading)) == 2
        assert session.scalars(select(Event.kind).where(Event.kind.like("security:%"))).all() == [
            "security:seq_conflict"]


def test_a_forged_batch_in_a_group_is_refused_and_recorded_without_harm_to_the_others(app, db, gateway):
    first = make_batch(gateway.key, seq=1)
    forged = make_batch(gateway.key, seq=2, prev=first.hash, t="2026-10-01T00:15:00Z")
    second = make_batch(gateway.key, seq=2, prev=first.hash, t="2026-10-01T00:15:00Z")
    writer, sent = submit_together(app, db, [first, forged, second])
    sent[1] = (sent[1][0], sent[1][1].replace(b"17919.000", b"17000.000"), sent[1][2])  # altered on the way
    outcomes = run_as_one_group(writer, sent)
    assert isinstance(outcomes[1], IngestError) and outcomes[1].code == "bad_signature"
    assert [outcomes[0].status, outcomes[2].status] == ["stored", "stored"]
    with db() as session:
        assert session.scalars(select(Batch.seq).order_by(Batch.seq)).all() == [1, 2]
        assert session.scalars(select(Event.kind).where(Event.kind.like("security:%"))).all() == [
            "security:bad_signature"]


def test_a_full_disk_in_a_group_takes_nothing_of_the_others_with_it(app, db, gateway, database_url):
    """The disk fills up while a group is written: the group is rolled back, then every batch is written
    alone — the one that does not fit fails and leaves nothing behind, the small one beside it is stored."""
    if not database_url.startswith("sqlite"):
        pytest.skip("a full disk is simulated with SQLite's page limit")
    engine = app.extensions["balans_engine"]
    with engine.connect() as connection:
        pages = connection.exec_driver_sql("PRAGMA page_count").scalar()
    engine.dispose()  # every connection from here on opens with the limit: the disk has 40 pages left
    sqlalchemy.event.listen(engine, "connect", lambda dbapi, _: dbapi.execute(f"PRAGMA max_page_count={pages + 40}"))
    big = seal_batch(gateway.key, gateway="gw-tp118", seq=1, prev=GENESIS_HASH, created="2026-10-02T00:00:00Z",
                     intervals=[{"m": "TP118-IN", "t": f"2026-10-{1 + i // 96:02d}T{i % 96 // 4:02d}:{i % 4 * 15:02d}:00Z",
                                 "imp": "18.434", "exp": "0.000", "f": "measured"} for i in range(2000)])
    small = make_batch(gateway.key, seq=2, prev=big.hash, t="2026-10-25T00:00:00Z")
    writer, sent = submit_together(app, db, [big, small])
    outcomes = run_as_one_group(writer, sent)
    assert isinstance(outcomes[0], Exception) and not isinstance(outcomes[0], IngestError)
    assert "full" in str(outcomes[0])
    assert outcomes[1].status == "stored" and outcomes[1].gap_before  # seq 1 is missing, and shown so
    with db() as session:
        assert session.scalars(select(Batch.seq)).all() == [2]  # the batch that failed left no batch row behind
        assert session.scalar(select(func.count()).select_from(IntervalEnergy)) == 1


def test_concurrent_senders_over_http_lose_nothing_and_double_nothing(client, db, gateway, senders=4):
    """Four senders post the same chain of batches at once: every batch is stored exactly once."""
    chain, prev = [], None
    for seq in range(1, 9):
        batch = make_batch(gateway.key, seq=seq, prev=prev or make_batch(gateway.key).prev,
                           t=f"2026-10-01T{seq:02d}:00:00Z")
        chain.append(batch)
        prev = batch.hash
    statuses: list[int] = []

    def send() -> None:
        for batch in chain:
            statuses.append(post(client.application.test_client(), batch).status_code)

    threads = [threading.Thread(target=send) for _ in range(senders)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(set(statuses)) == [200, 201] and statuses.count(201) == len(chain)
    with db() as session:
        assert session.scalars(select(Batch.seq).order_by(Batch.seq)).all() == list(range(1, 9))
        assert session.scalar(select(func.count()).select_from(Reading)) == len(chain)


def test_sqlite_writer_leaves_wal_checkpoints_to_a_background_thread(app, db, gateway, database_url):
    """The writer's commits only append to the WAL; the thread copies it into the database file soon after,
    and ends when ingestion is idle, handing the writer's connection back to the pool with SQLite's own
    threshold."""
    if not database_url.startswith("sqlite"):
        pytest.skip("PostgreSQL has no WAL checkpoints to move: each batch commits on its own")
    path = Path(database_url.removeprefix("sqlite:///"))
    chain, prev = [], None
    for seq in range(1, 6):
        chain.append(make_batch(gateway.key, seq=seq, prev=prev or make_batch(gateway.key).prev,
                                t=f"2026-10-01T{seq:02d}:00:00Z"))
        prev = chain[-1].hash
    writer, sent = submit_together(app, db, chain)
    writer._checkpoints.IDLE_SECONDS = 0.3
    engine = app.extensions["balans_engine"]
    with engine.connect() as connection:  # everything so far into the file: what follows is the writer's
        connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    before = path.read_bytes()  # in WAL mode only a checkpoint writes to the database file itself
    for batch in sent:
        assert writer.submit(*batch).status == "stored"
    deadline = time.monotonic() + 5
    while path.read_bytes() == before and time.monotonic() < deadline:
        time.sleep(0.02)
    assert path.read_bytes() != before, "the WAL was not copied into the database"
    while writer._checkpoints._thread is not None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert writer._checkpoints._thread is None, "the thread outlived the idle time"
    assert engine.pool.checkedout() == 0, "the writer kept its connection after ingestion went idle"
    with engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar() == 1000
    with db() as session:
        assert session.scalars(select(Batch.seq).order_by(Batch.seq)).all() == [1, 2, 3, 4, 5]


def stored_first(app, gateway) -> tuple[BatchWriter, object]:
    """A writer that has stored the gateway's first batch."""
    writer = BatchWriter(app.extensions["balans_sessions"], threading.Lock())
    first = make_batch(gateway.key, seq=1)
    assert writer.submit("gw-tp118", first.body, first.signature).status == "stored"
    return writer, first


def test_a_forged_batch_in_a_group_is_refused_and_the_others_stored(app, db, gateway):
    writer, first = stored_first(app, gateway)
    forged = make_batch(gateway.key, seq=2, prev=first.hash, t="2026-10-01T00:15:00Z")
    second = make_batch(gateway.key, seq=2, prev=first.hash, t="2026-10-01T00:15:00Z")
    third = make_batch(gateway.key, seq=3, prev=second.hash, t="2026-10-01T00:30:00Z")
    sent = [("gw-tp118", forged.body.replace(b"17919.000", b"17000.000"), forged.signature),
            ("gw-tp118", second.body, second.signature), ("gw-tp118", third.body, third.signature)]
    outcomes = run_as_one_group(writer, sent)
    assert isinstance(outcomes[0], IngestError) and outcomes[0].code == "bad_signature"
    assert [outcomes[1].status, outcomes[2].status] == ["stored", "stored"]
    with db() as session:
        assert session.scalars(select(Batch.seq).order_by(Batch.seq)).all() == [1, 2, 3]
        assert session.scalar(select(func.count()).select_from(Reading)) == 3
        assert session.scalars(select(Event.kind).where(Event.kind.like("security:%"))).all() == [
            "security:bad_signature"]


def test_a_batch_meets_the_key_in_force_when_it_is_written(app, db, gateway):
    """Signed with the old key, a batch that reaches the writer after the key was rotated is refused as forged."""
    writer, first = stored_first(app, gateway)
    second = make_batch(gateway.key, seq=2, prev=first.hash, t="2026-10-01T00:15:00Z")
    with db() as session:
        session.scalar(select(Gateway).where(Gateway.code == "gw-tp118")).public_key = public_key_pem(
            Ed25519PrivateKey.generate().public_key())
    with pytest.raises(IngestError) as refused:
        writer.submit("gw-tp118", second.body, second.signature)
    assert refused.value.code == "bad_signature"
    with db() as session:
        assert session.scalars(select(Batch.seq)).all() == [1]
        assert session.scalars(select(Event.kind).where(Event.kind.like("security:%"))).all() == [
            "security:bad_signature"]
