"""The meter register's pages: the list of an organisation's meters (site, line, role and in-service filters, a
search by code or account, pages of 50), one meter's form with its readings and history, a new meter, and a
subscriber meter's replacement. Staff of the organisation only; every form carries a CSRF token; every change
is audited."""

from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from sqlalchemy import select

from cloud import db
from cloud.accounts.auth import current_user, requires
from cloud.i18n import explain, translate
from cloud.models import Line, Meter, Organisation, Site
from cloud.permissions import Action
from cloud.register.meters import (
    METER_FIELDS,
    REPLACE_FIELDS,
    ROLES,
    STATES,
    list_meters,
    meter_history,
    meter_readings,
    meter_texts,
    own_meter,
    replace,
    save_meter,
)
from cloud.register.views import own_org, requires_manage, site_codes

bp = Blueprint("meters", __name__, url_prefix="/register/meters")


def _own_meter(org: Organisation, meter_id: int) -> Meter:
    meter = own_meter(db.session(), org.id, meter_id)
    if meter is None:
        abort(404)
    return meter


def line_numbers(org: Organisation) -> list[str]:
    return sorted(set(db.session().scalars(select(Line.number).where(Line.org_id == org.id))))


@bp.get("")
@requires(Action.VIEW_REGISTER)
def meters():
    org = own_org()
    query, site, line, role, state = (request.args.get(k, "").strip()[:100]
                                      for k in ("q", "site", "line", "role", "state"))
    page = request.args.get("page", "1")
    listing = list_meters(db.session(), org, query, site, line, role if role in ROLES else "",
                          state if state in STATES else "", int(page) if page.isdigit() else 1)
    return render_template("register/meters.html", listing=listing, q=query, site=site, line=line, role=role,
                           state=state, sites=site_codes(org), lines=line_numbers(org), roles=ROLES, states=STATES)


@bp.route("/new", methods=["GET", "POST"])
@requires(Action.MANAGE_REGISTER)
def new_meter():
    return _meter_form(own_org(), None)


@bp.route("/<int:meter_id>", methods=["GET", "POST"])
@requires(Action.VIEW_REGISTER)
def meter(meter_id: int):
    org = own_org()
    return _meter_form(org, _own_meter(org, meter_id))


def _meter_form(org: Organisation, found: Meter | None):
    session = db.session()
    texts, errors = meter_texts(session, found), {}
    if found is None and request.method == "GET" and request.args.get("account"):
        texts["account"] = request.args["account"][:30]
    if request.method == "POST":
        if not requires_manage():
            abort(403)
        texts = {key: request.form.get(key, "") for key in METER_FIELDS}
        with db.write_lock():
            saved, problems = save_meter(session, org, found, texts, current_user().email)
            if problems:
                session.rollback()
            else:
                session.commit()
        if not problems:
            flash(translate("meter_saved", meter=saved.code), "ok")
            return redirect(url_for("meters.meter", meter_id=saved.id))
        errors = {problem.column: explain(problem) for problem in problems}
        if found is not None:
            session.refresh(found)
    readings = meter_readings(session, found) if found is not None else []
    history = meter_history(session, found) if found is not None else []
    site = session.get(Site, found.site_id) if found is not None else None
    return render_template("register/meter.html", meter=found, texts=texts, errors=errors, fields=METER_FIELDS,
                           roles=ROLES, sites=site_codes(org), lines=line_numbers(org), readings=readings,
                           history=history, site=site, can_edit=requires_manage()), 422 if errors else 200


@bp.route("/<int:meter_id>/replace", methods=["GET", "POST"])
@requires(Action.MANAGE_REGISTER)
def replace_page(meter_id: int):
    org = own_org()
    session = db.session()
    old = _own_meter(org, meter_id)
    texts = {key: "" for key in REPLACE_FIELDS} | {"new_profile": old.profile or "", "new_reading": "0"}
    errors = {}
    if request.method == "POST":
        texts = {key: request.form.get(key, "") for key in REPLACE_FIELDS}
        with db.write_lock():
            new, problems = replace(session, org, old, texts, current_user().email)
            if problems:
                session.rollback()
            else:
                session.commit()
        if not problems:
            flash(translate("meter_replaced", old=old.code, new=new.code), "ok")
            return redirect(url_for("meters.meter", meter_id=new.id))
        errors = {problem.column: explain(problem) for problem in problems}
        session.refresh(old)
    return render_template("register/replace.html", meter=old, texts=texts, errors=errors), \
        422 if errors else 200
