"""The month's work of a site (``/sites/<code>/month?period=YYYY-MM``), in the order the office does it:
readings (missing, to be estimated), the draft (queued as a job), the review against last month, issuing
(the accountant, with the password typed again), then printing, e-mail and the payments. The same actions in
the JSON API: ``/api/v1/sites/<code>/month/<period>[/draft|/issue|/email]``."""

from __future__ import annotations

from flask import Blueprint, abort, jsonify, redirect, render_template, request, url_for
from sqlalchemy import select

from cloud import db
from cloud.accounts.auth import current_user, requires
from cloud.api.auth import api_actor, api_blueprint, api_error, api_org_id, api_requires
from cloud.billing.delivery import queue_invoice_emails
from cloud.clock import kyiv_today
from cloud.i18n import explain
from cloud.jobs.queue import active_job, job_json
from cloud.models import BillingRun, Site
from cloud.month.review import (
    MonthError,
    checked_period,
    month_changes,
    previous_period,
    queue_emails,
    queue_month_job,
    readings_status,
)
from cloud.permissions import Action, allowed
from cloud.sites.views import org_site

bp = Blueprint("month", __name__)
api = api_blueprint("month_api", __name__, "/api/v1/sites")
SHOWN_CHANGES = 100


def default_period() -> str:
    """Last month: the one the office bills in the first days of this one."""
    return previous_period(kyiv_today().strftime("%Y-%m"))


def period_of(values) -> str:
    period = (values.get("period") or "").strip() or default_period()
    try:
        return checked_period(period)
    except MonthError as exc:
        abort(422, description=explain(exc))


@bp.get("/month/")
@requires(Action.RUN_BILLING)
def index():
    sites = db.session().scalars(select(Site).where(Site.org_id == current_user().org_id).order_by(Site.code)).all()
    if len(sites) == 1:
        return redirect(url_for("month.month", code=sites[0].code))
    return render_template("month/index.html", sites=sites, period=default_period())


@bp.get("/sites/<code>/month")
@requires(Action.RUN_BILLING)
def month(code: str):
    site = org_site(code)
    period = period_of(request.args)
    session = db.session()
    run = session.scalar(select(BillingRun).where(BillingRun.site_id == site.id, BillingRun.period == period))
    role = current_user().role
    working = {kind: active_job(session, kind, site.org_id, site_id=site.id, period=period)
               for kind in ("billing.draft", "billing.issue")}
    readings = readings_status(session, site, period)
    return render_template(
        "month/month.html", site=site, period=period, previous=previous_period(period), run=run, readings=readings,
        readings_error=explain(readings.error) if readings.error else "",
        changes=month_changes(session, site, period)[:SHOWN_CHANGES],
        working=working, may_issue=allowed(role, Action.ISSUE_INVOICES),
        may_print=allowed(role, Action.PRINT_INVOICES), may_send=allowed(role, Action.SEND_MESSAGES),
        may_pay=allowed(role, Action.MANAGE_PAYMENTS))


def _queue(code: str, kind: str):
    site = org_site(code)
    period = period_of(request.form)
    session = db.session()
    with db.write_lock():
        job = queue_month_job(session, site, period, kind, current_user().email)
        session.commit()
    return redirect(url_for("jobs.job", job_id=job.id))


@bp.post("/sites/<code>/month/draft")
@requires(Action.RUN_BILLING)
def draft(code: str):
    """«Сформувати чернетку»: the draft is made by the worker; the person watches its job."""
    return _queue(code, "billing.draft")


@bp.post("/sites/<code>/month/issue")
@requires(Action.ISSUE_INVOICES)  # sensitive (accounts/reauth.py): the password typed within REAUTH_MINUTES
def issue(code: str):
    return _queue(code, "billing.issue")


@bp.post("/sites/<code>/month/email")
@requires(Action.SEND_MESSAGES)
def email(code: str):
    """Each issued invoice with an address into the outbox (once per invoice), then a job that sends them."""
    site = org_site(code)
    period = period_of(request.form)
    session = db.session()
    with db.write_lock():
        queued = queue_invoice_emails(session, site, period)
        job = queue_emails(session, site, period, current_user().email, queued)
        session.commit()
    return redirect(url_for("jobs.job", job_id=job.id))


# The JSON API.

def api_site(code: str) -> Site:
    site = db.session().scalar(select(Site).where(Site.code == code, Site.org_id == api_org_id()))
    if site is None:
        abort(404, description=f"site {code!r} does not exist")
    return site


def api_period(period: str):
    try:
        return checked_period(period), None
    except MonthError as exc:
        return None, api_error(422, "invalid", explain(exc), "period")


@api.get("/<code>/month/<period>")
@api_requires(Action.RUN_BILLING)
def api_month(code: str, period: str):
    site = api_site(code)
    period, refused = api_period(period)
    if refused:
        return refused
    session = db.session()
    readings = readings_status(session, site, period)
    return jsonify({
        "site": site.code, "period": period,
        "error": explain(readings.error) if readings.error else None,
        "unit": "Gcal" if readings.heat else "kWh",
        "building": None if readings.building is None else {
            "meter": readings.building.meter or None, "read": readings.building.read,
            "gcal": _text(readings.building.gcal)},
        "readings": [{"account": a.number, "meters": a.meters, "state": a.state.removeprefix("reading_"),
                      "kwh": None if a.kwh is None else f"{a.kwh:f}", "estimate_months": a.estimate_months,
                      "unread": a.unread} for a in readings.accounts],
        # A heat site's: per meter billed by its readings, who read them (gateway, office, resident).
        "read_by": readings.read_by(),
        "changes": [{"account": c.number, "kwh": _text(c.kwh), "amount": _text(c.amount),
                     "last_kwh": _text(c.last_kwh), "last_amount": _text(c.last_amount)}
                    for c in month_changes(session, site, period)]})


def _text(value) -> str | None:
    return None if value is None else f"{value:f}"


def _api_queue(code: str, period: str, kind: str):
    site = api_site(code)
    period, refused = api_period(period)
    if refused:
        return refused
    session = db.session()
    with db.write_lock():
        job = queue_month_job(session, site, period, kind, api_actor())
        session.commit()
    return jsonify(job_json(job)), 202


@api.post("/<code>/month/<period>/draft")
@api_requires(Action.RUN_BILLING)
def api_draft(code: str, period: str):
    return _api_queue(code, period, "billing.draft")


@api.post("/<code>/month/<period>/issue")
@api_requires(Action.ISSUE_INVOICES)
def api_issue(code: str, period: str):
    return _api_queue(code, period, "billing.issue")


@api.post("/<code>/month/<period>/email")
@api_requires(Action.SEND_MESSAGES)
def api_email(code: str, period: str):
    site = api_site(code)
    period, refused = api_period(period)
    if refused:
        return refused
    session = db.session()
    with db.write_lock():
        queued = queue_invoice_emails(session, site, period)
        job = queue_emails(session, site, period, api_actor(), queued)
        session.commit()
    return jsonify({**job_json(job), "messages": queued}), 202
