"""Operations pages: events and alarms (filter, acknowledge with a note), gateway health, voltage quality; and
the same as JSON under /api/v1. Any staff member sees them; acknowledging, and the security refusals, are for
those who look after the gateways (``ADMINISTER``: org admin, manager, operator)."""

from __future__ import annotations

from flask import Blueprint, abort, flash, jsonify, redirect, render_template, request, url_for
from sqlalchemy import select

from cloud import db
from cloud.accounts.auth import current_user, requires
from cloud.api.auth import api_actor, api_blueprint, api_error, api_org_id, api_requires, api_token
from cloud.clock import kyiv_today, utcnow
from cloud.i18n import explain, translate
from cloud.models import Gateway, Site
from cloud.operations.events import (
    GROUP_WORDS,
    GROUPS,
    KIND_WORDS,
    STATES,
    EventFilter,
    OperationsError,
    acknowledge,
    list_events,
    open_count,
)
from cloud.operations.health import gateway_health, link_bars, site_gateways
from cloud.operations.voltage import (
    missing_meters,
    newest_voltage_day,
    parse_week,
    site_meters,
    store_voltage_days,
    voltage_report,
)
from cloud.permissions import Action, allowed

bp = Blueprint("operations", __name__)
# The worst points the voltage page lists (a station of 5 000 meters has thousands; ?points=all lists every one).
POINTS_SHOWN = 200
api = api_blueprint("operations_api", __name__, "/api/v1")


@bp.app_context_processor
def _site_links() -> dict:
    """``open_events(site)`` for the site page (site.html): how many of its stored events are still open."""

    def open_events(site: Site) -> int:
        user = current_user()
        if user is None or site.org_id != user.org_id:
            return 0
        return open_count(db.session(), site.org_id, site, _sees_security())

    return {"open_events": open_events}


def kind_word(kind: str) -> str:
    return translate(KIND_WORDS[kind]) if kind in KIND_WORDS else kind


def _site(org_id: int, code: str) -> Site:
    site = db.session().scalar(select(Site).where(Site.org_id == org_id, Site.code == code))
    if site is None:
        abort(404)
    return site


def _sees_security() -> bool:
    return allowed(current_user().role, Action.ADMINISTER)


def _events_page(site: Site | None, error: str | None = None, status: int = 200):
    org_id = current_user().org_id
    try:
        wanted = EventFilter.parse(request.args)
    except OperationsError as exc:
        wanted, error, status = EventFilter(), explain(exc), 422
    rows = list_events(db.session(), org_id, site, wanted, utcnow(), _sees_security())
    sites = db.session().scalars(select(Site).where(Site.org_id == org_id).order_by(Site.code)).all()
    # Each kind's and group's words once, not once a row.
    kind_names = {kind: kind_word(kind) for kind in {row.kind for row in rows}}
    group_names = {group: translate(GROUP_WORDS[group]) for group in GROUPS}
    return render_template("operations/events.html", site=site, rows=rows, wanted=wanted, groups=GROUPS,
                           group_words=GROUP_WORDS, states=STATES, kind_names=kind_names, group_names=group_names,
                           error=error, sites=sites, can_ack=allowed(current_user().role, Action.ADMINISTER)), status


@bp.get("/events")
@requires(Action.VIEW_SITES)
def events():
    return _events_page(None)


@bp.get("/sites/<code>/events")
@requires(Action.VIEW_SITES)
def site_events(code: str):
    return _events_page(_site(current_user().org_id, code))


@bp.post("/events/<int:event_id>/ack")
@requires(Action.ADMINISTER)
def acknowledge_event(event_id: int):
    user = current_user()
    back = request.form.get("next", "")
    if not back.startswith("/") or back.startswith("//"):
        back = url_for("operations.events")
    try:
        with db.write_lock():
            acknowledge(db.session(), user.org_id, event_id, user.email, request.form.get("note", ""), utcnow())
            db.session().commit()
    except OperationsError as exc:
        db.session().rollback()
        if exc.status == 404:
            abort(404)
        return _events_page(None, explain(exc), exc.status)
    flash(translate("event_acknowledged", id=event_id), "ok")
    return redirect(back)


@bp.get("/sites/<code>/gateways")
@requires(Action.VIEW_SITES)
def site_health(code: str):
    site = _site(current_user().org_id, code)
    now = utcnow()
    healths = [gateway_health(db.session(), g, site.code, now) for g in site_gateways(db.session(), site.id)]
    return render_template("operations/health.html", site=site, healths=healths, link_bars=link_bars)


@bp.get("/gateways/<code>/health")
@requires(Action.VIEW_SITES)
def one_gateway(code: str):
    gateway = db.session().scalar(select(Gateway).where(Gateway.code == code,
                                                        Gateway.org_id == current_user().org_id))
    if gateway is None:
        abort(404)
    site = db.session().get(Site, gateway.site_id)
    health = gateway_health(db.session(), gateway, site.code, utcnow())
    return render_template("operations/health.html", site=site, healths=[health], link_bars=link_bars)


def _voltage(site: Site, text: str):
    meters = site_meters(db.session(), site)
    # The newest day is looked for only when no week is asked for: it is where the page opens by default.
    default = kyiv_today() if text else newest_voltage_day(db.session(), [m[0] for m in meters]) or kyiv_today()
    week = parse_week(text, default)
    keep_voltage_days(site.org_id, [m[0] for m in meters], week)
    return voltage_report(db.session(), meters, week, stored=True)  # every day of the week is stored now


def keep_voltage_days(org_id: int, meter_ids: list[int], week) -> None:
    """Store the week's days not summed yet, so the next look reads seven rows per point (voltage.py)."""
    if not missing_meters(db.session(), meter_ids, week):
        return
    with db.write_lock():
        store_voltage_days(db.session(), org_id, meter_ids, week)
        db.session().commit()


@bp.get("/sites/<code>/voltage")
@requires(Action.VIEW_SITES)
def site_voltage(code: str):
    site = _site(current_user().org_id, code)
    shown = None if request.args.get("points") == "all" else POINTS_SHOWN
    try:
        report = _voltage(site, request.args.get("week", "").strip())
    except ValueError:
        report = _voltage(site, "")
        return render_template("operations/voltage.html", site=site, report=report, points_shown=shown,
                               error=translate("err_voltage_week")), 422
    return render_template("operations/voltage.html", site=site, report=report, points_shown=shown, error=None)


# --- the JSON API -------------------------------------------------------------------------------------------

def _api_site(code: str) -> Site | None:
    return db.session().scalar(select(Site).where(Site.org_id == api_org_id(), Site.code == code)) if code else None


@api.get("/events")
@api_requires(Action.VIEW_SITES)
def api_events():
    code = request.args.get("site", "").strip()
    site = _api_site(code)
    if code and site is None:
        return api_error(404, "not_found", f"site {code[:60]!r} does not exist", "site")
    try:
        wanted = EventFilter.parse(request.args)
    except OperationsError as exc:
        return api_error(422, "invalid", str(exc), exc.field)
    rows = list_events(db.session(), api_org_id(), site, wanted, utcnow(), allowed(api_token().role,
                                                                                    Action.ADMINISTER))
    return jsonify({"events": [row.as_json() for row in rows]})


@api.post("/events/<int:event_id>/ack")
@api_requires(Action.ADMINISTER)
def api_acknowledge(event_id: int):
    body = request.get_json(silent=True)
    if body is None:
        body = {}
    if not isinstance(body, dict) or not isinstance(body.get("note", ""), str):
        return api_error(422, "invalid", "note must be a string", "note")
    try:
        with db.write_lock():
            event = acknowledge(db.session(), api_org_id(), event_id, api_actor(), body.get("note", ""), utcnow())
            db.session().commit()
    except OperationsError as exc:
        db.session().rollback()
        return api_error(exc.status, "not_found" if exc.status == 404 else "invalid", str(exc), exc.field)
    return jsonify({"id": event.id, "acknowledged_at": event.acknowledged_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
                    "acknowledged_by": event.acknowledged_by, "note": event.note})


@api.get("/gateways/<code>/health")
@api_requires(Action.VIEW_SITES)
def api_gateway_health(code: str):
    gateway = db.session().scalar(select(Gateway).where(Gateway.code == code, Gateway.org_id == api_org_id()))
    if gateway is None:
        return api_error(404, "not_found", f"gateway {code[:60]!r} does not exist", "code")
    site = db.session().get(Site, gateway.site_id)
    return jsonify(gateway_health(db.session(), gateway, site.code, utcnow()).as_json())


@api.get("/sites/<code>/voltage")
@api_requires(Action.VIEW_SITES)
def api_voltage(code: str):
    site = _api_site(code)
    if site is None:
        return api_error(404, "not_found", f"site {code[:60]!r} does not exist", "site")
    try:
        report = _voltage(site, request.args.get("week", "").strip())
    except ValueError as exc:
        return api_error(422, "invalid", str(exc), "week")
    return jsonify(report.as_json())
