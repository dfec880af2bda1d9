"""Bounded disk use: what the gateway deletes, and what it never deletes.

- Never: a batch not yet accepted by the cloud (pending or refused), or any row not yet in a batch.
- Sent batch bodies after ``batch_days`` (the cloud keeps them as evidence).
- Raw readings in sent batches after ``reading_days``; interval energy after ``interval_days`` (local
  balances for the last year stay available offline); 10-minute voltage means after ``voltage_days`` (local
  EN 50160 statistics; the alerts they raised travel in batches).
When the disk is nearly full and nothing more may be deleted, collection goes on and an event says so:
the cloud learns about it with the next batch.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import sqlite_utils

from edge.outbox import HIGH, add_event


@dataclass(frozen=True)
class RetentionPolicy:
    batch_days: int = 30
    reading_days: int = 90
    interval_days: int = 400
    voltage_days: int = 400
    min_free_mb: int = 200


def prune(db: sqlite_utils.Database, now: datetime, policy: RetentionPolicy = RetentionPolicy()) -> dict[str, int]:
    """Delete what the policy allows (call inside the store's write transaction)."""

    def cutoff(days: int) -> str:
        return (now - timedelta(days=days)).strftime("%Y-%m-%dT%H:%M:%SZ")

    sent_before = cutoff(policy.batch_days)
    bodies = db.execute(
        "UPDATE batches SET body = x'', signature = x'' WHERE status = 'sent' AND sent_at < ? AND length(body) > 0",
        [sent_before]).rowcount
    readings = db.execute(
        "DELETE FROM readings WHERE ts < ? AND seq IN (SELECT seq FROM batches WHERE status = 'sent')",
        [cutoff(policy.reading_days)]).rowcount
    intervals = db.execute(
        "DELETE FROM intervals WHERE start < ? AND seq IN (SELECT seq FROM batches WHERE status = 'sent')",
        [cutoff(policy.interval_days)]).rowcount
    voltage = db.execute("DELETE FROM voltage_10min WHERE start < ?", [cutoff(policy.voltage_days)]).rowcount
    return {"batch_bodies": bodies, "readings": readings, "intervals": intervals, "voltage_means": voltage}


def check_disk(db: sqlite_utils.Database, database: Path, now: datetime,
               policy: RetentionPolicy = RetentionPolicy()) -> bool:
    """True when there is room; otherwise records a 'disk_low' event (once a day) and returns False."""
    free_mb = shutil.disk_usage(Path(database).parent).free // 2**20
    if free_mb >= policy.min_free_mb:
        return True
    day = now.strftime("%Y-%m-%d")
    if not db.execute("SELECT 1 FROM events WHERE kind = 'disk_low' AND ts LIKE ?", [day + "%"]).fetchone():
        add_event(db, now, "disk_low", None, {"free_mb": free_mb, "min_free_mb": policy.min_free_mb}, HIGH)
    return False
