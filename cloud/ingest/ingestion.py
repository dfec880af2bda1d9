"""Ingestion: verify a gateway's batch, check its place in the chain, store it whole or not at all.

Idempotent by (gateway, seq): the same batch twice changes nothing; the same seq with other
bytes is refused and raised as a security alert. A gap is accepted and recorded until filled.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import re
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from operator import itemgetter
from typing import NoReturn

import orjson
import psycopg
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import Connection, Engine, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from cloud.db import driver_execute, driver_rows
from cloud.db import insert_rows as driver_insert
from cloud.models import Batch, Event, Gateway, utcnow
from shared.batch import BatchError, batch_hash, load_public_key, parse_batch, verify_signature

log = logging.getLogger(__name__)


class IngestError(Exception):
    """A refused batch: HTTP status, a machine code, the field and a human reason; ``event``, the security
    event the org admin must see (a revoked gateway, a forged signature), for the caller to record."""

    def __init__(self, status: int, code: str, message: str, field: str = "", event: dict | None = None):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.field = field
        self.event = event

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
    meters: dict[str, int]  # the site's meters it was converted with

    @property
    def rows(self) -> int:
        return len(self.readings) + len(self.intervals) + len(self.events)


def ingest_batch(db: Session, gateway_code: str, body: bytes, signature: bytes,
                 writer: BatchWriter | None = None) -> IngestResult:
    """Verify, store and commit one batch: all of it or, on any error, nothing.

    On SQLite ``writer`` does it (batches arriving together are verified and written by one thread and share
    one commit); without one (PostgreSQL) it happens here, in ``db``'s own transaction.
    """
    if writer is not None:
        return writer.submit(gateway_code, body, signature)
    try:
        prepared = prepare_batch(db, gateway_code, body, signature)
    except IngestError as exc:
        if exc.event is not None:
            record_refusal(db, exc.event)
        raise
    db.rollback()  # the reads are done: hold no snapshot while writing
    return store_alone(db, prepared)


def prepare_batch(db: Session, gateway_code: str, body: bytes, signature: bytes,
                  parsed: Parsed | None = None) -> PreparedBatch:
    """Read the gateway and its meters, check the signature, parse and convert every row: everything but
    the chain check and the writes. A refusal the org admin must see carries its event (not yet written).

    ``parsed``: the same work done beforehand in a worker process, used when it was done with the gateway's
    key and meters as they are now and succeeded; otherwise it is done here (and any error named here)."""
    found = next(iter(driver_rows(
        db, "SELECT g.id, g.org_id, g.site_id, g.code, g.public_key, g.status, k.id FROM gateways g "
        "LEFT JOIN gateway_keys k ON k.gateway_id = g.id AND k.retired_at IS NULL WHERE g.code = ?",
        (gateway_code,))), None)
    if found is None:
        raise IngestError(401, "unknown_gateway", f"gateway {gateway_code!r} is not enrolled", "X-Balans-Gateway")
    gateway = GatewayRow(*found)
    if gateway.status == "revoked":
        raise IngestError(403, "revoked_gateway", f"gateway {gateway_code!r} has been revoked",
                          event=security_event(gateway, "revoked_gateway", {}))
    meters = dict(driver_rows(db, "SELECT code, id FROM meters WHERE site_id = ?", (gateway.site_id,)))
    done = parsed.result(gateway.public_key, meters) if parsed is not None else None
    if done is None:
        done = verified_rows(gateway.public_key, gateway_code, body, signature, meters, gateway)
    return PreparedBatch(gateway, *done, body, signature, meters)


def verified_rows(public_key_pem: str, gateway_code: str, body: bytes, signature: bytes, meters: dict[str, int],
                  gateway: GatewayRow | None = None) -> tuple:
    """Check the signature, parse and convert every row: (seq, prev, digest, readings, intervals, events).
    A refusal is an IngestError; a forged batch carries the security event of ``gateway`` when given."""
    try:
        verify_signature(public_key(public_key_pem), body, signature)
    except BatchError as exc:
        event = security_event(gateway, "bad_signature", {"bytes": len(body)}) if gateway else None
        raise IngestError(401, exc.code, exc.reason, exc.field, event=event) from exc
    try:
        document = parse_batch(body)
    except BatchError as exc:
        raise IngestError(422 if exc.code != "too_large" else 413, exc.code, exc.reason, exc.field) from exc
    if document["gateway"] != gateway_code:
        raise IngestError(422, "invalid_batch", "batch names another gateway than the header", "gateway")
    readings, intervals, events = _rows(document, meters)
    return document["seq"], document["prev"], batch_hash(body), readings, intervals, events


def parsed_rows(public_key_pem: str, gateway_code: str, body: bytes, signature: bytes,
                meters: dict[str, int]) -> tuple | None:
    """``verified_rows`` run in a worker process, or None when anything is wrong: the writer then does it
    again itself and names the error."""
    try:
        return verified_rows(public_key_pem, gateway_code, body, signature, meters)
    except Exception:
        return None


@dataclass
class Parsed:
    """A batch being parsed in a worker process, with the key and meters it is parsed with."""

    public_key_pem: str
    meters: dict[str, int]
    future: Future
    pool: ProcessPoolExecutor

    def result(self, public_key_pem: str, meters: dict[str, int]) -> tuple | None:
        """The worker's result if it was made with this key and these meters and succeeded, else None."""
        if public_key_pem != self.public_key_pem or meters != self.meters:
            self.future.cancel()
            return None
        try:
            return self.future.result(timeout=PARSE_SECONDS)
        except TimeoutError:  # a stuck worker: its pool goes, and the writer parses this batch itself
            _discard_pool(self.pool, kill=True)
            return None
        except Exception:  # a broken pool: the writer parses it itself
            return None


PARSE_SECONDS = 30.0  # the leader waits this long for a worker (it holds the write lock meanwhile)
MAX_POOL_FAILURES = 3  # pools that broke or stuck before the process parses in the writer for good
_parse_pool: ProcessPoolExecutor | None = None
_parse_pool_pid = 0  # the process that started it: a forked child starts its own
_parse_pool_failures = 0
_parse_pool_guard = threading.Lock()


def parse_pool() -> ProcessPoolExecutor | None:
    """The process's pool of parse workers (one fewer than its CPUs, at most four; none on one CPU or after
    repeated failures), started on first use."""
    global _parse_pool, _parse_pool_pid
    with _parse_pool_guard:
        if _parse_pool is None or _parse_pool_pid != os.getpid():
            cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
            if cpus < 2 or _parse_pool_failures >= MAX_POOL_FAILURES:
                return None
            # spawn, not fork: the app has threads (the server's, the writer's) that a fork would copy mid-step.
            _parse_pool = ProcessPoolExecutor(min(cpus - 1, 4), mp_context=multiprocessing.get_context("spawn"),
                                              initializer=_end_with_parent, initargs=(os.getpid(),))
            _parse_pool_pid = os.getpid()
        return _parse_pool


def _discard_pool(pool: ProcessPoolExecutor, kill: bool = False) -> None:
    """A pool that cannot take work (a worker died or is stuck): the next batch starts a new one."""
    global _parse_pool, _parse_pool_failures
    with _parse_pool_guard:
        if _parse_pool is pool:
            _parse_pool = None
            _parse_pool_failures += 1
            if _parse_pool_failures >= MAX_POOL_FAILURES:
                log.warning("parse workers failed %d times: this process parses batches in the writer from now on",
                            _parse_pool_failures)
    processes = list((getattr(pool, "_processes", None) or {}).values()) if kill else []
    pool.shutdown(wait=False, cancel_futures=True)
    for process in processes:  # shutdown() does not stop a worker that hangs
        process.kill()


def _end_with_parent(parent: int) -> None:
    """In a parse worker: end when the app's process has ended, however it ended (a killed server leaves no
    worker behind)."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1)
        os._exit(0)

    threading.Thread(target=watch, name="balans-parse-parent", daemon=True).start()


def security_event(gateway: GatewayRow, kind: str, detail: dict) -> dict:
    return {"org_id": gateway.org_id, "gateway_id": gateway.id, "ts": utcnow(), "kind": f"security:{kind}",
            "detail": detail}


@lru_cache(maxsize=4096)
def public_key(pem: str) -> Ed25519PublicKey:
    """A gateway's key, parsed once: its PEM text is the cache key, so a rotated key is a new entry."""
    return load_public_key(pem)


def store_alone(db: Session, prepared: PreparedBatch) -> IngestResult:
    """Store one prepared batch in its own transaction and commit (a refusal's event is committed too)."""
    # The batch's own rows go through the driver, whose IntegrityError SQLAlchemy has not wrapped.
    duplicate = (IntegrityError, db.connection().dialect.dbapi.IntegrityError)
    try:
        try:
            result = _store(db, prepared)
        except duplicate:
            # Another worker stored this seq between our check and our insert: decide again on what is there.
            db.rollback()
            result = _store(db, prepared)
    except IngestError:
        db.commit()  # the refusal's security event
        raise
    except BaseException:
        db.rollback()
        raise
    db.commit()
    return result


class BatchWriter:
    """Group commit for SQLite, which has one writer and where a commit costs as much as writing a thousand
    rows: batches that arrive while another group is being written are written together, in one transaction,
    in arrival order, and each sender is answered after the commit that made its batch durable.

    Verifying and parsing a batch is sent to a worker process as it arrives (when its gateway's key and
    meters are known from its previous batch), so that it happens while the leader writes the group before:
    under CPython's GIL, threads doing that work beside the writer would make both slower (each row the leader
    writes hands the GIL back and forth). The leader checks that the worker used the gateway's key and meters
    as they are now, and does the work itself otherwise, or when the worker found anything wrong.

    Each batch is still all or nothing: its chain checks run before any of its rows are written, and should
    a write fail in a group, the group is rolled back and every batch in it is written again alone.
    """

    def __init__(self, sessions: sessionmaker, lock: AbstractContextManager):
        self.lock = lock  # the app's write lock: one group at a time
        self._queue = threading.Lock()
        self._pending: list[_Job] = []
        self._checkpoints = WalCheckpointer(sessions.kw["bind"], lock)
        self._known: dict[str, tuple[str, dict[str, int]]] = {}  # gateway → key and meters of its last batch
        self._ahead = sessions.kw["bind"].dialect.name == "sqlite"  # PostgreSQL: no group writer in production

    def submit(self, gateway_code: str, body: bytes, signature: bytes) -> IngestResult:
        job = _Job(gateway_code, body, signature, self._parse_ahead(gateway_code, body, signature))
        with self._queue:
            self._pending.append(job)
        with self.lock:
            if not job.finished:  # no earlier group took it: lead a group of all that waits
                with self._queue:
                    jobs, self._pending = self._pending, []
                self._write(jobs)
        return job.outcome()

    def _write(self, jobs: list[_Job]) -> None:
        try:
            with self._checkpoints.connection() as connection, Session(connection, expire_on_commit=False) as db:
                for job in jobs:
                    try:
                        prepared = prepare_batch(db, job.gateway, job.body, job.signature, job.parsed)
                        self._known[job.gateway] = (prepared.gateway.public_key, prepared.meters)
                        job.result = _store(db, prepared)
                    except IngestError as exc:
                        if exc.event is not None:
                            db.connection().execute(EVENTS.insert(), exc.event)
                        if exc.status in (401, 403):  # unknown, revoked or forged: nothing to parse ahead for it
                            self._known.pop(job.gateway, None)
                        job.error = exc
                db.commit()
        except Exception as exc:
            if len(jobs) == 1:
                jobs[0].result, jobs[0].error = None, exc
            else:
                for job in jobs:
                    job.result = job.error = None
                    self._write([job])
        except BaseException as exc:  # interrupted: no sender may wait for an answer that never comes
            for job in jobs:
                job.result, job.error = None, RuntimeError(f"ingestion interrupted: {exc!r}")
            raise
        finally:
            for job in jobs:
                job.finished = True

    def _parse_ahead(self, gateway_code: str, body: bytes, signature: bytes) -> Parsed | None:
        known = self._known.get(gateway_code)
        pool = parse_pool() if known is not None and self._ahead else None
        if pool is None:
            return None
        try:
            return Parsed(*known, pool.submit(parsed_rows, known[0], gateway_code, body, signature, known[1]), pool)
        except RuntimeError:  # the pool is broken or shut down: the leader parses this one, a new pool the next
            _discard_pool(pool)
            return None


class WalCheckpointer:
    """Keeps SQLite's WAL checkpoints off the ingestion writer's commits: they only append to the WAL, and a
    background thread copies it into the database soon after (a PASSIVE checkpoint, which never blocks the
    readers or the writer), so that no gateway waits for the copy and its fsync.

    While ingestion is active the writer keeps one connection of its own, set once to leave checkpoints to
    the thread; when ingestion has been idle for a while the thread ends and hands that connection back to
    the pool with SQLite's own threshold. Should the thread fail, the writer's commits checkpoint by
    themselves again, as SQLite does by default. Other writers of the app are not concerned."""

    PAGES = 1000  # SQLite's own threshold, restored on the connection before it returns to the pool
    IDLE_SECONDS = 10.0

    def __init__(self, engine: Engine, write_lock: AbstractContextManager):
        self._engine = engine
        self._write_lock = write_lock  # held by the writer around every use of its connection
        self._wake = threading.Event()
        self._guard = threading.Lock()
        self._thread: threading.Thread | None = None
        self._connection: Connection | None = None
        self._deferring = False  # the connection's commits leave checkpoints to the thread
        # Only a SQLite file has a WAL; elsewhere (PostgreSQL, which has no group writer but may be given one
        # in tests) the connection is a plain one.
        self._failed = engine.dialect.name != "sqlite" or engine.url.database in (None, "", ":memory:")

    @contextmanager
    def connection(self) -> Iterator[Connection]:
        """The writer's connection (use it under the write lock only), kept between groups while active."""
        deferred = self._running()
        if self._connection is None:
            self._connection, self._deferring = self._engine.connect(), False
        connection = self._connection
        try:
            if deferred != self._deferring:
                self._autocheckpoint(connection, 0 if deferred else self.PAGES)
                self._deferring = deferred
            yield connection
            connection.rollback()  # whatever the caller did not commit
        except BaseException:
            self._release()  # a failed write may leave the connection in any state: the next group opens anew
            raise
        finally:
            if deferred:
                self._wake.set()
            else:
                self._release()

    def _release(self) -> None:
        connection, self._connection = self._connection, None
        if connection is None:
            return
        try:
            if self._deferring:
                connection.rollback()
                self._autocheckpoint(connection, self.PAGES)
        except Exception:
            # Never back into the pool with its checkpoints left to a thread that may be gone.
            log.warning("the ingestion writer's connection could not be reset; it is discarded", exc_info=True)
            connection.invalidate()
        finally:
            self._deferring = False
            connection.close()

    def _running(self) -> bool:
        with self._guard:
            if self._failed:
                return False
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="balans-wal-checkpoints", daemon=True)
                self._thread.start()
            return True

    @staticmethod
    def _autocheckpoint(connection: Connection, pages: int) -> None:
        connection.exec_driver_sql(f"PRAGMA wal_autocheckpoint={pages}")
        connection.commit()

    def _run(self) -> None:
        try:
            while True:
                if not self._wake.wait(self.IDLE_SECONDS):
                    with self._guard:
                        if not self._wake.is_set():
                            self._thread = None
                            break
                self._wake.clear()
                with self._engine.connect() as connection:
                    connection.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)")
                    connection.commit()
                time.sleep(0.05)  # commits gather meanwhile: a page written by several is copied once
        except Exception:
            log.exception("WAL checkpoints are back on the ingestion writer's commits")
            with self._guard:
                self._failed, self._thread = True, None
        with self._write_lock, self._guard:
            if self._thread is None:  # no group started the thread again meanwhile: the connection goes back
                self._release()


@dataclass
class _Job:
    gateway: str
    body: bytes
    signature: bytes
    parsed: Parsed | None = None
    result: IngestResult | None = None
    error: Exception | None = None
    finished: bool = False

    def outcome(self) -> IngestResult:
        if self.error is not None:
            raise self.error
        assert self.result is not None
        return self.result


def _store(db: Session, prepared: PreparedBatch) -> IngestResult:
    """Check the batch's place in its gateway's chain and write it. A refusal adds its security event to
    ``db`` before raising, and has written nothing else."""
    gateway, seq, digest = prepared.gateway, prepared.seq, prepared.digest
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
        stamp, prepared.rows))[0][0]
    if postgres:
        insert_rows(db, "readings", ("meter_id", "ts", "values", "source", "batch_id"),
                    [(*row, "gateway", batch_id) for row in prepared.readings])
        insert_rows(db, "interval_energy", ("meter_id", "start", "imp_wh", "exp_wh", "flag", "batch_id"),
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
    if prepared.events:
        connection.execute(EVENTS.insert(), [
            {**event, "org_id": gateway.org_id, "gateway_id": gateway.id, "batch_id": batch_id}
            for event in prepared.events])
    driver_execute(db, UPDATE_GATEWAY, (stamp, seq, digest, seq, seq, gateway.id))
    return IngestResult("stored", seq, digest, seq > 1 and before is None)


INSERT_BATCH = ("INSERT INTO batches (org_id, gateway_id, key_id, seq, hash, prev, body, signature, received_at, rows) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id")
UPDATE_GATEWAY = ("UPDATE gateways SET last_seen = ?, "
                  "chain_head = CASE WHEN last_seq < ? THEN ? ELSE chain_head END, "
                  "last_seq = CASE WHEN last_seq < ? THEN ? ELSE last_seq END WHERE id = ?")


BATCHES, EVENTS, GATEWAYS = Batch.__table__, Event.__table__, Gateway.__table__


def _refuse(db: Session, gateway: GatewayRow, kind: str, detail: dict, error: IngestError) -> NoReturn:
    db.connection().execute(EVENTS.insert(), {"org_id": gateway.org_id, "gateway_id": gateway.id, "ts": utcnow(),
                                              "kind": f"security:{kind}", "detail": detail})
    raise error


def _rows(document: dict, meters: dict[str, int]) -> tuple[list[tuple], list[tuple], list[dict]]:
    """The batch's rows as the database stores them (without their batch id); an error names the row."""
    readings, intervals = document["readings"], document["intervals"]
    section = "readings"
    try:
        # A batch holds few distinct meters and instants: each is looked up and converted once; the loops
        # over rows run in C (map, zip), as this is done for every reading received.
        m, t, q = itemgetter("m"), itemgetter("t"), itemgetter("q")
        times = {value: db_time(value, "t") for value in set(map(t, readings)) | set(map(t, intervals))}
        reading_rows = list(zip(map(meters.__getitem__, map(m, readings)), map(times.__getitem__, map(t, readings)),
                                map(bytes.decode, map(orjson.dumps, map(q, readings))), strict=True))
        section = "intervals"
        interval_rows = [(meters[r["m"]], times[r["t"]], kwh_to_wh(r["imp"], "imp"), kwh_to_wh(r["exp"], "exp"),
                          r["f"][:12]) for r in intervals]
    except (KeyError, IngestError):
        _name_the_bad_row(document, section, meters)
        raise
    events = [
        {"meter_id": _meter(meters, e["m"], f"events[{i}].m") if e.get("m") else None,
         "ts": parse_ts(e["t"], f"events[{i}].t"), "kind": e["kind"][:40], "detail": e.get("detail") or {}}
        for i, e in enumerate(document["events"])
    ]
    return reading_rows, interval_rows, events


def _meter(meters: dict[str, int], code: str, field: str) -> int:
    found = meters.get(code)
    if found is None:
        raise IngestError(422, "unknown_meter", f"meter {code!r} is not registered at this site", field)
    return found


def _name_the_bad_row(document: dict, section: str, meters: dict[str, int]) -> None:
    """The slow path after a failure: check row by row so that the error names the row and the field."""
    for i, row in enumerate(document[section]):
        _meter(meters, row["m"], f"{section}[{i}].m")
        db_time(row["t"], f"{section}[{i}].t")
        if section == "intervals":
            kwh_to_wh(row["imp"], f"{section}[{i}].imp")
            kwh_to_wh(row["exp"], f"{section}[{i}].exp")


def record_refusal(db: Session, event: dict) -> None:
    """A refusal the org admin must see; written in its own transaction so it survives the 4xx."""
    db.rollback()
    db.connection().execute(EVENTS.insert(), event)
    try:
        db.commit()
    except IntegrityError:
        db.rollback()


def missing_seqs(db: Session, gateway: Gateway) -> list[int]:
    """Sequence numbers not yet received below the highest one: gaps shown until filled."""
    have = set(db.scalars(select(Batch.seq).where(Batch.gateway_id == gateway.id)))
    return [s for s in range(1, gateway.last_seq + 1) if s not in have]
