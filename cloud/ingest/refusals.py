"""Forged gateway requests, refused cheaply and counted without flooding anyone.

A batch's signature is checked before anything else is spent on it (``screen``): the gateway's key comes from a
short-lived cache, the check is one Ed25519 verification. Only a batch that its gateway really signed takes from
that gateway's rate bucket, so nobody can silence a gateway by posting in its name.

A refusal takes from its sender's own bucket (per address): past it, the answer is 429 and nothing is written.
Repeated refusals of one kind for one gateway are one security event with a count and the time of the last one
(``add_refusal``), and that event is written at most ``REFUSAL_EVENTS_PER_MINUTE`` times a minute per gateway;
refusals counted in between are added to the next write. The admin page keeps showing the other alerts.
"""

from __future__ import annotations

import threading
import time
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import Connection, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from cloud.db import driver_rows
from cloud.ingest.rate_limit import RateLimiter
from cloud.ingest.rows import public_key
from cloud.models import Event, Gateway, utcnow
from shared.batch import BatchError, verify_signature

# Kinds anyone can cause without the gateway's key (a forged batch, a batch or key rotation in a revoked
# gateway's name, a key rotation not signed by the gateway's key): one event per gateway and window, with a count
# (the detail is the first one's). The others (a signed seq conflict, a broken chain) are rare and each one's
# detail matters: one event each.
AGGREGATED = frozenset({"security:bad_signature", "security:revoked_gateway", "security:key_rotation_refused"})
AGGREGATE_WINDOW = timedelta(minutes=10)
KEY_SECONDS = 10.0  # how long a gateway's key is trusted from the cache (a rotation is retried uncached)
EVENTS = Event.__table__
GATEWAYS = Gateway.__table__


@dataclass(frozen=True)
class GatewayKey:
    id: int
    org_id: int
    public_key: str
    status: str


@dataclass(frozen=True)
class Screened:
    """A batch's first check: ``refusal`` is None when its gateway signed it, else (status, code, message)."""

    refusal: tuple[int, str, str, str] | None
    event: dict | None = None


class RefusalLedger:
    """Per worker process: who is being refused, how fast, and what is yet to be written."""

    def __init__(self, per_address_per_minute: int, events_per_minute: int, clock=time.monotonic,
                 write_lock: AbstractContextManager | None = None) -> None:
        self.write_lock = write_lock or nullcontext()  # SQLite: the app's writers' lock (see add_refusal)
        self.addresses = RateLimiter(per_address_per_minute, clock=clock)
        self.writes = RateLimiter(events_per_minute, burst=max(events_per_minute, 1), clock=clock)
        self.clock = clock
        self._keys: dict[str, tuple[float, GatewayKey | None]] = {}
        self._unwritten: dict[tuple[int, str], int] = {}
        self._lock = threading.Lock()

    def screen(self, db: Session, gateway_code: str, body: bytes, signature: bytes) -> Screened:
        """The signature check before any budget or write: is this batch its gateway's?"""
        key = self._key(db, gateway_code)
        if key is None:
            return Screened((401, "unknown_gateway", f"gateway {gateway_code!r} is not enrolled", "X-Balans-Gateway"))
        if key.status == "revoked":
            return Screened((403, "revoked_gateway", f"gateway {gateway_code!r} has been revoked", ""),
                            _event(key, "security:revoked_gateway"))
        if _signed(key, body, signature):
            return Screened(None)
        fresh = self._key(db, gateway_code, fresh=True)  # rotated since it was cached?
        if fresh is not None and fresh.public_key != key.public_key and fresh.status != "revoked" \
                and _signed(fresh, body, signature):
            return Screened(None)
        return Screened((401, "bad_signature", "signature does not match the batch", "X-Balans-Signature"),
                        _event(key, "security:bad_signature"))

    def answer_wait(self, address: str) -> float:
        """0 while ``address`` may still be told why it was refused; else the seconds until it may (429)."""
        return self.addresses.take(address)

    def record(self, db: Session, event: dict) -> None:
        """Count one refusal; write it (with any counted since the last write) when the gateway's event budget
        allows, in its own transaction so that it survives the 4xx."""
        key = (event["gateway_id"], event["kind"])
        with self._lock:
            count = self._unwritten.pop(key, 0) + 1
        if self.writes.take(f"{key[0]}:{key[1]}") > 0:
            with self._lock:
                self._unwritten[key] = self._unwritten.get(key, 0) + count
            return
        with self.write_lock:
            db.rollback()
            add_refusal(db.connection(), event, count)
            try:
                db.commit()
            except IntegrityError:
                db.rollback()

    def unwritten(self) -> int:
        with self._lock:
            return sum(self._unwritten.values())

    def _key(self, db: Session, code: str, fresh: bool = False) -> GatewayKey | None:
        now = self.clock()
        with self._lock:
            cached = self._keys.get(code)
        if cached is not None and not fresh and now - cached[0] < KEY_SECONDS:
            return cached[1]
        row = next(iter(driver_rows(db, "SELECT id, org_id, public_key, status FROM gateways WHERE code = ?",
                                    (code,))), None)
        db.rollback()  # hold no snapshot: the batch is read again, authoritatively, where it is stored
        found = GatewayKey(*row) if row is not None else None
        with self._lock:
            if len(self._keys) > 10_000:  # a flood of invented codes must not grow the cache without end
                self._keys.clear()
            self._keys[code] = (now, found)
        return found


def add_refusal(connection: Connection, event: dict, count: int = 1) -> None:
    """Add ``count`` refusals to the gateway's open event of that kind (one in the last ten minutes), or open
    one; kinds outside ``AGGREGATED`` are always an event each. Not committed here. Two writers must not both
    open the window's event: PostgreSQL locks the gateway's row here; on SQLite the caller holds the app's write
    lock around this and the commit."""
    ts = event["ts"]
    if event["kind"] in AGGREGATED:
        if connection.dialect.name == "postgresql":
            connection.execute(select(GATEWAYS.c.id).where(GATEWAYS.c.id == event["gateway_id"]).with_for_update())
        open_event = connection.execute(
            select(EVENTS.c.id).where(EVENTS.c.gateway_id == event["gateway_id"], EVENTS.c.kind == event["kind"],
                                      EVENTS.c.last_ts >= ts - AGGREGATE_WINDOW)
            .order_by(EVENTS.c.id.desc()).limit(1)).scalar()
        if open_event is not None:
            connection.execute(update(EVENTS).where(EVENTS.c.id == open_event)
                               .values(count=EVENTS.c.count + count, last_ts=ts))
            return
    connection.execute(EVENTS.insert(), {**event, "count": count, "last_ts": ts})


def _event(key: GatewayKey, kind: str) -> dict:
    return {"org_id": key.org_id, "gateway_id": key.id, "ts": utcnow(), "kind": kind, "detail": {}}


def _signed(key: GatewayKey, body: bytes, signature: bytes) -> bool:
    try:
        verify_signature(public_key(key.public_key), body, signature)
    except BatchError:
        return False
    return True

