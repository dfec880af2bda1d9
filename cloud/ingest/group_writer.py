"""SQLite's ingestion writer: batches arriving together are written by one thread in one transaction (group
commit), with WAL checkpoints kept off the commits. PostgreSQL needs none of
it: each request writes in its own transaction (``service.ingest_batch``)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass

from sqlalchemy import Connection, Engine
from sqlalchemy.orm import Session, sessionmaker

from cloud.ingest.chain import prepare_batch, store_batch
from cloud.ingest.errors import IngestError, IngestResult
from cloud.ingest.refusals import add_refusal

log = logging.getLogger(__name__)


class BatchWriter:
    """Group commit for SQLite, which has one writer and where a commit costs as much as writing a thousand
    rows: batches that arrive while another group is being written are written together, in one transaction,
    in arrival order, and each sender is answered after the commit that made its batch durable.

    The leader verifies and parses each batch of its group itself: at a cooperative's sizes that keeps the
    writer within 3 × a raw executemany of the same rows (``bench/cloud_ingest.py --variants``), and a pool
    of parse workers ahead of it earned too little for what it cost to keep right (measured and removed).

    Each batch is still all or nothing: its chain checks run before any of its rows are written, and should
    a write fail in a group, the group is rolled back and every batch in it is written again alone.
    """

    def __init__(self, sessions: sessionmaker, lock: AbstractContextManager, background_checkpoints: bool = True):
        self.lock = lock  # the app's write lock: one group at a time
        self._queue = threading.Lock()
        self._pending: list[_Job] = []
        self._checkpoints = WalCheckpointer(sessions.kw["bind"], lock, background_checkpoints)
        # background_checkpoints off is for measuring what the thread earns (bench/cloud_ingest.py --variants).

    def submit(self, gateway_code: str, body: bytes, signature: bytes) -> IngestResult:
        job = _Job(gateway_code, body, signature)
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
                        job.result = store_batch(db, prepare_batch(db, job.gateway, job.body, job.signature))
                    except IngestError as exc:
                        if exc.event is not None:
                            add_refusal(db.connection(), exc.event)
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

    def __init__(self, engine: Engine, write_lock: AbstractContextManager, enabled: bool = True):
        self._engine = engine
        self._write_lock = write_lock  # held by the writer around every use of its connection
        self._wake = threading.Event()
        self._guard = threading.Lock()
        self._thread: threading.Thread | None = None
        self._connection: Connection | None = None
        self._deferring = False  # the connection's commits leave checkpoints to the thread
        # Only a SQLite file has a WAL; elsewhere (PostgreSQL, which has no group writer but may be given one
        # in tests) the connection is a plain one.
        self._failed = not enabled or engine.dialect.name != "sqlite" or engine.url.database in (None, "", ":memory:")

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
    result: IngestResult | None = None
    error: Exception | None = None
    finished: bool = False

    def outcome(self) -> IngestResult:
        if self.error is not None:
            raise self.error
        assert self.result is not None
        return self.result
