"""The outbox: seal unsent rows into signed, chained batches — in the same transaction that marks them.

A row is either unsent (seq NULL) or in exactly one sealed batch; a crash at any moment
leaves one of the two states, never a row in no batch or in two.
"""

from __future__ import annotations

import json
from datetime import datetime
from decimal import Decimal

import sqlite_utils
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edge.store import get_meta, set_meta
from shared.batch import GENESIS_HASH, SealedBatch, seal_batch

HIGH = "high"
NORMAL = "normal"


def seal_pending(
    db: sqlite_utils.Database,
    key: Ed25519PrivateKey,
    gateway: str,
    created: datetime,
    max_rows: int = 5000,
    limit_batches: int | None = None,
) -> list[SealedBatch]:
    """Seal every unsent row into batches of at most ``max_rows`` rows; alerts first, on their own.

    Call inside the store's write transaction.
    """
    sealed: list[SealedBatch] = []
    while limit_batches is None or len(sealed) < limit_batches:
        events = db.execute(
            "SELECT id, ts, kind, meter, detail, priority FROM events WHERE seq IS NULL "
            "ORDER BY priority = 'high' DESC, id LIMIT ?", [max_rows],
        ).fetchall()
        alerts = [e for e in events if e[5] == HIGH]
        if alerts:
            # An alert (voltage, suspected theft, meter offline, tamper) jumps the queue: its
            # batch goes out alone and first.
            sealed.append(_seal(db, key, gateway, created, [], [], alerts, HIGH))
            continue
        budget = max_rows - len(events)
        readings = db.execute(
            "SELECT id, meter, ts, q FROM readings WHERE seq IS NULL ORDER BY id LIMIT ?", [budget]
        ).fetchall()
        budget -= len(readings)
        intervals = db.execute(
            "SELECT meter, start, imp_wh, exp_wh, flag FROM intervals WHERE seq IS NULL ORDER BY start, meter LIMIT ?",
            [max(budget, 0)],
        ).fetchall()
        if not (events or readings or intervals):
            break
        sealed.append(_seal(db, key, gateway, created, readings, intervals, events, NORMAL))
    return sealed


def _seal(db, key, gateway, created, readings, intervals, events, priority) -> SealedBatch:
    seq = int(get_meta(db, "last_seq", "0")) + 1
    prev = get_meta(db, "chain_head", GENESIS_HASH)
    batch = seal_batch(
        key,
        gateway=gateway,
        seq=seq,
        prev=prev,
        created=created.strftime("%Y-%m-%dT%H:%M:%SZ"),
        priority=priority,
        readings=[{"m": m, "t": t, "q": json.loads(q)} for _, m, t, q in readings],
        intervals=[{"m": m, "t": s, "imp": wh_to_kwh(i), "exp": wh_to_kwh(e), "f": f} for m, s, i, e, f in intervals],
        events=[
            {"t": ts, "kind": kind, **({"m": meter} if meter else {}), "detail": json.loads(detail or "{}")}
            for _, ts, kind, meter, detail, _ in events
        ],
    )
    rows = len(readings) + len(intervals) + len(events)
    db.execute(
        "INSERT INTO batches(seq, hash, prev, body, signature, created, priority, rows, status, attempts) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'pending', 0)",
        [seq, batch.hash, prev, batch.body, batch.signature, batch.document()["created"], priority, rows],
    )
    _mark(db, "readings", "id", [r[0] for r in readings], seq)
    _mark(db, "events", "id", [e[0] for e in events], seq)
    if intervals:
        db.conn.executemany(
            "UPDATE intervals SET seq = ? WHERE meter = ? AND start = ?",
            [(seq, m, s) for m, s, *_ in intervals],
        )
    set_meta(db, "last_seq", seq)
    set_meta(db, "chain_head", batch.hash)
    return batch


def wh_to_kwh(wh: int) -> str:
    """Integer Wh → the batch's decimal kWh string: 118 → "0.118"."""
    return f"{Decimal(wh).scaleb(-3):.3f}"


def _mark(db, table: str, pk: str, ids: list[int], seq: int) -> None:
    if ids:
        db.conn.executemany(f"UPDATE {table} SET seq = ? WHERE {pk} = ?", [(seq, i) for i in ids])


def add_event(db: sqlite_utils.Database, ts: datetime, kind: str, meter: str | None = None,
              detail: dict | None = None, priority: str = NORMAL) -> None:
    db.execute(
        "INSERT INTO events(ts, kind, meter, detail, priority) VALUES (?, ?, ?, ?, ?)",
        [ts.strftime("%Y-%m-%dT%H:%M:%SZ"), kind, meter, json.dumps(detail or {}, ensure_ascii=False,
                                                                     sort_keys=True), priority],
    )
