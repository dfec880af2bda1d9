"""The office's readings on a page (``/sites/<code>/readings?period=YYYY-MM``): the round of the site's meters
at the month's end, an input for each one not yet read, and a CSV of readings uploaded — all or nothing, each
bad value named by its meter or its line. The same in the JSON API (``/api/v1/sites/<code>/readings``) and the
CLI (``enter-reading``, ``import-readings``)."""

from __future__ import annotations

from datetime import datetime

from flask import Blueprint, flash, jsonify, redirect, render_template, request, url_for

from cloud import db
from cloud.accounts.auth import current_user, requires
from cloud.api.auth import api_actor, api_blueprint, api_error, api_requires
from cloud.billing.consumption import ReadingError
from cloud.billing.office_readings import enter_round, reading_round, register_of
from cloud.billing.readings import import_readings
from cloud.i18n import explain, translate
from cloud.models import Organisation, Site
from cloud.month.views import api_site, period_of
from cloud.permissions import Action
from cloud.register.fields import FieldError
from cloud.register.meters import parse_time, time_text
from cloud.register.table import csv_text
from cloud.sites.views import org_site
from shared.calendar import iso_utc, naive_period_bounds

bp = Blueprint("readings", __name__)
api = api_blueprint("readings_api", __name__, "/api/v1/sites")
MAX_FILE = 5 * 1024 * 1024
VALUE = "value-"  # the form's input for a meter: value-<meter code>


def _org(site: Site) -> Organisation:
    return db.session().get(Organisation, site.org_id)


def _moment(site: Site, period: str, typed: str) -> datetime:
    """The round's moment: as typed (Kyiv wall clock), else the period's end (1st of next month 00:00)."""
    return parse_time("at", typed.strip()) or naive_period_bounds(period)[1]


def _page(site: Site, period: str, at: datetime, status: int = 200, errors=None, typed=None, file_error: str = ""):
    unread_only = request.values.get("all") != "1"
    page = request.args.get("page", "1")
    found = reading_round(db.session(), site, at, register_of(_org(site)), unread_only,
                          int(page) if page.isdigit() and len(page) < 6 else 1)
    return render_template("month/readings.html", site=site, period=period, at=time_text(at), round=found,
                           unread_only=unread_only, heat=register_of(_org(site)) == "heat_gcal",
                           errors={code: explain(error) for code, error in (errors or {}).items()},
                           typed=typed or {}, file_error=file_error), status


def _typed() -> dict[str, str]:
    return {key[len(VALUE):]: value for key, value in request.form.items() if key.startswith(VALUE)}


@bp.get("/sites/<code>/readings")
@requires(Action.RUN_BILLING)
def readings(code: str):
    site = org_site(code)
    period = period_of(request.args)
    try:
        at = _moment(site, period, request.args.get("at", ""))
    except FieldError as exc:
        return _page(site, period, naive_period_bounds(period)[1], 422, file_error=explain(exc))
    return _page(site, period, at)


@bp.post("/sites/<code>/readings")
@requires(Action.RUN_BILLING)
def enter(code: str):
    """The round's inputs saved together: with one bad value none is stored, and every bad one is named."""
    site = org_site(code)
    period = period_of(request.form)
    typed = _typed()
    try:
        at = _moment(site, period, request.form.get("at", ""))
    except FieldError as exc:
        return _page(site, period, naive_period_bounds(period)[1], 422, typed=typed, file_error=explain(exc))
    session = db.session()
    with db.write_lock():
        entered, errors = enter_round(session, site, at, typed, current_user().email, register_of(_org(site)))
        if errors:
            session.rollback()
        else:
            session.commit()
    if errors:
        return _page(site, period, at, 422, errors=errors, typed=typed)
    flash(translate("readings_entered", count=entered))
    return redirect(url_for(".readings", code=site.code, period=period, at=time_text(at)))


@bp.post("/sites/<code>/readings/import")
@requires(Action.RUN_BILLING)
def upload(code: str):
    """A CSV of readings (``meter,at,value[,register]``): every line checked, the file stored whole or not."""
    site = org_site(code)
    period = period_of(request.form)
    at = naive_period_bounds(period)[1]
    sent = request.files.get("file")
    body = sent.read(MAX_FILE + 1) if sent else b""
    if not body or len(body) > MAX_FILE:
        return _page(site, period, at, 422, file_error=translate("readings_file_missing"))
    text = csv_text(body)
    session = db.session()
    with db.write_lock():
        try:
            count = import_readings(session, site, text, sent.filename or "readings.csv", current_user().email)
        except ReadingError as exc:
            session.rollback()
            return _page(site, period, at, 422, file_error=explain(exc))
        session.commit()
    flash(translate("readings_imported", count=count))
    return redirect(url_for(".readings", code=site.code, period=period))


# The JSON API.

@api.get("/<code>/readings")
@api_requires(Action.RUN_BILLING)
def api_round(code: str):
    """The round at ``at`` (or the end of ``period``): each meter with its last reading and the one at ``at``."""
    site = api_site(code)
    period = period_of(request.args)
    try:
        at = _moment(site, period, request.args.get("at", ""))
    except FieldError as exc:
        return api_error(422, exc.code or "invalid", str(exc), "at")
    page = request.args.get("page", "1")
    found = reading_round(db.session(), site, at, register_of(_org(site)), request.args.get("all") != "1",
                          int(page) if page.isdigit() and len(page) < 6 else 1)
    return jsonify({"site": site.code, "at": iso_utc(at), "total": found.total, "unread": found.unread,
                    "page": found.page, "pages": found.pages,
                    "meters": [{"meter": row.meter.code, "account": row.account, "last": row.last_value,
                                "last_at": iso_utc(row.last_at) if row.last_at else None, "at_value": row.value_at}
                               for row in found.rows]})


@api.post("/<code>/readings")
@api_requires(Action.RUN_BILLING)
def api_enter(code: str):
    """``{"at": "2026-11-01 00:00", "readings": {"M01001": "15420.5", …}}``: all stored, or 422 naming each meter."""
    site = api_site(code)
    body = request.get_json(silent=True)
    if not isinstance(body, dict) or not isinstance(body.get("readings"), dict) or not body["readings"]:
        return api_error(422, "invalid_body", 'send {"at": "YYYY-MM-DD HH:MM", "readings": {meter: "value"}}',
                         "readings")
    values = body["readings"]
    if not all(isinstance(key, str) and isinstance(value, str) for key, value in values.items()):
        return api_error(422, "invalid_value", "each reading is a meter code and a decimal as a string", "readings")
    if not isinstance(body.get("at"), str):
        return api_error(422, "invalid_value", "at: the moment of the readings, YYYY-MM-DD HH:MM (Kyiv)", "at")
    try:
        at = parse_time("at", body["at"].strip())
    except FieldError as exc:
        return api_error(422, exc.code or "invalid", str(exc), "at")
    if at is None:
        return api_error(422, "invalid_value", "at: the moment of the readings, YYYY-MM-DD HH:MM (Kyiv)", "at")
    session = db.session()
    with db.write_lock():
        entered, errors = enter_round(session, site, at, values, api_actor(), register_of(_org(site)))
        if errors:
            session.rollback()
        else:
            session.commit()
    if errors:
        first = next(iter(errors))
        return jsonify({"error": "invalid_reading", "message": str(errors[first]), "field": f"readings.{first}",
                        "errors": [{"meter": code, "message": str(error)} for code, error in errors.items()]}), 422
    return jsonify({"stored": entered, "at": iso_utc(at)}), 201


@api.post("/<code>/readings.csv")
@api_requires(Action.RUN_BILLING)
def api_import(code: str):
    """A CSV of readings as the body (``meter,at,value[,register]``): stored whole, or 422 naming the line."""
    site = api_site(code)
    body = request.get_data(cache=False)
    if not body or len(body) > MAX_FILE:
        return api_error(422, "invalid_body", "send the CSV (meter,at,value[,register]) as the body, at most 5 MiB")
    text = csv_text(body)
    session = db.session()
    with db.write_lock():
        try:
            count = import_readings(session, site, text, request.args.get("filename", "readings.csv")[:100],
                                    api_actor())
        except ReadingError as exc:
            session.rollback()
            return api_error(422, exc.code or "invalid_reading", str(exc), "body")
        session.commit()
    return jsonify({"stored": count}), 201
