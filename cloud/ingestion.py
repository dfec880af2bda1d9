"""Ingestion: verify a gateway's batch, check its place in the chain, store it whole or not at all.

Idempotent by (gateway, seq): the same batch twice changes nothing; the same seq with other
bytes is refused and raised as a security alert. A gap is accepted and recorded until filled.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation

import orjson
from sqlalchemy import insert, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from cloud.db import insert_rows as driver_insert
from cloud.models import Batch, Event, Gateway, GatewayKey, utcnow
from shared.batch import BatchError, batch_hash, load_public_key, parse_batch, verify_signature


class IngestError(Exception):
    """A refused batch: HTTP status, a machine code, the field and a human reason."""

    def __init__(self, status: int, code: str, message: str, field: str = ""):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.field = field

    def as_json(self) -> dict:
        return {"error": self.code, "message": self.message, **({"field": self.field} if self.field else {})}


@dataclass(frozen=True)
class IngestResult:
    status: str  # stored | duplicate
    seq: int
    hash: str
    gap_before: bool = False


def parse_ts(text: str, field: str) -> datetime:
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise IngestError(422, "invalid_batch", f"not an ISO-8601 time: {text!r}", field) from exc
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return value


def _decimal(text: str, field: str) -> Decimal:
    try:
        value = Decimal(text)
    except InvalidOperation as exc:
        raise IngestError(422, "invalid_batch", f"not a decimal number: {text!r}", field) from exc
    if not value.is_finite() or value < 0:
        raise IngestError(422, "invalid_batch", f"must be a finite number ≥ 0: {text!r}", field)
    return value


def insert_rows(db: Session, table: str, columns: tuple[str, ...], rows: list[tuple]) -> None:
    """Store rows, skipping any already stored: COPY on PostgreSQL, executemany elsewhere."""
    if not rows:
        return
    names = ", ".join(f'"{c}"' for c in columns)
    if db.connection().dialect.name == "postgresql" and _copy_rows(db, table, names, rows):
        return
    driver_insert(db, table, columns, rows, ignore_duplicates=True)


def _copy_rows(db: Session, table: str, names: str, rows: list[tuple]) -> bool:
    """PostgreSQL: COPY the rows in a savepoint; False when one is already stored (then insert row by row)."""
    import psycopg

    try:
        with db.begin_nested() as savepoint:
            driver = savepoint.session.connection().connection.driver_connection
            with driver.cursor() as cursor, cursor.copy(f"COPY {table} ({names}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
    except IntegrityError as exc:
        if isinstance(exc.orig, psycopg.errors.UniqueViolation):
            return False
        raise
    except psycopg.errors.UniqueViolation:
        return False
    return True


def db_time(text: str, field: str) -> str:
    """``2026-10-01T00:15:00Z`` → ``2026-10-01 00:15:00.000000``, the form SQLAlchemy stores and compares."""
    if len(text) == 20 and text[10] == "T" and text[19] == "Z" and text[:4].isdigit():
        candidate = f"{text[:10]} {text[11:19]}.000000"
        if _TIME.fullmatch(candidate):
            return candidate
    return parse_ts(text, field).strftime("%Y-%m-%d %H:%M:%S.%f")


_TIME = re.compile(r"\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01]) ([01]\d|2[0-3]):[0-5]\d:[0-5]\d\.000000")


def kwh_to_wh(text: str, field: str) -> int:
    """A decimal kWh string to whole Wh; more than three decimals, a sign or a non-number is refused."""
    value = _decimal(text, field) * 1000
    if value != value.to_integral_value():
        raise IngestError(422, "invalid_batch", f"kWh has more than 3 decimals: {text!r}", field)
    return int(value)


def ingest_batch(db: Session, gateway_code: str, body: bytes, signature: bytes) -> IngestResult:
    """Verify and store one batch in the caller's transaction (the caller commits)."""
    found = db.execute(
        select(Gateway, GatewayKey.id).outerjoin(
            GatewayKey, (GatewayKey.gateway_id == Gateway.id) & GatewayKey.retired_at.is_(None))
        .where(Gateway.code == gateway_code)
    ).first()
    gateway, key_id = found if found is not None else (None, None)
    if gateway is None:
        raise IngestError(401, "unknown_gateway", f"gateway {gateway_code!r} is not enrolled", "X-Balans-Gateway")
    if gateway.status == "revoked":
        record_refusal(db, gateway, "revoked_gateway", {})
        raise IngestError(403, "revoked_gateway", f"gateway {gateway_code!r} has been revoked")
    try:
        verify_signature(load_public_key(gateway.public_key), body, signature)
    except BatchError as exc:
        record_refusal(db, gateway, "bad_signature", {"bytes": len(body)})
        raise IngestError(401, exc.code, exc.reason, exc.field) from exc
    try:
        document = parse_batch(body)
    except BatchError as exc:
        raise IngestError(422 if exc.code != "too_large" else 413, exc.code, exc.reason, exc.field) from exc
    if document["gateway"] != gateway_code:
        raise IngestError(422, "invalid_batch", "batch names another gateway than the header", "gateway")
    digest = batch_hash(body)
    seq = document["seq"]
    # The batch's neighbours in one query: itself (a replay?), the one before and the one after.
    neighbours = {n.seq: n for n in db.execute(
        select(Batch.seq, Batch.hash, Batch.prev).where(Batch.gateway_id == gateway.id,
                                                        Batch.seq.between(seq - 1, seq + 1)))}
    existing = neighbours.get(seq)
    if existing is not None:
        if existing.hash == digest:
            return IngestResult("duplicate", seq, digest)
        record_refusal(db, gateway, "seq_conflict", {"seq": seq, "stored": existing.hash, "received": digest})
        raise IngestError(409, "seq_conflict", f"seq {seq} was already received with other content", "seq")
    before = neighbours[seq - 1].hash if seq - 1 in neighbours else None
    if before is not None and before != document["prev"]:
        record_refusal(db, gateway, "chain_break", {"seq": seq, "prev": document["prev"], "stored": before})
        raise IngestError(409, "chain_break", f"prev does not match the hash of batch {seq - 1}", "prev")
    after = neighbours[seq + 1].prev if seq + 1 in neighbours else None
    if after is not None and after != digest:
        record_refusal(db, gateway, "chain_break", {"seq": seq, "next_prev": after, "received": digest})
        raise IngestError(409, "chain_break", f"batch {seq + 1} points to another batch {seq}", "seq")
    gap_before = seq > 1 and before is None

    meters = dict(db.execute(text("SELECT code, id FROM meters WHERE site_id = :site"),
                             {"site": gateway.site_id}).all())
    received = utcnow()
    rows = len(document["readings"]) + len(document["intervals"]) + len(document["events"])
    batch_id = db.execute(
        insert(Batch).returning(Batch.id),
        [{"org_id": gateway.org_id, "gateway_id": gateway.id, "key_id": key_id, "seq": seq, "hash": digest,
          "prev": document["prev"], "body": body, "signature": signature, "received_at": received,
          "rows": rows}],
    ).scalar_one()

    def meter_id(code: str, field: str) -> int:
        found = meters.get(code)
        if found is None:
            raise IngestError(422, "unknown_meter", f"meter {code!r} is not registered at this site", field)
        return found

    times: dict[str, str] = {}  # a batch holds few distinct instants: convert each once

    def when(value: str, field: str) -> str:
        found = times.get(value)
        if found is None:
            found = times[value] = db_time(value, field)
        return found

    # Rows go to the driver as tuples: this path carries every reading, so it avoids per-row ORM work.
    readings = [
        (meters.get(r["m"]) or meter_id(r["m"], f"readings[{i}].m"), when(r["t"], f"readings[{i}].t"),
         orjson.dumps(r["q"]).decode(), batch_id, "gateway")
        for i, r in enumerate(document["readings"])
    ]
    intervals = [
        (meters.get(r["m"]) or meter_id(r["m"], f"intervals[{i}].m"), when(r["t"], f"intervals[{i}].t"),
         kwh_to_wh(r["imp"], f"intervals[{i}].imp"), kwh_to_wh(r["exp"], f"intervals[{i}].exp"),
         r["f"][:12], batch_id)
        for i, r in enumerate(document["intervals"])
    ]
    events = [
        {"org_id": gateway.org_id, "gateway_id": gateway.id,
         "meter_id": meter_id(e["m"], f"events[{i}].m") if e.get("m") else None,
         "ts": parse_ts(e["t"], f"events[{i}].t"), "kind": e["kind"][:40],
         "detail": e.get("detail") or {}, "batch_id": batch_id}
        for i, e in enumerate(document["events"])
    ]
    insert_rows(db, "readings", ("meter_id", "ts", "values", "batch_id", "source"), readings)
    insert_rows(db, "interval_energy", ("meter_id", "start", "imp_wh", "exp_wh", "flag", "batch_id"), intervals)
    if events:
        db.execute(insert(Event), events)
    gateway.last_seen = received
    if seq > gateway.last_seq:
        gateway.last_seq = seq
        gateway.chain_head = digest
    return IngestResult("stored", seq, digest, gap_before)


def record_refusal(db: Session, gateway: Gateway, kind: str, detail: dict) -> None:
    """A refusal the org admin must see; written in its own transaction so it survives the 4xx."""
    db.rollback()
    db.add(Event(org_id=gateway.org_id, gateway_id=gateway.id, ts=utcnow(), kind=f"security:{kind}",
                 detail=detail))
    try:
        db.commit()
    except IntegrityError:
        db.rollback()


def missing_seqs(db: Session, gateway: Gateway) -> list[int]:
    """Sequence numbers not yet received below the highest one: gaps shown until filled."""
    have = set(db.scalars(select(Batch.seq).where(Batch.gateway_id == gateway.id)))
    return [s for s in range(1, gateway.last_seq + 1) if s not in have]
