"""Ingestion: verify a gateway's batch, check its place in the chain, store it whole or not at all.

Idempotent by (gateway, seq): the same batch twice changes nothing; the same seq with other
bytes is refused and raised as a security alert. A gap is accepted and recorded until filled.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation

from sqlalchemy import insert, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from cloud.models import Batch, Event, Gateway, GatewayKey, IntervalEnergy, Meter, Reading, utcnow
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


def insert_ignoring_duplicates(db: Session, table, rows: list[dict]) -> None:
    """INSERT … ON CONFLICT DO NOTHING: a row that is already there is not counted twice."""
    if not rows:
        return
    dialect = db.get_bind().dialect.name
    module = postgresql if dialect == "postgresql" else sqlite
    db.execute(module.insert(table).on_conflict_do_nothing(), rows)


def ingest_batch(db: Session, gateway_code: str, body: bytes, signature: bytes) -> IngestResult:
    """Verify and store one batch in the caller's transaction (the caller commits)."""
    gateway = db.scalar(select(Gateway).where(Gateway.code == gateway_code))
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
    existing = db.scalar(select(Batch).where(Batch.gateway_id == gateway.id, Batch.seq == seq))
    if existing is not None:
        if existing.hash == digest:
            return IngestResult("duplicate", seq, digest)
        record_refusal(db, gateway, "seq_conflict", {"seq": seq, "stored": existing.hash, "received": digest})
        raise IngestError(409, "seq_conflict", f"seq {seq} was already received with other content", "seq")
    before = db.scalar(select(Batch.hash).where(Batch.gateway_id == gateway.id, Batch.seq == seq - 1))
    if before is not None and before != document["prev"]:
        record_refusal(db, gateway, "chain_break", {"seq": seq, "prev": document["prev"], "stored": before})
        raise IngestError(409, "chain_break", f"prev does not match the hash of batch {seq - 1}", "prev")
    after = db.scalar(select(Batch.prev).where(Batch.gateway_id == gateway.id, Batch.seq == seq + 1))
    if after is not None and after != digest:
        record_refusal(db, gateway, "chain_break", {"seq": seq, "next_prev": after, "received": digest})
        raise IngestError(409, "chain_break", f"batch {seq + 1} points to another batch {seq}", "seq")
    gap_before = seq > 1 and before is None

    meters = dict(db.execute(select(Meter.code, Meter.id).where(Meter.site_id == gateway.site_id)).all())
    key_id = db.scalar(select(GatewayKey.id).where(GatewayKey.gateway_id == gateway.id,
                                                   GatewayKey.retired_at.is_(None)))
    received = utcnow()
    rows = len(document["readings"]) + len(document["intervals"]) + len(document["events"])
    batch_id = db.execute(
        insert(Batch).returning(Batch.id),
        [{"org_id": gateway.org_id, "gateway_id": gateway.id, "key_id": key_id, "seq": seq, "hash": digest,
          "prev": document["prev"], "body": body, "signature": signature, "received_at": received,
          "rows": rows}],
    ).scalar_one()

    def meter_id(code: str, field: str) -> int:
        if code not in meters:
            raise IngestError(422, "unknown_meter", f"meter {code!r} is not registered at this site", field)
        return meters[code]

    readings = [
        {"meter_id": meter_id(r["m"], f"readings[{i}].m"), "ts": parse_ts(r["t"], f"readings[{i}].t"),
         "values": r["q"], "batch_id": batch_id}
        for i, r in enumerate(document["readings"])
    ]
    intervals = [
        {"meter_id": meter_id(r["m"], f"intervals[{i}].m"), "start": parse_ts(r["t"], f"intervals[{i}].t"),
         "imp": _decimal(r["imp"], f"intervals[{i}].imp"), "exp": _decimal(r["exp"], f"intervals[{i}].exp"),
         "flag": r["f"], "batch_id": batch_id}
        for i, r in enumerate(document["intervals"])
    ]
    events = [
        {"org_id": gateway.org_id, "gateway_id": gateway.id,
         "meter_id": meter_id(e["m"], f"events[{i}].m") if e.get("m") else None,
         "ts": parse_ts(e["t"], f"events[{i}].t"), "kind": e["kind"][:40],
         "detail": e.get("detail") or {}, "batch_id": batch_id}
        for i, e in enumerate(document["events"])
    ]
    insert_ignoring_duplicates(db, Reading, readings)
    insert_ignoring_duplicates(db, IntervalEnergy, intervals)
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
