"""The outbox: seal unsent rows into signed, chained batches — in the same transaction that marks them.

A row is either unsent (seq NULL) or in exactly one sealed batch; a crash at any moment
leaves one of the two states, never a row in no batch or in two.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edge.store import HIGH, NORMAL, GatewayDatabase, UnsentEvent, UnsentInterval, UnsentReading
from shared.batch import SealedBatch, seal_batch
from shared.calendar import iso_utc


def seal_pending(
    db: GatewayDatabase,
    key: Ed25519PrivateKey,
    gateway: str,
    created: datetime,
    max_rows: int = 5000,
    limit_batches: int | None = None,
    config_version: int | None = None,
) -> list[SealedBatch]:
    """Seal every unsent row into batches of at most ``max_rows`` rows; alerts first, on their own.

    Call inside the store's write transaction.
    """
    sealed: list[SealedBatch] = []
    while limit_batches is None or len(sealed) < limit_batches:
        events = db.unsent_events(max_rows)
        alerts = [e for e in events if e.priority == HIGH]
        if alerts:
            # An alert (voltage, suspected theft, meter offline, tamper) jumps the queue: its
            # batch goes out alone and first.
            sealed.append(_seal(db, key, gateway, created, [], [], alerts, HIGH, config_version))
            continue
        budget = max_rows - len(events)
        readings = db.unsent_readings(budget)
        budget -= len(readings)
        intervals = db.unsent_intervals(max(budget, 0))
        if not (events or readings or intervals):
            break
        sealed.append(_seal(db, key, gateway, created, readings, intervals, events, NORMAL, config_version))
    return sealed


def _seal(db: GatewayDatabase, key: Ed25519PrivateKey, gateway: str, created: datetime,
          readings: list[UnsentReading], intervals: list[UnsentInterval], events: list[UnsentEvent],
          priority: str, config_version: int | None = None) -> SealedBatch:
    last_seq, prev = db.chain_head()
    stamp = iso_utc(created)
    batch = seal_batch(
        key,
        gateway=gateway,
        seq=last_seq + 1,
        prev=prev,
        created=stamp,
        priority=priority,
        config_version=config_version,
        readings=[{"m": r.meter, "t": r.ts, "q": r.values} for r in readings],
        intervals=[{"m": i.meter, "t": i.start, "imp": wh_to_kwh(i.imp_wh), "exp": wh_to_kwh(i.exp_wh), "f": i.flag}
                   for i in intervals],
        events=[{"t": e.ts, "kind": e.kind, **({"m": e.meter} if e.meter else {}), "detail": e.detail}
                for e in events],
    )
    db.save_batch(batch, stamp, priority, readings, intervals, events)
    return batch


def wh_to_kwh(wh: int) -> str:
    """Integer Wh → the batch's decimal kWh string: 118 → "0.118"."""
    return f"{Decimal(wh).scaleb(-3):.3f}"
