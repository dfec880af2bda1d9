"""Organisation admin pages: gateways (status, gaps, refusals; enrolment tokens issued and cancelled, a gateway
revoked), API tokens, and the audit log (view and CSV export); the same changes as JSON under /api/v1."""

from __future__ import annotations

import csv
import io
import json

from flask import Blueprint, Response, abort, current_app, flash, redirect, render_template, request, url_for
from sqlalchemy import select

from cloud import db
from cloud.accounts.auth import current_user, requires
from cloud.admin.tokens import (
    ENROL_HOURS,
    cancel_token,
    find_enrolment_token,
    provision_command,
    unused_tokens,
)
from cloud.api.auth import api_actor, api_blueprint, api_error, api_org_id, api_requires
from cloud.api.tokens import TOKEN_ROLES, TokenError, make_token, org_tokens, revoke_token
from cloud.i18n import translate
from cloud.ingest.chain import missing_ranges
from cloud.ingest.enrolment import issue_token
from cloud.ingest.gateways import revoke
from cloud.models import ApiToken, AuditLog, Event, Gateway, Organisation, Site
from cloud.permissions import Action, allowed
from shared.spreadsheet_cells import neutralise

bp = Blueprint("admin", __name__, url_prefix="/admin")
api = api_blueprint("admin_api", __name__, "/api/v1")


def _public_url() -> str:
    return current_app.config.get("PUBLIC_URL") or request.host_url


@bp.get("/gateways")
@requires(Action.ADMINISTER)
def gateways():
    return _gateways_page()


def _gateways_page(issued: dict | None = None, error: str | None = None, status: int = 200):
    org_id = current_user().org_id
    session = db.session()
    rows = session.execute(
        select(Gateway, Site.code).join(Site, Site.id == Gateway.site_id).where(Gateway.org_id == org_id)
        .order_by(Gateway.code)
    ).all()
    refusals = session.scalars(
        select(Event).where(Event.org_id == org_id, Event.kind.like("security:%")).order_by(Event.ts.desc()).limit(50)
    ).all()
    sites = session.scalars(select(Site).where(Site.org_id == org_id).order_by(Site.code)).all()
    return render_template("admin_gateways.html",
                           gateways=[(g, site, missing_ranges(session, g)) for g, site in rows],
                           refusals=refusals, sites=sites, hours=ENROL_HOURS, issued=issued, error=error,
                           tokens=unused_tokens(session, org_id) if org_id else [],
                           can_manage=allowed(current_user().role, Action.MANAGE_GATEWAYS)), status


def _own_site(code: str) -> Site | None:
    return db.session().scalar(select(Site).where(Site.org_id == current_user().org_id, Site.code == code))


@bp.post("/enrolment-tokens")
@requires(Action.MANAGE_GATEWAYS)
def issue_enrolment_token():
    site = _own_site(request.form.get("site", ""))
    hours = request.form.get("hours", "72")
    if site is None:
        return _gateways_page(error=translate("err_enrol_site"), status=422)
    if not hours.isdigit() or int(hours) not in ENROL_HOURS:
        return _gateways_page(error=translate("err_enrol_hours"), status=422)
    with db.write_lock():
        token = issue_token(db.session(), site, int(hours), current_user().email)
        db.session().commit()
    # Shown on this answer only, never stored: a reload shows the list without it.
    return _gateways_page(issued={"site": site.code, "token": token, "hours": int(hours),
                                  "command": provision_command(token, _public_url())})


@bp.post("/enrolment-tokens/<int:token_id>/cancel")
@requires(Action.MANAGE_GATEWAYS)
def cancel_enrolment_token(token_id: int):
    row = find_enrolment_token(db.session(), current_user().org_id, token_id)
    if row is None:
        abort(404)
    with db.write_lock():
        cancel_token(db.session(), row, current_user().email)
        db.session().commit()
    flash(translate("enrol_token_cancelled"), "ok")
    return redirect(url_for("admin.gateways"))


def _own_gateway(gateway_id: int) -> Gateway:
    gateway = db.session().get(Gateway, gateway_id)
    if gateway is None or gateway.org_id != current_user().org_id:
        abort(404)
    return gateway


@bp.post("/gateways/<int:gateway_id>/revoke")
@requires(Action.MANAGE_GATEWAYS)
def revoke_gateway(gateway_id: int):
    """Two steps: the button on the list posts here without ``confirm`` and gets the page saying what revoking
    means; that page's form posts again with it, and revokes."""
    gateway = _own_gateway(gateway_id)
    if request.form.get("confirm") != gateway.code:
        return render_template("admin/revoke_gateway.html", gateway=gateway)
    if gateway.status != "revoked":
        with db.write_lock():
            revoke(db.session(), gateway, current_user().email, request.form.get("reason", "").strip()[:200])
            db.session().commit()
    flash(translate("gateway_revoked", gateway=gateway.code), "ok")
    return redirect(url_for("admin.gateways"))


def _tokens_page(made: dict | None = None, error: str | None = None, form: dict | None = None, status: int = 200):
    return render_template("admin/api_tokens.html", tokens=org_tokens(db.session(), current_user().org_id),
                           roles=TOKEN_ROLES, made=made, error=error, form=form or {}), status


@bp.get("/api-tokens")
@requires(Action.SET_UP)
def api_tokens():
    if current_user().org_id is None:
        abort(404)
    return _tokens_page()


@bp.post("/api-tokens")
@requires(Action.SET_UP)
def make_api_token():
    org = db.session().get(Organisation, current_user().org_id or 0)
    if org is None:
        abort(404)
    form = {key: request.form.get(key, "") for key in ("name", "role")}
    with db.write_lock():
        try:
            row, token = make_token(db.session(), org, form["name"], form["role"], current_user().email)
        except TokenError:
            db.session().rollback()
            bad_name = not form["name"].strip() or len(form["name"].strip()) > 100
            error = translate("err_api_token_name") if bad_name else translate("err_api_token_role")
            return _tokens_page(error=error, form=form, status=422)
        db.session().commit()
    return _tokens_page(made={"name": row.name, "role": row.role, "token": token})


@bp.post("/api-tokens/<int:token_id>/revoke")
@requires(Action.SET_UP)
def revoke_api_token(token_id: int):
    row = db.session().get(ApiToken, token_id)
    if row is None or row.org_id != current_user().org_id:
        abort(404)
    with db.write_lock():
        revoke_token(db.session(), row, current_user().email)
        db.session().commit()
    flash(translate("api_token_revoked", name=row.name), "ok")
    return redirect(url_for("admin.api_tokens"))


def _audit_rows(limit: int | None = None):
    query = select(AuditLog).where(AuditLog.org_id == current_user().org_id).order_by(AuditLog.id.desc())
    if limit:
        query = query.limit(limit)
    return db.session().scalars(query).all()


@bp.get("/audit")
@requires(Action.ADMINISTER)
def audit():
    return render_template("admin_audit.html", entries=_audit_rows(500))


@bp.get("/audit.csv")
@requires(Action.ADMINISTER)
def audit_csv():
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["id", "at_utc", "actor", "action", "entity", "before", "after"])
    for entry in reversed(_audit_rows()):
        writer.writerow([neutralise(value) for value in (  # an actor or entity "=HYPERLINK(…)" stays text
            entry.id, entry.at.isoformat(timespec="seconds"), entry.actor, entry.action, entry.entity,
            json.dumps(entry.before, ensure_ascii=False) if entry.before is not None else "",
            json.dumps(entry.after, ensure_ascii=False) if entry.after is not None else "")])
    return Response("\ufeff" + buffer.getvalue(), mimetype="text/csv",
                    headers={"Content-Disposition": "attachment; filename=audit.csv"})


# The JSON API: the same changes for a script.

def _iso(value) -> str | None:
    return value.isoformat() + "Z" if value is not None else None


@api.get("/enrolment-tokens")
@api_requires(Action.MANAGE_GATEWAYS)
def api_enrolment_tokens():
    return {"tokens": [{"id": row.id, "site": site, "expires_at": _iso(row.expires_at)}
                       for row, site in unused_tokens(db.session(), api_org_id())]}


@api.post("/enrolment-tokens")
@api_requires(Action.MANAGE_GATEWAYS)
def api_issue_enrolment_token():
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        return api_error(400, "bad_request", "send a JSON object {site, hours?}")
    site = db.session().scalar(select(Site).where(Site.org_id == api_org_id(), Site.code == str(body.get("site"))))
    if site is None:
        return api_error(422, "invalid", f"no site {body.get('site')!r} in this organisation", "site")
    hours = body.get("hours", 72)
    if hours not in ENROL_HOURS:
        return api_error(422, "invalid", f"hours must be one of {', '.join(map(str, ENROL_HOURS))}", "hours")
    with db.write_lock():
        token = issue_token(db.session(), site, hours, api_actor())
        db.session().commit()
    return {"site": site.code, "token": token, "hours": hours,
            "command": provision_command(token, _public_url())}, 201


@api.delete("/enrolment-tokens/<int:token_id>")
@api_requires(Action.MANAGE_GATEWAYS)
def api_cancel_enrolment_token(token_id: int):
    row = find_enrolment_token(db.session(), api_org_id(), token_id)
    if row is None:
        return api_error(404, "not_found", f"no enrolment token {token_id} in this organisation")
    with db.write_lock():
        cancel_token(db.session(), row, api_actor())
        db.session().commit()
    return {"id": row.id, "cancelled": True}


@api.post("/gateways/<code>/revoke")
@api_requires(Action.MANAGE_GATEWAYS)
def api_revoke_gateway(code: str):
    gateway = db.session().scalar(select(Gateway).where(Gateway.org_id == api_org_id(), Gateway.code == code))
    if gateway is None:
        return api_error(404, "not_found", f"no gateway {code!r} in this organisation")
    body = request.get_json(silent=True) or {}
    with db.write_lock():
        if gateway.status != "revoked":
            revoke(db.session(), gateway, api_actor(), str(body.get("reason", ""))[:200] if isinstance(body, dict)
                   else "")
        db.session().commit()
    return {"gateway": gateway.code, "status": gateway.status}


def _token_json(row: ApiToken) -> dict:
    return {"id": row.id, "name": row.name, "role": row.role, "created_at": _iso(row.created_at),
            "last_used_at": _iso(row.last_used_at), "revoked_at": _iso(row.revoked_at)}


@api.get("/api-tokens")
@api_requires(Action.SET_UP)
def api_list_tokens():
    return {"tokens": [_token_json(row) for row in org_tokens(db.session(), api_org_id())]}


@api.post("/api-tokens")
@api_requires(Action.SET_UP)
def api_make_token():
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        return api_error(400, "bad_request", "send a JSON object {name, role}")
    org = db.session().get(Organisation, api_org_id())
    with db.write_lock():
        try:
            row, token = make_token(db.session(), org, str(body.get("name", "")), str(body.get("role", "")),
                                    api_actor())
        except TokenError as exc:
            db.session().rollback()
            return api_error(422, "invalid", str(exc), "name" if str(exc).startswith("name") else "role")
        db.session().commit()
    return {**_token_json(row), "token": token}, 201


@api.delete("/api-tokens/<int:token_id>")
@api_requires(Action.SET_UP)
def api_revoke_token(token_id: int):
    row = db.session().get(ApiToken, token_id)
    if row is None or row.org_id != api_org_id():
        return api_error(404, "not_found", f"no API token {token_id} in this organisation")
    with db.write_lock():
        revoke_token(db.session(), row, api_actor())
        db.session().commit()
    return _token_json(row)
