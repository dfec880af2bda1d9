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

from edge.store import HIGH, GatewayDatabase
from shared.calendar import day_bounds, kyiv_day


@dataclass(frozen=True)
class RetentionPolicy:
    batch_days: int = 30
    reading_days: int = 90
    interval_days: int = 400
    voltage_days: int = 400
    min_free_mb: int = 200


def prune(db: GatewayDatabase, now: datetime, policy: RetentionPolicy = RetentionPolicy()) -> dict[str, int]:
    """Delete what the policy allows (call inside the store's write transaction)."""

    def cutoff(days: int) -> datetime:
        return now - timedelta(days=days)

    return {
        "batch_bodies": db.strip_sent_batch_bodies(cutoff(policy.batch_days)),
        "readings": db.delete_sent_readings(cutoff(policy.reading_days)),
        "intervals": db.delete_sent_intervals(cutoff(policy.interval_days)),
        "voltage_means": db.delete_voltage_means(cutoff(policy.voltage_days)),
    }


def check_disk(db: GatewayDatabase, database: Path, now: datetime,
               policy: RetentionPolicy = RetentionPolicy()) -> bool:
    """True when there is room; otherwise records a 'disk_low' event (once a Kyiv day) and returns False."""
    free_mb = shutil.disk_usage(Path(database).parent).free // 2**20
    if free_mb >= policy.min_free_mb:
        return True
    if not db.has_event("disk_low", *day_bounds(kyiv_day(now))):
        db.add_event(now, "disk_low", None, {"free_mb": free_mb, "min_free_mb": policy.min_free_mb}, HIGH)
    return False
