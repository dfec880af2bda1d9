"""``balans cloud worker | schedule | jobs | job | enqueue``: the background worker, what runs when, and the
jobs themselves."""

from __future__ import annotations

import json
import signal
import threading

import click
from flask.cli import with_appcontext
from sqlalchemy import select

from cloud.cli.lookup import app as _app
from cloud.cli.lookup import find_org, find_site, may, performs, site_org_option
from cloud.db import session_scope
from cloud.jobs import queue
from cloud.jobs.schedule import describe
from cloud.jobs.tasks import TASKS
from cloud.jobs.worker import Worker
from cloud.models import Job
from cloud.month.review import MonthError, queue_month_job
from cloud.permissions import Action


@performs(Action.MAINTAIN)
@click.command("worker")
@click.option("--once", is_flag=True, help="run what is due now, then exit (cron, tests)")
@click.option("--concurrency", default=1, show_default=True, type=click.IntRange(1, 16),
              help="jobs run at the same time")
@with_appcontext
def worker(once, concurrency):
    """Run background jobs: billing runs, the outbox, reminders, backups — and tick the schedule.

    Example: balans cloud worker --concurrency 2   (beside gunicorn; see docs/jobs.md)
    """
    running = Worker(_app(), concurrency=concurrency)
    if once:
        click.echo(f"{running.once()} jobs run")
        return
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, lambda *_: running.stop.set())
    click.echo(f"worker {running.name}: {concurrency} at a time; Ctrl-C stops", err=True)
    try:
        running.forever()
    except KeyboardInterrupt:
        running.stop.set()
    click.echo("worker stopped", err=True)


@performs(Action.MAINTAIN)
@click.command("schedule")
@click.option("--json", "as_json", is_flag=True)
@with_appcontext
def schedule_cmd(as_json):
    """What the worker queues when (Kyiv time), and the next time of each.

    Example: balans cloud schedule
    """
    rows = describe()
    if as_json:
        click.echo(json.dumps(rows, ensure_ascii=False, indent=2))
        return
    for row in rows:
        click.echo(f"{row['kind']:<12} {row['when']:<58} next {row['next']}")
    click.echo("(monthly partitions: none — no table of the schema is partitioned)")


@performs(Action.VIEW_SITES)
@click.command("jobs")
@click.option("--org", "org_ref", default="", help="organisation id or exact name (default: all)")
@click.option("--limit", default=20, show_default=True)
@click.option("--json", "as_json", is_flag=True)
@with_appcontext
def jobs_cmd(org_ref, limit, as_json):
    """The newest jobs: kind, status, progress, message.

    Example: balans cloud jobs --org 1 --limit 5
    """
    with session_scope(_app()) as db:
        query = select(Job).order_by(Job.id.desc()).limit(limit)
        if org_ref:
            query = query.where(Job.org_id == find_org(db, org_ref).id)
        found = [queue.job_json(job) for job in db.scalars(query)]
    if as_json:
        click.echo(json.dumps(found, ensure_ascii=False, indent=2))
        return
    for job in found:
        click.echo(f"{job['id']:>6} {job['kind']:<14} {job['status']:<8} {job['done']}/{job['total']} "
                   f"{job['params'].get('site', '')} {job['params'].get('period', '')} {job['message']}".rstrip())


@performs(Action.VIEW_SITES)
@click.command("job")
@click.argument("job_id", type=int)
@with_appcontext
def job_cmd(job_id):
    """One job as JSON.  Example: balans cloud job 17"""
    with session_scope(_app()) as db:
        found = db.get(Job, job_id)
        if found is None:
            raise click.ClickException(f"job {job_id} does not exist")
        click.echo(json.dumps(queue.job_json(found), ensure_ascii=False, indent=2))


@performs(Action.RUN_BILLING)
@click.command("enqueue")
@click.argument("kind", type=click.Choice(["billing.draft", "billing.issue"]))
@click.option("--site", "site_code", required=True)
@click.option("--period", required=True, help="YYYY-MM")
@site_org_option
@with_appcontext
def enqueue_cmd(kind, site_code, period, org_ref):
    """Queue a site's draft or issue of a month for the worker (the page's buttons do the same).

    Example: balans cloud enqueue billing.draft --site TP-118 --period 2026-11 && balans cloud worker --once
    """
    may("enqueue", TASKS[kind].action)
    with session_scope(_app()) as db:
        try:
            job = queue_month_job(db, find_site(db, site_code, org_ref), period, kind, "cli")
        except MonthError as exc:
            raise click.ClickException(f"--period: {exc}") from exc
        click.echo(f"job {job.id} {job.kind} {job.status}")


COMMANDS = [worker, schedule_cmd, jobs_cmd, job_cmd, enqueue_cmd]
