"""One batch's place in its gateway's chain, and its write: a replay is a duplicate, the same seq with other
bytes or a broken link is refused (and recorded as a security event), a gap is accepted and shown until filled.
All of a batch is written or none of it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NoReturn

import psycopg
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from cloud.dashboards.daily import forget_voltage_days, refresh_days, touched_days
from cloud.db import driver_execute, driver_rows, insert_rows, write_lock
from cloud.ingest.errors import IngestError, IngestResult
from cloud.ingest.refusals import add_refusal
from cloud.ingest.rows import verified_rows
from cloud.models import Event, Gateway, utcnow
from shared.batch import MAX_SEQ


@dataclass(frozen=True)
class GatewayRow:
    """What ingestion needs of a gateway: read once, without the ORM (this runs for every batch)."""

    id: int
    org_id: int
    site_id: int
    code: str
    public_key: str
    status: str
    key_id: int | None
    last_seq: int = 0  # the highest seq stored so far


@dataclass
class PreparedBatch:
    """A verified, parsed batch with its rows converted to what the database stores: ready to be written."""

    gateway: GatewayRow
    seq: int
    prev: str
    digest: str
    readings: list[tuple]  # (meter id, time, values as JSON text), as the database stores them
    intervals: list[tuple]  # (meter id, start, import Wh, export Wh, flag)
    events: list[dict]
    body: bytes
    signature: bytes
    config_version: int | None  # the site configuration version in force at the gateway (None: not said)
    meters: dict[str, int]  # the site's meters it was converted with

    @property
    def rows(self) -> int:
        return len(self.readings) + len(self.intervals) + len(self.events)


def prepare_batch(db: Session, gateway_code: str, body: bytes, signature: bytes) -> PreparedBatch:
    """Read the gateway and its meters, check the signature, parse and convert every row: everything but
    the chain check and the writes. A refusal the org admin must see carries its event (not yet written)."""
    found = next(iter(driver_rows(
        db, "SELECT g.id, g.org_id, g.site_id, g.code, g.public_key, g.status, k.id, g.last_seq FROM gateways g "
        "LEFT JOIN gateway_keys k ON k.gateway_id = g.id AND k.retired_at IS NULL WHERE g.code = ?",
        (gateway_code,))), None)
    if found is None:
        raise IngestError(401, "unknown_gateway", f"gateway {gateway_code!r} is not enrolled", "X-Balans-Gateway")
    gateway = GatewayRow(*found)
    if gateway.status == "revoked":
        raise IngestError(403, "revoked_gateway", f"gateway {gateway_code!r} has been revoked",
                          event=security_event(gateway, "revoked_gateway", {}))
    meters = dict(driver_rows(db, "SELECT code, id FROM meters WHERE site_id = ?", (gateway.site_id,)))
    done = verified_rows(gateway.public_key, gateway_code, body, signature, meters,
                         security_event(gateway, "bad_signature", {}))
    *rows, config_version = done
    return PreparedBatch(gateway, *rows, body, signature, config_version, meters)


def security_event(gateway: GatewayRow, kind: str, detail: dict) -> dict:
    return {"org_id": gateway.org_id, "gateway_id": gateway.id, "ts": utcnow(), "kind": f"security:{kind}",
            "detail": detail}


def store_alone(db: Session, prepared: PreparedBatch) -> IngestResult:
    """Store one prepared batch in its own transaction and commit (a refusal's event is committed too)."""
    # The batch's own rows go through the driver, whose IntegrityError SQLAlchemy has not wrapped.
    duplicate = (IntegrityError, db.connection().dialect.dbapi.IntegrityError)
    try:
        try:
            result = store_batch(db, prepared)
        except duplicate:
            # Another worker stored this seq between our check and our insert: decide again on what is there.
            db.rollback()
            result = store_batch(db, prepared)
    except IngestError:
        db.commit()  # the refusal's security event
        raise
    except BaseException:
        db.rollback()
        raise
    db.commit()
    return result


def store_batch(db: Session, prepared: PreparedBatch) -> IngestResult:
    """Check the batch's place in its gateway's chain and write it. A refusal adds its security event to
    ``db`` before raising, and has written nothing else."""
    gateway, seq, digest = prepared.gateway, prepared.seq, prepared.digest
    if seq > gateway.last_seq + MAX_SEQ_AHEAD:
        # A gateway numbers its batches one by one; a jump this far is a broken or hostile counter, and each
        # number skipped would stand as a gap to fill.
        raise IngestError(422, "seq_out_of_range", f"seq {seq} is more than {MAX_SEQ_AHEAD} ahead of the last "
                          f"batch received ({gateway.last_seq})", "seq")
    connection = db.connection()
    # The batch's neighbours in one query: itself (a replay?), the one before and the one after.
    neighbours = {row[0]: row for row in driver_rows(
        db, "SELECT seq, hash, prev FROM batches WHERE gateway_id = ? AND seq BETWEEN ? AND ?",
        (gateway.id, seq - 1, seq + 1))}
    existing = neighbours.get(seq)
    if existing is not None:
        if existing[1] == digest:
            return IngestResult("duplicate", seq, digest)
        _refuse(db, gateway, "seq_conflict", {"seq": seq, "stored": existing[1], "received": digest},
                IngestError(409, "seq_conflict", f"seq {seq} was already received with other content", "seq"))
    before = neighbours[seq - 1][1] if seq - 1 in neighbours else None
    if before is not None and before != prepared.prev:
        _refuse(db, gateway, "chain_break", {"seq": seq, "prev": prepared.prev, "stored": before},
                IngestError(409, "chain_break", f"prev does not match the hash of batch {seq - 1}", "prev"))
    after = neighbours[seq + 1][2] if seq + 1 in neighbours else None
    if after is not None and after != digest:
        _refuse(db, gateway, "chain_break", {"seq": seq, "next_prev": after, "received": digest},
                IngestError(409, "chain_break", f"batch {seq + 1} points to another batch {seq}", "seq"))

    # Plain SQL through the driver: these run for every batch, under the write lock on SQLite, where
    # compiling them with SQLAlchemy cost as much as writing a hundred readings.
    postgres = connection.dialect.name == "postgresql"
    received = utcnow()
    stamp = received if postgres else received.strftime("%Y-%m-%d %H:%M:%S.%f")  # SQLAlchemy's form on SQLite
    batch_id = driver_rows(db, INSERT_BATCH, (
        gateway.org_id, gateway.id, gateway.key_id, seq, digest, prepared.prev, prepared.body, prepared.signature,
        stamp, prepared.rows, prepared.config_version))[0][0]
    if postgres:
        store_new_rows(db, "readings", ("meter_id", "ts", "values", "source", "batch_id"),
                    [(*row, "gateway", batch_id) for row in prepared.readings])
        store_new_rows(db, "interval_energy", ("meter_id", "start", "imp_wh", "exp_wh", "flag", "batch_id"),
                    [(*row, batch_id) for row in prepared.intervals])
    else:
        # The batch's id is ours and an integer: written into the statement, each row binds only its own values.
        cursor = connection.connection.cursor()
        try:
            if prepared.readings:
                cursor.executemany(
                    'INSERT INTO readings (meter_id, ts, "values", source, batch_id) VALUES '
                    f"(?, ?, ?, 'gateway', {int(batch_id)}) ON CONFLICT DO NOTHING", prepared.readings)
            if prepared.intervals:
                cursor.executemany(
                    "INSERT INTO interval_energy (meter_id, start, imp_wh, exp_wh, flag, batch_id) VALUES "
                    f"(?, ?, ?, ?, ?, {int(batch_id)}) ON CONFLICT DO NOTHING", prepared.intervals)
        finally:
            cursor.close()
    if prepared.intervals:
        # The dashboards' daily sums of the days these intervals fall on, in the same transaction.
        refresh_days(db, gateway.org_id, touched_days(prepared.intervals))
    if prepared.readings:
        forget_voltage_days(db, touched_days(prepared.readings))  # summed again when a voltage page asks
    if prepared.events:
        connection.execute(EVENTS.insert(), [
            {**event, "org_id": gateway.org_id, "gateway_id": gateway.id, "batch_id": batch_id}
            for event in prepared.events])
    driver_execute(db, UPDATE_GATEWAY, (stamp, seq, digest, seq, seq, gateway.id))
    return IngestResult("stored", seq, digest, seq > 1 and before is None)


INSERT_BATCH = ("INSERT INTO batches (org_id, gateway_id, key_id, seq, hash, prev, body, signature, received_at, rows, "
                "config_version) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id")
UPDATE_GATEWAY = ("UPDATE gateways SET last_seen = ?, "
                  "chain_head = CASE WHEN last_seq < ? THEN ? ELSE chain_head END, "
                  "last_seq = CASE WHEN last_seq < ? THEN ? ELSE last_seq END WHERE id = ?")


EVENTS = Event.__table__
# How far ahead of the last batch received a batch's seq may jump: batches lost at the gateway leave gaps, but
# 100 000 batches is three years of one batch every 15 minutes.
MAX_SEQ_AHEAD = 100_000


def _refuse(db: Session, gateway: GatewayRow, kind: str, detail: dict, error: IngestError) -> NoReturn:
    db.connection().execute(EVENTS.insert(), {"org_id": gateway.org_id, "gateway_id": gateway.id, "ts": utcnow(),
                                              "kind": f"security:{kind}", "detail": detail})
    raise error


def store_new_rows(db: Session, table: str, columns: tuple[str, ...], rows: list[tuple]) -> None:
    """Store rows, skipping any already stored: COPY on PostgreSQL, executemany elsewhere."""
    if not rows:
        return
    names = ", ".join(f'"{c}"' for c in columns)
    if db.connection().dialect.name == "postgresql" and _copy_rows(db, table, names, rows):
        return
    insert_rows(db, table, columns, rows, ignore_duplicates=True)


def _copy_rows(db: Session, table: str, names: str, rows: list[tuple]) -> bool:
    """PostgreSQL: COPY the rows in a savepoint; False when one is already stored (then insert row by row)."""
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


def record_refusal(db: Session, event: dict) -> None:
    """A refusal the org admin must see; written in its own transaction so it survives the 4xx (under the app's
    write lock: see add_refusal)."""
    with write_lock():
        db.rollback()
        add_refusal(db.connection(), event)
        try:
            db.commit()
        except IntegrityError:
            db.rollback()


def missing_ranges(db: Session, gateway: Gateway, limit: int = 20,
                   between: tuple[int, int] | None = None) -> list[tuple[int, int]]:
    """The runs of sequence numbers not yet received below the highest one (or, with ``between``, from its
    first to its last received seq), as (first, last) — gaps shown until filled. Derived from the batches in one
    query (never a list of every missing number)."""
    low, high = between or (1, MAX_SEQ)
    rows = driver_rows(db, "SELECT previous + 1, seq - 1 FROM (SELECT seq, COALESCE(LAG(seq) OVER (ORDER BY seq), ?) "
                           "AS previous FROM batches WHERE gateway_id = ? AND seq BETWEEN ? AND ?) AS chain "
                           "WHERE seq - previous > 1 ORDER BY seq LIMIT ?", (low - 1, gateway.id, low, high, limit))
    return [(int(first), int(last)) for first, last in rows]
