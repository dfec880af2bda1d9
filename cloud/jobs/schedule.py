"""What runs when: the periodic jobs, in Kyiv time. Each tick queues the current slot of every periodic kind
under an idempotency key («backup:2026-12-04»), so two workers ticking at the same moment queue it once and it
runs once; a slot missed while no worker ran is not made up (only the current one is queued)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, time, timedelta

from flask import Flask
from sqlalchemy import delete, or_, select

from cloud.clock import utcnow
from cloud.db import session_scope
from cloud.jobs import queue
from cloud.models import AlertRule, Job, Organisation, OutboxMessage, ReminderRule
from shared.calendar import kyiv_time

KEEP_MINUTE_JOBS = timedelta(days=2)  # the every-minute jobs (outbox, alerts), once done, are kept this long
MINUTE_KINDS = ("outbox.send", "alerts.evaluate")


def every_minute(now: datetime) -> str:
    return f"{now:%Y-%m-%dT%H:%M}"


def daily_at(hour: int, minute: int = 0) -> Callable[[datetime], str | None]:
    def slot(now: datetime) -> str | None:
        return f"{now:%Y-%m-%d}" if now.time() >= time(hour, minute) else None
    return slot


@dataclass(frozen=True)
class Periodic:
    kind: str
    when: str  # as `balans cloud schedule` prints it
    slot: Callable[[datetime], str | None]  # Kyiv wall-clock now → the slot due now, or None yet
    per_org: bool = False  # one job per organisation (that has something to do)
    first: Callable[[datetime], datetime] | None = None  # the next slot's start, for the printout


def _next_minute(now: datetime) -> datetime:
    return now.replace(second=0, microsecond=0) + timedelta(minutes=1)


def _next_daily(hour: int) -> Callable[[datetime], datetime]:
    def first(now: datetime) -> datetime:
        today = now.replace(hour=hour, minute=0, second=0, microsecond=0)
        return today if now < today else today + timedelta(days=1)
    return first


SCHEDULE = (
    Periodic("outbox.send", "every minute, when messages are waiting", every_minute, first=_next_minute),
    Periodic("alerts.evaluate", "every minute, when an alert rule is active", every_minute, first=_next_minute),
    Periodic("reminders", "daily 09:00 Kyiv, per organisation with reminder rules", daily_at(9), per_org=True,
             first=_next_daily(9)),
    Periodic("backup", "daily 02:00 Kyiv, keeping BALANS_BACKUP_KEEP days", daily_at(2), first=_next_daily(2)),
    # Monthly partitions: no table of the schema is partitioned, so nothing is scheduled for them.
)


def tick(app: Flask, now: datetime | None = None) -> list[Job]:
    """Queue every periodic job whose slot is due (once per slot, whoever ticks) and forget the done minute
    jobs older than KEEP_MINUTE_JOBS. Returns the jobs of the current slots."""
    now = now or utcnow()
    local = kyiv_time(now).replace(tzinfo=None)
    found = []
    with app.app_context(), app.extensions["balans_write_lock"], session_scope(app) as db:
        for periodic in SCHEDULE:
            slot = periodic.slot(local)
            if slot is None:
                continue
            if periodic.kind == "outbox.send":
                # A message waiting out its own back-off (notifications/mail.py) is not due yet.
                waiting = db.scalar(select(OutboxMessage.id).where(
                    OutboxMessage.status == "pending",
                    or_(OutboxMessage.next_attempt_at.is_(None), OutboxMessage.next_attempt_at <= now)).limit(1))
                # A job still queued or running (waiting out its back-off) is enough: no second one beside it.
                if waiting is None or queue.active_job(db, "outbox.send", None) is not None:
                    continue
            if periodic.kind == "alerts.evaluate" and (
                    db.scalar(select(AlertRule.id).where(AlertRule.active).limit(1)) is None
                    or queue.active_job(db, "alerts.evaluate", None) is not None):
                continue
            if periodic.per_org:
                orgs = db.scalars(select(Organisation.id).where(Organisation.id.in_(
                    select(ReminderRule.org_id).where(ReminderRule.active))).order_by(Organisation.id)).all()
                found += [queue.enqueue(db, periodic.kind, {}, org_id=org_id, key=f"{periodic.kind}:{org_id}:{slot}")
                          for org_id in orgs]
            else:
                found.append(queue.enqueue(db, periodic.kind, {}, org_id=None, key=f"{periodic.kind}:{slot}"))
        db.execute(delete(Job).where(Job.kind.in_(MINUTE_KINDS), Job.status == "done",
                                     Job.finished_at < now - KEEP_MINUTE_JOBS))
    return found


def describe(now: datetime | None = None) -> list[dict]:
    """The schedule as `balans cloud schedule` prints it: kind, when, the next slot (Kyiv)."""
    local = kyiv_time(now or utcnow()).replace(tzinfo=None)
    return [{"kind": p.kind, "when": p.when, "next": f"{p.first(local):%Y-%m-%d %H:%M}"} for p in SCHEDULE]
