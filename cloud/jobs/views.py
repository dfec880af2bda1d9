"""The jobs' pages: one job with its progress bar (``/jobs/<id>``, polled by static/jobs.js through
``/jobs/<id>.json``; without a script the page refreshes itself), and the organisation's recent jobs. A job is
its organisation's: another's, or the system's own, is 404. The JSON API: ``/api/v1/jobs[/<id>]``."""

from __future__ import annotations

from flask import Blueprint, abort, jsonify, render_template, url_for
from sqlalchemy import select

from cloud import db
from cloud.accounts.auth import current_user, requires
from cloud.api.auth import api_blueprint, api_org_id, api_requires
from cloud.errors import Phrase
from cloud.i18n import explain, translate
from cloud.jobs.queue import job_json
from cloud.jobs.tasks import STEPS
from cloud.models import Job
from cloud.permissions import Action

bp = Blueprint("jobs", __name__, url_prefix="/jobs")
api = api_blueprint("jobs_api", __name__, "/api/v1/jobs")
RECENT = 50


def own_job(job_id: int, org_id: int | None) -> Job:
    job = db.session().get(Job, job_id)
    if job is None or org_id is None or job.org_id != org_id:
        abort(404)
    return job


def message_text(job: Job) -> str:
    """The step now (in the reader's language), or what failed (explained when the error kept its key)."""
    if job.message in STEPS:
        return translate(job.message)
    error = (job.result or {}).get("error") if job.status == "failed" else None
    if error and error.get("code"):
        return explain(Phrase(job.message, error["code"], **error.get("params", {})))
    return job.message


def month_url(job: Job) -> str | None:
    """Where the job's work is seen: the month's page of its site and period."""
    params = job.params or {}
    if params.get("site") and params.get("period"):
        return url_for("month.month", code=params["site"], period=params["period"])
    return None


def page_json(job: Job) -> dict:
    return {**job_json(job), "status_text": translate(f"job_{job.status}"), "message_text": message_text(job),
            "month_url": month_url(job)}


@bp.get("/")
@requires(Action.VIEW_SITES)
def jobs():
    jobs_ = db.session().scalars(select(Job).where(Job.org_id == current_user().org_id)
                                 .order_by(Job.id.desc()).limit(RECENT)).all()
    return render_template("jobs/jobs.html", jobs=jobs_, message_text=message_text)


@bp.get("/<int:job_id>")
@requires(Action.VIEW_SITES)
def job(job_id: int):
    found = own_job(job_id, current_user().org_id)
    return render_template("jobs/job.html", job=found, text=message_text(found), month_url=month_url(found))


@bp.get("/<int:job_id>.json")
@requires(Action.VIEW_SITES)
def job_status(job_id: int):
    response = jsonify(page_json(own_job(job_id, current_user().org_id)))
    response.headers["Cache-Control"] = "no-store"
    return response


@api.get("")
@api_requires(Action.VIEW_SITES)
def api_jobs():
    found = db.session().scalars(select(Job).where(Job.org_id == api_org_id()).order_by(Job.id.desc())
                                 .limit(RECENT)).all()
    return jsonify({"jobs": [job_json(j) for j in found]})


@api.get("/<int:job_id>")
@api_requires(Action.VIEW_SITES)
def api_job(job_id: int):
    return jsonify(job_json(own_job(job_id, api_org_id())))
