"""Group commit: batches that arrive together share one commit, yet each is still stored whole or not at all."""

from __future__ import annotations

import threading
import time
from contextlib import nullcontext
from pathlib import Path

import pytest
from sqlalchemy import func, select

from cloud.ingestion import BatchWriter, IngestError, prepare_batch
from cloud.models import Batch, Event, Reading
from tests.cloud.test_ingestion import make_batch


def submit_together(app, db, batches) -> list:
    """Prepare each batch, queue them all while the writer is busy, then let one group write them."""
    writer = BatchWriter(app.extensions["balans_sessions"], threading.Lock())
    with db() as session:
        prepared = [prepare_batch(session, "gw-tp118", b.body, b.signature, nullcontext()) for b in batches]
    return writer, prepared


def run_as_one_group(writer: BatchWriter, prepared: list) -> list:
    outcomes: list = [None] * len(prepared)

    def send(index: int) -> None:
        try:
            outcomes[index] = writer.submit(prepared[index])
        except Exception as exc:  # each sender gets its own answer
            outcomes[index] = exc

    threads = []
    with writer.lock:  # a group is being written: everything below queues up behind it, in this order
        for index in range(len(prepared)):
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
    writer, prepared = submit_together(app, db, [first, second, rival, first])
    outcomes = run_as_one_group(writer, prepared)
    assert [o.status for o in outcomes if not isinstance(o, Exception)] == ["stored", "stored", "duplicate"]
    assert isinstance(outcomes[2], IngestError) and outcomes[2].code == "seq_conflict"
    with db() as session:
        assert session.scalar(select(func.count()).select_from(Batch)) == 2
        assert session.scalar(select(func.count()).select_from(Reading)) == 2
        assert session.scalars(select(Event.kind).where(Event.kind.like("security:%"))).all() == [
            "security:seq_conflict"]


def test_a_batch_that_fails_to_write_takes_nothing_of_the_others_with_it(app, db, gateway):
    good = make_batch(gateway.key, seq=1)
    broken = make_batch(gateway.key, seq=2, prev=good.hash, t="2026-10-01T00:15:00Z")
    writer, prepared = submit_together(app, db, [broken, good])
    prepared[0].readings[0][0] = 10**9  # its meter vanished after it was checked: the insert breaks a foreign key
    outcomes = run_as_one_group(writer, prepared)
    assert isinstance(outcomes[0], Exception) and not isinstance(outcomes[0], IngestError)
    assert outcomes[1].status == "stored"
    with db() as session:
        assert session.scalars(select(Batch.seq)).all() == [1]  # the broken batch left no batch row behind
        assert session.scalar(select(func.count()).select_from(Reading)) == 1


def test_concurrent_senders_over_http_lose_nothing_and_double_nothing(client, db, gateway, senders=4):
    """Four senders post the same chain of batches at once: every batch is stored exactly once."""
    from tests.cloud.test_ingestion import post

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
    and ends when ingestion is idle. The connection goes back to the pool with SQLite's own threshold."""
    if not database_url.startswith("sqlite"):
        pytest.skip("PostgreSQL has no WAL checkpoints to move: each batch commits on its own")
    path = Path(database_url.removeprefix("sqlite:///"))
    chain, prev = [], None
    for seq in range(1, 6):
        chain.append(make_batch(gateway.key, seq=seq, prev=prev or make_batch(gateway.key).prev,
                                t=f"2026-10-01T{seq:02d}:00:00Z"))
        prev = chain[-1].hash
    writer, prepared = submit_together(app, db, chain)
    writer._checkpoints.IDLE_SECONDS = 0.3
    engine = app.extensions["balans_engine"]
    with engine.connect() as connection:  # everything so far into the file: what follows is the writer's
        connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    before = path.read_bytes()  # in WAL mode only a checkpoint writes to the database file itself
    for batch in prepared:
        assert writer.submit(batch).status == "stored"
    deadline = time.monotonic() + 5
    while path.read_bytes() == before and time.monotonic() < deadline:
        time.sleep(0.02)
    assert path.read_bytes() != before, "the WAL was not copied into the database"
    while writer._checkpoints._thread is not None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert writer._checkpoints._thread is None, "the thread outlived the idle time"
    with engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar() == 1000
    with db() as session:
        assert session.scalars(select(Batch.seq).order_by(Batch.seq)).all() == [1, 2, 3, 4, 5]
