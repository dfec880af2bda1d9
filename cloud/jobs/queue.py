"""The job queue on our own ``jobs`` table: enqueue (idempotent by key), claim (one worker per job), progress,
finish or retry with exponential back-off, and re-queue the jobs of a worker that stopped answering.

Claiming is ``SELECT … FOR UPDATE SKIP LOCKED`` on PostgreSQL; on SQLite (one writer at a time) it is a
conditional ``UPDATE … WHERE status = 'queued'`` under the app's write lock, whose row count says who won —
safe across processes too. While a job runs, ``run_after`` is its heartbeat: the worker moves it to now every
``HEARTBEAT_SECONDS`` (and with every ``progress``); a running job whose heartbeat is older than
``STALE_MINUTES`` belonged to a worker that died, and is queued again.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from flask import Flask
from sqlalchemy import and_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from cloud.clock import utcnow
from cloud.db import session_scope
from cloud.models import Job

STATUSES = ("queued", "running", "done", "failed")
ACTIVE = ("queued", "running")
MAX_ATTEMPTS = 4  # a kind may say otherwise (tasks.py)
BACKOFF_SECONDS = 30  # the first retry waits this long, each next one twice as long
BACKOFF_CAP_SECONDS = 3600
HEARTBEAT_SECONDS = 20
STALE_MINUTES = 5
MESSAGE_LENGTH = 300  # the column's size


@dataclass(frozen=True)
class Claimed:
    """A job as the worker runs it: plain values, read once when claimed."""

    id: int
    kind: str
    org_id: int | None
    params: dict
    actor: str
    attempts: int
    worker: str


def backoff(attempts: int) -> timedelta:
    """How long to wait before try ``attempts + 1``: 30 s, 1 min, 2 min, 4 min … at most an hour."""
    return timedelta(seconds=min(BACKOFF_SECONDS * 2 ** max(attempts - 1, 0), BACKOFF_CAP_SECONDS))


def enqueue(db: Session, kind: str, params: dict | None = None, *, org_id: int | None, actor: str = "system",
            key: str | None = None, run_after: datetime | None = None) -> Job:
    """Queue a job in the caller's transaction (the caller commits). With ``key`` the job is queued at most
    once, ever: a second call with the same key — even from another worker at the same moment — returns the
    job already there (INSERT … ON CONFLICT DO NOTHING on the unique key)."""
    now = utcnow()
    values = {"org_id": org_id, "kind": kind, "params": params or {}, "key": key, "status": "queued",
              "run_after": run_after or now, "attempts": 0, "done": 0, "total": 0, "message": "", "actor": actor,
              "created_at": now, "worker": ""}
    if key is None:
        job = Job(**values)
        db.add(job)
        db.flush()
        return job
    dialect = postgresql if db.connection().dialect.name == "postgresql" else sqlite
    db.execute(dialect.insert(Job).values(**values).on_conflict_do_nothing(index_elements=["key"]))
    return db.scalar(select(Job).where(Job.key == key))


def active_job(db: Session, kind: str, org_id: int | None, **params) -> Job | None:
    """A queued or running job of ``kind`` for the organisation whose params include ``params`` (the same site
    and period): pressing a button twice does not queue the same work twice."""
    for job in db.scalars(select(Job).where(Job.kind == kind, Job.org_id == org_id, Job.status.in_(ACTIVE))
                          .order_by(Job.id)):
        if all(job.params.get(name) == value for name, value in params.items()):
            return job
    return None


def claim(app: Flask, worker: str, now: datetime | None = None) -> Claimed | None:
    """Take the oldest due job for ``worker``, or None when nothing is due. Two workers never take the same."""
    now = now or utcnow()
    due = and_(Job.status == "queued", Job.run_after <= now)
    with app.app_context():
        engine = app.extensions["balans_engine"]
        if engine.dialect.name == "postgresql":
            with session_scope(app) as db:
                job = db.scalar(select(Job).where(due).order_by(Job.run_after, Job.id).limit(1)
                                .with_for_update(skip_locked=True))
                if job is None:
                    return None
                _take(job, worker, now)
                return _claimed(job)
        while True:
            with app.extensions["balans_write_lock"], session_scope(app) as db:
                job_id = db.scalar(select(Job.id).where(due).order_by(Job.run_after, Job.id).limit(1))
                if job_id is None:
                    return None
                # Another process may have taken it since the SELECT: only the UPDATE that still finds it
                # queued wins.
                taken = db.execute(update(Job).where(Job.id == job_id, Job.status == "queued").values(
                    status="running", worker=worker, attempts=Job.attempts + 1, started_at=now, run_after=now,
                    message="", finished_at=None)).rowcount
                if taken:
                    return _claimed(db.get(Job, job_id))


def _take(job: Job, worker: str, now: datetime) -> None:
    job.status, job.worker, job.attempts = "running", worker, job.attempts + 1
    job.started_at, job.run_after, job.message, job.finished_at = now, now, "", None


def _claimed(job: Job) -> Claimed:
    return Claimed(job.id, job.kind, job.org_id, dict(job.params or {}), job.actor, job.attempts, job.worker)


def _mine(job: Claimed):
    """Only the worker that holds the job may write its outcome: one that was presumed dead and re-queued
    finds the job taken by another and changes nothing."""
    return and_(Job.id == job.id, Job.worker == job.worker, Job.status == "running")


def progress(app: Flask, job: Claimed, done: int, total: int, message: str = "") -> None:
    """Record how far the job is, in its own short transaction, so the job's page reads it at once (and the
    heartbeat moves on). On SQLite call it before the task's own write transaction begins: SQLite has one
    writer, and the task would be waiting on itself."""
    with app.app_context(), session_scope(app) as db:
        db.execute(update(Job).where(_mine(job)).values(done=done, total=total, message=message[:MESSAGE_LENGTH],
                                                        run_after=utcnow()))


def heartbeat(app: Flask, jobs: list[Claimed]) -> None:
    """The worker is alive: each of its running jobs' heartbeat moves to now."""
    if not jobs:
        return
    with app.app_context(), session_scope(app) as db:
        for job in jobs:
            db.execute(update(Job).where(_mine(job)).values(run_after=utcnow()))


def finish(app: Flask, job: Claimed, result: dict | None) -> None:
    """The job is done: its progress full, its result kept."""
    with app.app_context(), app.extensions["balans_write_lock"], session_scope(app) as db:
        found = db.get(Job, job.id)
        total = found.total or 1
        db.execute(update(Job).where(_mine(job)).values(status="done", done=total, total=total, message="",
                                                        result=result, finished_at=utcnow()))


def fail(app: Flask, job: Claimed, error: str, max_attempts: int, retry: bool = True,
         result: dict | None = None) -> str:
    """The job failed: queued again after its back-off while it has attempts left (and the error is worth
    retrying), else failed with ``error``. Returns the status it now has."""
    now = utcnow()
    again = retry and job.attempts < max_attempts
    values = ({"status": "queued", "run_after": now + backoff(job.attempts), "worker": ""} if again else
              {"status": "failed", "finished_at": now, "result": result})
    with app.app_context(), app.extensions["balans_write_lock"], session_scope(app) as db:
        db.execute(update(Job).where(_mine(job)).values(message=error[:MESSAGE_LENGTH], **values))
    return values["status"]


def requeue_stale(app: Flask, max_attempts_of, now: datetime | None = None,
                  stale: timedelta = timedelta(minutes=STALE_MINUTES)) -> list[int]:
    """Queue again every running job whose worker has not been heard of for ``stale`` (it died: killed, the
    machine restarted). A job that has used all its attempts (``max_attempts_of(kind)``) fails instead."""
    now = now or utcnow()
    with app.app_context(), app.extensions["balans_write_lock"], session_scope(app) as db:
        found = db.scalars(select(Job).where(Job.status == "running", Job.run_after < now - stale)
                           .with_for_update(skip_locked=True)).all()
        for job in found:
            message = f"worker {job.worker} stopped answering at {job.run_after:%Y-%m-%d %H:%M} UTC"
            if job.attempts >= max_attempts_of(job.kind):
                job.status, job.finished_at, job.message = "failed", now, message[:MESSAGE_LENGTH]
            else:
                job.status, job.worker, job.run_after, job.message = "queued", "", now, message[:MESSAGE_LENGTH]
        return [job.id for job in found]


def job_json(job: Job) -> dict:
    """A job as the page's script and the API read it."""
    return {"id": job.id, "kind": job.kind, "status": job.status, "done": job.done, "total": job.total,
            "message": job.message, "attempts": job.attempts, "params": job.params, "result": job.result,
            "actor": job.actor, "created_at": _iso(job.created_at), "started_at": _iso(job.started_at),
            "finished_at": _iso(job.finished_at)}


def _iso(ts: datetime | None) -> str | None:
    return None if ts is None else ts.strftime("%Y-%m-%dT%H:%M:%SZ")
