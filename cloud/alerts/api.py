"""The alerts' JSON API: ``GET /api/v1/alerts`` (kind, site, state), ``POST /api/v1/alerts/<id>/ack``, and the
rules ``GET|POST /api/v1/alert-rules``, ``PUT /api/v1/alert-rules/<id>`` (``{"active": false}`` turns one off).
Every query is scoped to the token's organisation."""

from __future__ import annotations

from flask import jsonify, request

from cloud import db
from cloud.alerts.engine import AlertFilter, acknowledge, alert_json, list_alerts, site_codes
from cloud.alerts.rules import AlertError, add_rule, find_rule, list_rules, parse_params, rule_json, set_rule
from cloud.api.auth import api_actor, api_blueprint, api_error, api_org_id, api_requires
from cloud.clock import utcnow
from cloud.models import Organisation
from cloud.permissions import Action

bp = api_blueprint("alerts_api", __name__, "/api/v1")


def _refused(exc: AlertError):
    db.session().rollback()
    return api_error(exc.status, exc.code or "invalid", str(exc), exc.field)


def _body() -> dict:
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise AlertError("send a JSON object", "err_alert_body", "body")
    if "params" in body:
        if not isinstance(body["params"], dict):
            raise AlertError("params must be an object", "err_alert_params", "params")
        body["params"] = parse_params(body["params"])
    return body


@bp.get("/alerts")
@api_requires(Action.VIEW_SITES)
def alerts():
    try:
        wanted = AlertFilter.parse(request.args)
    except AlertError as exc:
        return _refused(exc)
    session = db.session()
    sites = site_codes(session, api_org_id())
    return jsonify({"alerts": [alert_json(a, sites) for a in list_alerts(session, api_org_id(), wanted)]})


@bp.post("/alerts/<int:alert_id>/ack")
@api_requires(Action.ADMINISTER)
def acknowledge_alert(alert_id: int):
    session = db.session()
    try:
        with db.write_lock():
            alert = acknowledge(session, api_org_id(), alert_id, api_actor(), utcnow())
            session.commit()
    except AlertError as exc:
        return _refused(exc)
    return jsonify(alert_json(alert, site_codes(session, api_org_id())))


@bp.get("/alert-rules")
@api_requires(Action.SET_UP)
def rules():
    session = db.session()
    return jsonify({"rules": [rule_json(session, r) for r in list_rules(session, api_org_id())]})


@bp.post("/alert-rules")
@api_requires(Action.SET_UP)
def add():
    session = db.session()
    try:
        with db.write_lock():
            rule = add_rule(session, session.get(Organisation, api_org_id()), _body(), api_actor())
            session.commit()
    except AlertError as exc:
        return _refused(exc)
    return jsonify(rule_json(session, rule)), 201


@bp.put("/alert-rules/<int:rule_id>")
@api_requires(Action.SET_UP)
def change(rule_id: int):
    session = db.session()
    try:
        with db.write_lock():
            body = _body()
            body.pop("kind", None)
            rule = set_rule(session, session.get(Organisation, api_org_id()), find_rule(session, api_org_id(), rule_id),
                            body, api_actor())
            session.commit()
    except AlertError as exc:
        return _refused(exc)
    return jsonify(rule_json(session, rule))
