"""The settings over the JSON API (``/api/v1/settings/…``) with a Bearer token whose role may SET_UP: the same
services as the pages, scoped to the token's organisation, audited as ``api:<token name>``. A refused value is
422 ``{"error": "invalid", "message", "field"}``, the message in the request's language (Ukrainian unless
``?lang=en``). Amounts are strings ("0.5"), never floats."""

from __future__ import annotations

import json
from decimal import Decimal

from flask import jsonify, request

from cloud import db
from cloud.api.auth import api_actor, api_blueprint, api_error, api_org_id, api_requires
from cloud.clock import kyiv_today
from cloud.i18n import explain
from cloud.models import Organisation
from cloud.permissions import Action
from cloud.settings.fields import SettingError
from cloud.settings.organisation import organisation_values, update_organisation
from cloud.settings.rules import own_rule, rule_json, rules, save_rule
from cloud.settings.seasons import add_season, end_season, season_json, seasons
from cloud.settings.tariffs import add_tariff, tariff_history, tariff_json

bp = api_blueprint("settings_api", __name__, "/api/v1/settings")
RULE_FIELDS = {"name": "rule_name"}  # the API's name for a form's field


def _org() -> Organisation:
    return db.session().get(Organisation, api_org_id())


def _body() -> dict | None:
    try:
        body = json.loads(request.get_data(as_text=True) or "{}", parse_float=Decimal)
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def _texts(body: dict) -> dict[str, str]:
    """JSON values as the forms' texts: a number as written, true/false as yes/no, a list joined by commas."""
    texts = {}
    for key, value in body.items():
        if isinstance(value, bool):
            texts[key] = "yes" if value else "no"
        elif value is None:
            texts[key] = ""
        elif isinstance(value, list):
            texts[key] = ",".join(str(item) for item in value)
        else:
            texts[key] = str(value)
    return texts


def _bad_body():
    return api_error(400, "bad_request", "send a JSON object")


def _refused(errors: list[SettingError], names: dict[str, str] | None = None):
    db.session().rollback()
    first = errors[0]
    field = {v: k for k, v in (names or {}).items()}.get(first.field, first.field)
    body = {"error": "invalid", "message": explain(first), "field": field,
            "errors": [{"field": {v: k for k, v in (names or {}).items()}.get(e.field, e.field),
                        "message": explain(e)} for e in errors]}
    return jsonify(body), 422


@bp.get("/organisation")
@api_requires(Action.SET_UP)
def get_organisation():
    return jsonify(organisation_values(_org()))


@bp.patch("/organisation")
@api_requires(Action.SET_UP)
def patch_organisation():
    body = _body()
    if body is None:
        return _bad_body()
    org = _org()
    with db.write_lock():
        errors = update_organisation(db.session(), org, _texts(body), api_actor())
        if errors:
            return _refused(errors)
        db.session().commit()
    return jsonify(organisation_values(org))


@bp.get("/tariffs")
@api_requires(Action.SET_UP)
def get_tariffs():
    return jsonify({"today": kyiv_today().isoformat(),
                    "tariffs": [tariff_json(row) for row in tariff_history(db.session(), api_org_id(), kyiv_today())]})


@bp.post("/tariffs")
@api_requires(Action.SET_UP)
def post_tariff():
    body = _body()
    if body is None:
        return _bad_body()
    with db.write_lock():
        tariff, errors = add_tariff(db.session(), _org(), _texts(body), api_actor())
        if errors:
            return _refused(errors)
        db.session().commit()
    row = next(r for r in tariff_history(db.session(), api_org_id(), kyiv_today()) if r.tariff.id == tariff.id)
    return jsonify(tariff_json(row)), 201


@bp.get("/heating-seasons")
@api_requires(Action.SET_UP)
def get_seasons():
    return jsonify({"seasons": [season_json(s) for s in seasons(db.session(), api_org_id())]})


@bp.post("/heating-seasons")
@api_requires(Action.SET_UP)
def post_season():
    body = _body()
    if body is None:
        return _bad_body()
    with db.write_lock():
        season, errors = add_season(db.session(), _org(), _texts(body), api_actor())
        if errors:
            return _refused(errors)
        db.session().commit()
    return jsonify(season_json(season)), 201


@bp.patch("/heating-seasons/<int:season_id>")
@api_requires(Action.SET_UP)
def patch_season(season_id: int):
    body = _body()
    if body is None:
        return _bad_body()
    with db.write_lock():
        season, errors = end_season(db.session(), _org(), season_id, _texts(body).get("ends", ""), api_actor())
        if errors:
            if errors[0].code == "err_set_no_season":
                db.session().rollback()
                return api_error(404, "not_found", f"no heating season {season_id} in this organisation")
            return _refused(errors)
        db.session().commit()
    return jsonify(season_json(season))


@bp.get("/reminder-rules")
@api_requires(Action.SET_UP)
def get_rules():
    return jsonify({"rules": [rule_json(rule) for rule in rules(db.session(), api_org_id())]})


def _rule_texts(body: dict) -> dict[str, str]:
    return {RULE_FIELDS.get(key, key): value for key, value in _texts(body).items()}


@bp.post("/reminder-rules")
@api_requires(Action.SET_UP)
def post_rule():
    body = _body()
    if body is None:
        return _bad_body()
    with db.write_lock():
        rule, errors = save_rule(db.session(), _org(), None, _rule_texts(body), api_actor())
        if errors:
            return _refused(errors, RULE_FIELDS)
        db.session().commit()
    return jsonify(rule_json(rule)), 201


@bp.patch("/reminder-rules/<int:rule_id>")
@api_requires(Action.SET_UP)
def patch_rule(rule_id: int):
    body = _body()
    if body is None:
        return _bad_body()
    org = _org()
    rule = own_rule(db.session(), org, rule_id)
    if rule is None:
        return api_error(404, "not_found", f"no reminder rule {rule_id} in this organisation")
    with db.write_lock():
        rule, errors = save_rule(db.session(), org, rule, _rule_texts(body), api_actor())
        if errors:
            return _refused(errors, RULE_FIELDS)
        db.session().commit()
    return jsonify(rule_json(rule))
