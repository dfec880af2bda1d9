"""What each kind of job does: the registry of kinds → functions, each a thin call of an existing service
(the billing run, the outbox, reminders, the backup). A task gets a ``Context`` (the job, the app, its
``progress``) and returns the job's result; a ``Permanent`` error fails the job at once, any other error is
retried with back-off (queue.py)."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from flask import Flask

from cloud.admin.backup import BackupError, backup
from cloud.alerts.engine import evaluate
from cloud.alerts.telegram import BotApiSender
from cloud.billing.errors import BillingError
from cloud.billing.run import billing_run
from cloud.clock import kyiv_today, utcnow
from cloud.db import session_scope
from cloud.errors import ExplainedError
from cloud.i18n import N_
from cloud.jobs import queue
from cloud.models import Organisation, Site
from cloud.notifications.mail import SmtpSender, send_pending
from cloud.notifications.reminders import queue_reminders
from cloud.permissions import Action

# The steps a job's page may show (a job's message is one of these keys while it runs).
STEPS = (N_("step_readings"), N_("step_drafting"), N_("step_storing"), N_("step_sending"), N_("step_backup"),
         N_("step_reminders"))
KIND_WORDS = (N_("kind_billing.draft"), N_("kind_billing.issue"), N_("kind_outbox.send"), N_("kind_reminders"),
              N_("kind_backup"), N_("kind_alerts.evaluate"))
JOB_STATES = (N_("job_queued"), N_("job_running"), N_("job_done"), N_("job_failed"))
BACKUP_KEEP = 14  # daily backups kept (BALANS_BACKUP_KEEP); older ones are removed after a good backup


class Permanent(ExplainedError):
    """An error that trying again cannot mend (an issued run, a reading that falls): the job fails at once."""


@dataclass(frozen=True)
class Context:
    app: Flask
    job: queue.Claimed

    def progress(self, done: int, total: int, message: str = "") -> None:
        queue.progress(self.app, self.job, done, total, message)


@dataclass(frozen=True)
class Task:
    kind: str
    run: Callable[[Context], dict | None]
    action: Action  # who may queue it (a person, the API, a command)
    max_attempts: int = queue.MAX_ATTEMPTS


def _site(db, ctx: Context) -> Site:
    site = db.get(Site, ctx.job.params.get("site_id"))
    if site is None or site.org_id != ctx.job.org_id:
        raise Permanent(f"job {ctx.job.id}: site {ctx.job.params.get('site_id')} is not this organisation's",
                        "err_job_site")
    return site


def _billing(ctx: Context, issue: bool) -> dict:
    app = ctx.app
    # SQLite has one writer: the run reads, then writes, in one transaction under the write lock. Its
    # progress calls come before its first write (billing_run says so), so they commit on their own.
    with app.app_context(), app.extensions["balans_write_lock"], session_scope(app) as db:
        site = _site(db, ctx)
        try:
            result = billing_run(db, site, ctx.job.params["period"], issue=issue, actor=ctx.job.actor,
                                 progress=ctx.progress)
        except BillingError as exc:
            raise Permanent(str(exc), exc.code, **exc.params) from exc
        # A problem is a Phrase: kept with its key and values, so the job's page says it in the reader's language.
        return {**result.as_json(), "problems": [phrase_json(p) for p in result.problems]}


def phrase_json(phrase) -> dict:
    return {"text": str(phrase), "code": getattr(phrase, "code", ""),
            "params": {k: str(v) for k, v in getattr(phrase, "params", {}).items()}}


def billing_draft(ctx: Context) -> dict:
    return _billing(ctx, issue=False)


def billing_issue(ctx: Context) -> dict:
    return _billing(ctx, issue=True)


class SendingFailed(Exception):
    """Every message tried failed (the mail server is down): the job waits its back-off before the next try."""


def outbox_send(ctx: Context) -> dict:
    """Send what the outbox holds: every organisation's (the schedule's minute job), or only the organisation
    ``params["org_id"]``'s (the month page's «e-mail» button). Each message keeps its own back-off
    (notifications/mail.py); when every message tried fails, the job is retried with back-off too (and the
    schedule queues no other outbox job meanwhile), so a mail server that is down is not hammered."""
    config = ctx.app.config
    sender = SmtpSender(config["SMTP_HOST"], int(config["SMTP_PORT"]), config["SMTP_USER"], config["SMTP_PASSWORD"],
                        str(config["SMTP_STARTTLS"]).lower() in ("1", "true", "yes"))
    # Through python-telegram-bot, as the bot itself (cloud/alerts/telegram.py).
    telegram = BotApiSender(config["TELEGRAM_TOKEN"], config["TELEGRAM_API"]) if config["TELEGRAM_TOKEN"] else None
    ctx.progress(0, 1, "step_sending")
    with ctx.app.app_context(), ctx.app.extensions["balans_write_lock"], session_scope(ctx.app) as db:
        result = send_pending(db, sender, config["MAIL_FROM"], telegram=telegram, org_id=_org_param(ctx))
    if result["failed"] and not result["sent"]:
        raise SendingFailed(f"{result['failed']} messages could not be sent; the outbox tries again later")
    return result


def _org_param(ctx: Context) -> int | None:
    """The job's ``org_id`` param: only the job's own organisation may be named (a job queued for one
    organisation never sends another's mail)."""
    org_id = ctx.job.params.get("org_id")
    if org_id is None:
        return None
    if not isinstance(org_id, int) or isinstance(org_id, bool) or (ctx.job.org_id is not None
                                                                    and org_id != ctx.job.org_id):
        raise Permanent(f"job {ctx.job.id}: org_id {org_id!r} is not this job's organisation", "err_job_org")
    return org_id


def reminders(ctx: Context) -> dict:
    """The organisation's reminders to debtors for today (once per rule, account and month: the outbox's keys)."""
    ctx.progress(0, 1, "step_reminders")
    with ctx.app.app_context(), ctx.app.extensions["balans_write_lock"], session_scope(ctx.app) as db:
        org = db.get(Organisation, ctx.job.org_id)
        if org is None:
            raise Permanent(f"job {ctx.job.id}: organisation {ctx.job.org_id} does not exist", "err_job_org")
        return {"queued": queue_reminders(db, org, kyiv_today())}


def alerts_evaluate(ctx: Context) -> dict:
    """Every organisation's active alert rules judged now (cloud/alerts/engine.py): alerts opened, closed and
    escalated, their messages queued in the outbox in the same transaction."""
    with ctx.app.app_context(), ctx.app.extensions["balans_write_lock"], session_scope(ctx.app) as db:
        return evaluate(db, utcnow())


BACKUP_NAME = re.compile(r"balans-\d{4}-\d{2}-\d{2}\.(sqlite3|dump)")


def backup_dir(app: Flask) -> Path:
    return Path(app.config.get("BACKUP_DIR") or Path(app.instance_path) / "backups")


def backup_today(ctx: Context) -> dict:
    """Today's backup (``balans-YYYY-MM-DD.sqlite3`` or ``.dump`` in BALANS_BACKUP_DIR), then rotation: the
    newest BALANS_BACKUP_KEEP daily files stay, older ones go — only after today's was written."""
    app = ctx.app
    url = app.config["DATABASE_URL"]
    folder = backup_dir(app)
    ctx.progress(0, 1, "step_backup")
    out = folder / f"balans-{kyiv_today():%Y-%m-%d}.{'sqlite3' if url.startswith('sqlite') else 'dump'}"
    try:
        written = backup(url, out)
    except BackupError as exc:
        raise Permanent(str(exc)) from exc
    removed = rotate(folder, int(app.config.get("BACKUP_KEEP") or BACKUP_KEEP))
    return {"file": str(written), "bytes": written.stat().st_size, "removed": [p.name for p in removed]}


def rotate(folder: Path, keep: int) -> list[Path]:
    """Remove all but the newest ``keep`` daily backups (by the date in their names); other files stay."""
    ours = sorted((p for p in folder.iterdir() if BACKUP_NAME.fullmatch(p.name)), key=lambda p: p.name, reverse=True)
    for old in ours[keep:]:
        old.unlink()
    return ours[keep:]


# Monthly partitions: the schema has none (no table is partitioned), so there is no "partitions" kind.
TASKS: dict[str, Task] = {task.kind: task for task in (
    Task("billing.draft", billing_draft, Action.RUN_BILLING),
    Task("billing.issue", billing_issue, Action.ISSUE_INVOICES),
    Task("outbox.send", outbox_send, Action.SEND_MESSAGES, max_attempts=5),
    Task("reminders", reminders, Action.SEND_MESSAGES),
    Task("backup", backup_today, Action.MAINTAIN, max_attempts=3),
    Task("alerts.evaluate", alerts_evaluate, Action.SEND_MESSAGES, max_attempts=1),
)}


def max_attempts(kind: str) -> int:
    task = TASKS.get(kind)
    return task.max_attempts if task else 1
