"""The alerts pages: open and recent alerts (filter by kind and site; acknowledged by those who look after the
gateways, ``ADMINISTER``), the organisation's rules (``SET_UP``: sensitive, the password typed again), and the
page where a person takes a one-time code to link their Telegram chat."""

from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from sqlalchemy import select

from cloud import db
from cloud.accounts.auth import current_org, current_user, requires
from cloud.alerts.engine import AlertFilter, acknowledge, list_alerts, site_codes
from cloud.alerts.rules import (
    CHANNELS,
    KIND_WORDS,
    KINDS,
    PARAM_WORDS,
    AlertError,
    add_rule,
    find_rule,
    list_rules,
    parse_params,
    rule_json,
    set_rule,
)
from cloud.alerts.telegram import link_code, link_of
from cloud.clock import utcnow
from cloud.i18n import explain, translate
from cloud.models import Site
from cloud.permissions import STAFF, Action, allowed

bp = Blueprint("alerts", __name__, url_prefix="/alerts")


def _sites(org_id: int) -> list[Site]:
    return list(db.session().scalars(select(Site).where(Site.org_id == org_id).order_by(Site.code)))


def _alerts_page(error: str | None = None, status: int = 200):
    org_id = current_user().org_id
    try:
        wanted = AlertFilter.parse(request.args)
    except AlertError as exc:
        wanted, error, status = AlertFilter(), explain(exc), 422
    session = db.session()
    return render_template("alerts/alerts.html", alerts=list_alerts(session, org_id, wanted), wanted=wanted,
                           kinds=KIND_WORDS, sites=_sites(org_id), codes=site_codes(session, org_id), error=error,
                           can_ack=allowed(current_user().role, Action.ADMINISTER),
                           can_set_up=allowed(current_user().role, Action.SET_UP)), status


@bp.get("/")
@requires(Action.VIEW_SITES)
def alerts():
    return _alerts_page()


@bp.post("/<int:alert_id>/ack")
@requires(Action.ADMINISTER)
def acknowledge_alert(alert_id: int):
    user = current_user()
    try:
        with db.write_lock():
            acknowledge(db.session(), user.org_id, alert_id, user.email, utcnow())
            db.session().commit()
    except AlertError as exc:
        db.session().rollback()
        if exc.status == 404:
            abort(404)
        return _alerts_page(explain(exc), exc.status)
    flash(translate("alert_acknowledged", id=alert_id), "ok")
    return redirect(url_for("alerts.alerts"))


def _rules_page(form: dict | None = None, error: str | None = None, status: int = 200):
    org = current_org()
    session = db.session()
    return render_template("alerts/rules.html", rules=[rule_json(session, r) for r in list_rules(session, org.id)],
                           kinds=KINDS, kind_words=KIND_WORDS, param_words=PARAM_WORDS, channels=CHANNELS,
                           roles=sorted(STAFF), sites=_sites(org.id), form=form or {}, error=error), status


def _given(form) -> dict:
    return {"kind": form.get("kind", ""), "name": form.get("name", ""), "site": form.get("site", ""),
            "params": parse_params(form.get("params", "")), "users": form.get("users", ""),
            "roles": form.getlist("roles"), "channels": form.getlist("channels"),
            "escalate_minutes": form.get("escalate_minutes", "0")}


@bp.route("/rules", methods=["GET", "POST"])
@requires(Action.SET_UP)
def rules():
    if request.method == "GET":
        return _rules_page()
    user, org = current_user(), current_org()
    try:
        with db.write_lock():
            rule = add_rule(db.session(), org, _given(request.form), user.email)
            db.session().commit()
    except AlertError as exc:
        db.session().rollback()
        return _rules_page(request.form, explain(exc), exc.status)
    flash(translate("alert_rule_added", id=rule.id), "ok")
    return redirect(url_for("alerts.rules"))


@bp.post("/rules/<int:rule_id>")
@requires(Action.SET_UP)
def change_rule(rule_id: int):
    user, org = current_user(), current_org()
    form = request.form
    if "active" in form:
        given = {"active": form["active"]}
    else:
        given = {key: value for key, value in _given(form).items() if key not in ("kind", "site")}
    try:
        with db.write_lock():
            set_rule(db.session(), org, find_rule(db.session(), org.id, rule_id), given, user.email)
            db.session().commit()
    except AlertError as exc:
        db.session().rollback()
        if exc.status == 404:
            abort(404)
        return _rules_page(None, explain(exc), exc.status)
    flash(translate("alert_rule_saved", id=rule_id), "ok")
    return redirect(url_for("alerts.rules"))


def _telegram_page():
    user = current_user()
    code = None
    if request.method == "POST":
        with db.write_lock():
            code = link_code(db.session(), user, utcnow())
            db.session().commit()
    return render_template("alerts/telegram.html", link=link_of(db.session(), user), code=code)


@bp.route("/telegram", methods=["GET", "POST"])
@requires(Action.VIEW_SITES)
def telegram():
    """A staff member's link to the bot (alerts and /balance, /voltage)."""
    return _telegram_page()


@bp.route("/telegram/resident", methods=["GET", "POST"])
@requires(Action.USE_CABINET)
def telegram_resident():
    """A resident's link to the bot (/bill, reminders)."""
    return _telegram_page()
