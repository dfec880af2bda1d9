"""Bounded disk: old sent data goes, unsent data never does, a short disk becomes an event for the cloud."""

from __future__ import annotations

from datetime import UTC, datetime

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edge.outbox import seal_pending
from edge.retention import RetentionPolicy, check_disk, prune
from edge.store import open_database

NOW = datetime(2027, 3, 1, tzinfo=UTC)


def read(db, *stamps: str) -> None:
    for stamp in stamps:
        db.save_readings(datetime.fromisoformat(stamp), 0.0, {"M1": {}})


def test_prune_keeps_everything_the_cloud_has_not_accepted(tmp_path):
    db = open_database(tmp_path / "g.sqlite3")
    read(db, "2026-10-01T00:00:00Z", "2026-10-01T00:15:00Z", "2027-02-28T00:00:00Z")
    key = Ed25519PrivateKey.generate()
    [old] = seal_pending(db, key, "gw", datetime(2026, 10, 1, 1, tzinfo=UTC))
    db.mark_batch_sent(old.seq, "stored", datetime(2026, 10, 1, 2, tzinfo=UTC))
    read(db, "2026-10-02T00:00:00Z")
    seal_pending(db, key, "gw", datetime(2026, 10, 2, 1, tzinfo=UTC))  # sealed but never delivered
    read(db, "2026-10-03T00:00:00Z")
    db.add_voltage_samples([("M1", "l1", datetime(2025, 12, 1, tzinfo=UTC), 230.0),
                            ("M1", "l1", datetime(2027, 2, 28, tzinfo=UTC), 230.0)])
    removed = prune(db, NOW)
    assert removed == {"batch_bodies": 1, "readings": 2, "intervals": 0, "voltage_means": 1}
    left = [row[0] for row in db.conn.execute("SELECT ts FROM readings ORDER BY ts")]
    # Sent and recent stays; the pending batch's row and the unsealed row stay whatever their age.
    assert left == ["2026-10-02T00:00:00Z", "2026-10-03T00:00:00Z", "2027-02-28T00:00:00Z"]
    assert db.pending_batch() is not None and len(db.pending_batch()[1]) > 0


def test_a_short_disk_is_an_event_once_a_day(tmp_path):
    db = open_database(tmp_path / "g.sqlite3")
    greedy = RetentionPolicy(min_free_mb=10**9)  # more than any disk here has
    assert not check_disk(db, tmp_path / "g.sqlite3", NOW, greedy)
    assert not check_disk(db, tmp_path / "g.sqlite3", NOW, greedy)
    assert db.conn.execute("SELECT count(*), max(priority) FROM events WHERE kind = 'disk_low'").fetchone() == (1, "high")
