"""The register's JSON API (``/api/v1/register``): accounts and meters read, created and changed, a meter
replaced, a register file previewed and applied — for 1С, a cooperative's site or a script, with a Bearer token
(cloud/api). The same services as the pages and the CLI, so the same validation; every value is a string
(money and energy are Decimals, never floats), every refusal a 422 ``{"error", "message", "field"}``, every
change audited as ``api:<token name>``. The document is ``openapi.py``, served at ``openapi.json``."""

from __future__ import annotations

import csv

from flask import jsonify, request, url_for
from sqlalchemy import select

from cloud import db
from cloud.api.auth import api_actor, api_blueprint, api_error, api_org_id, api_requires
from cloud.clock import utcnow
from cloud.models import Account, Meter, Organisation, RegisterImport
from cloud.permissions import Action
from cloud.register.fields import NUMBER, FieldError
from cloud.register.importer import ImportRefused, Plan, apply, plan
from cloud.register.meters import (
    ROLES,
    STATES,
    last_readings,
    list_meters,
    meter_texts,
    own_meter,
    replace,
    save_meter,
)
from cloud.register.openapi import OPENAPI
from cloud.register.subscribers import account_meters, account_texts, list_accounts, save_account
from cloud.register.table import TableError, read_table
from shared.calendar import iso_utc

bp = api_blueprint("register_api", __name__, "/api/v1/register")
MAX_FILE = 20 * 1024 * 1024
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


@bp.get("/openapi.json")
def openapi():
    return jsonify(OPENAPI)


def _org() -> Organisation:
    return db.session().get(Organisation, api_org_id())


def _refused(problems: list[FieldError]):
    first = problems[0]
    body = {"error": first.code or "invalid", "message": str(first), "field": first.column,
            "errors": [{"field": p.column, "error": p.code, "message": str(p)} for p in problems]}
    return jsonify(body), 422


def _texts(keys: tuple[str, ...] | None = None):
    """The request's JSON object as field → text, or a 422 naming the field that is not a string."""
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        return None, api_error(422, "invalid_body", "send a JSON object of field → text")
    texts = {}
    for key, value in body.items():
        if isinstance(value, bool):
            value = "так" if value else "ні"
        elif isinstance(value, int):
            value = str(value)
        if not isinstance(value, str):
            return None, api_error(422, "invalid_value", f"{key}: send the value as a string (a decimal as "
                                   f"\"12.50\", never a float)", str(key)[:60])
        texts[str(key)] = value
    return texts, None


def _page() -> int:
    page = request.args.get("page", "1")
    return int(page) if page.isdigit() and len(page) < 7 else 1


def _arg(name: str) -> str:
    return request.args.get(name, "").strip()[:100]


# Accounts.

def account_json(account: Account) -> dict:
    session = db.session()
    meters = account_meters(session, account)
    latest = last_readings(session, [meter.id for meter, _ in meters])
    return {**account_texts(session, account),
            "meters": [meter_json(meter, latest.get(meter.id)) for meter, _ in meters]}


def _own_account(number: str) -> Account | None:
    if not NUMBER.fullmatch(number):
        return None
    return db.session().scalar(select(Account).where(Account.org_id == api_org_id(), Account.number == number))


@bp.get("/accounts")
@api_requires(Action.VIEW_REGISTER)
def accounts():
    query, site, category = _arg("query") or _arg("q"), _arg("site"), _arg("category")
    listing = list_accounts(db.session(), _org(), query, site, category, _page())
    following = url_for(".accounts", query=query or None, site=site or None, category=category or None,
                        page=listing.page + 1) if listing.page < listing.pages else None
    return jsonify({"accounts": [account_json(account) for account, _ in listing.accounts],
                    "total": listing.total, "page": listing.page, "pages": listing.pages, "next": following})


@bp.get("/accounts/<path:number>")
@api_requires(Action.VIEW_REGISTER)
def account(number: str):
    found = _own_account(number)
    if found is None:
        return api_error(404, "not_found", f"account {number[:40]} is not in the register")
    return jsonify(account_json(found))


@bp.put("/accounts/<path:number>")
@api_requires(Action.MANAGE_REGISTER)
def change_account(number: str):
    found = _own_account(number)
    if found is None:
        return api_error(404, "not_found", f"account {number[:40]} is not in the register")
    return _save_account(found)


@bp.post("/accounts")
@api_requires(Action.MANAGE_REGISTER)
def create_account():
    return _save_account(None)


def _applied(save, found):
    """The request's fields applied by ``save`` (the pages' service: its validation), all or nothing:
    (what it saved, None), or (None, the 4xx naming every bad field)."""
    texts, refused = _texts()
    if refused is not None:
        return None, refused
    session = db.session()
    with db.write_lock():
        saved, problems = save(session, _org(), found, texts, api_actor())
        if problems:
            session.rollback()
        else:
            session.commit()
    return (None, _refused(problems)) if problems else (saved, None)


def _saved(save, shown, found):
    """200 with the row ``save`` saved, shown by ``shown`` (201 for a new one), or 422 naming every bad field."""
    saved, refused = _applied(save, found)
    return refused or (jsonify(shown(saved)), 200 if found is not None else 201)


def _save_account(found: Account | None):
    return _saved(save_account, account_json, found)


# Meters.

def meter_json(meter: Meter, latest: tuple | None = None) -> dict:
    texts = meter_texts(db.session(), meter)
    if latest is None:
        latest = last_readings(db.session(), [meter.id]).get(meter.id)
    return {"id": meter.id, **texts,
            "installed_at": iso_utc(meter.installed_at) if meter.installed_at else None,
            "removed_at": iso_utc(meter.removed_at) if meter.removed_at else None,
            "last_reading": {"value": latest[0], "at": iso_utc(latest[1])} if latest else None}


@bp.get("/meters")
@api_requires(Action.VIEW_METERS)
def meters():
    query, site, line, role, state = (_arg(k) for k in ("query", "site", "line", "role", "state"))
    query = query or _arg("q")
    if role and role not in ROLES:
        return api_error(422, "err_meter_role", f"role must be one of {', '.join(ROLES)}", "role")
    if state and state not in STATES:
        return api_error(422, "invalid_state", f"state must be one of {', '.join(STATES)}", "state")
    listing = list_meters(db.session(), _org(), query, site, line, role, state, _page())
    following = url_for(".meters", **{k: v for k, v in (("query", query), ("site", site), ("line", line),
                                                        ("role", role), ("state", state)) if v},
                        page=listing.page + 1) if listing.page < listing.pages else None
    return jsonify({"meters": [meter_json(row.meter, (row.last_value, row.last_at) if row.last_at else None)
                               for row in listing.rows],
                    "total": listing.total, "page": listing.page, "pages": listing.pages, "next": following})


def _meter_or_404(meter_id: int):
    found = own_meter(db.session(), api_org_id(), meter_id)
    return found, None if found is not None else api_error(404, "not_found", f"meter {meter_id} is not in the register")


@bp.get("/meters/<int:meter_id>")
@api_requires(Action.VIEW_METERS)
def meter(meter_id: int):
    found, missing = _meter_or_404(meter_id)
    return missing or jsonify(meter_json(found))


@bp.put("/meters/<int:meter_id>")
@api_requires(Action.MANAGE_REGISTER)
def change_meter(meter_id: int):
    found, missing = _meter_or_404(meter_id)
    return missing or _save_meter(found)


@bp.post("/meters")
@api_requires(Action.MANAGE_REGISTER)
def create_meter():
    return _save_meter(None)


def _save_meter(found: Meter | None):
    return _saved(save_meter, meter_json, found)


@bp.post("/meters/<int:meter_id>/replace")
@api_requires(Action.MANAGE_REGISTER)
def replace_meter(meter_id: int):
    found, missing = _meter_or_404(meter_id)
    if missing:
        return missing
    new, refused = _applied(replace, found)
    if refused:
        return refused
    db.session().refresh(found)
    return jsonify({"old": meter_json(found), "new": meter_json(new)}), 201


# Register files.

def _preview(upload: RegisterImport, found: Plan) -> dict:
    return {"id": upload.id, "status": upload.status, "filename": upload.filename, "ok": found.ok,
            **found.outcome(first_errors=10_000),
            "rows": [{"line": row.line, "number": row.number, "status": row.status,
                      "changes": {key: {"before": before, "after": after}
                                  for key, (before, after) in row.changes.items()},
                      "errors": [{"column": column, "error": error.code, "message": str(error)}
                                 for column, error in row.errors]} for row in found.rows]}


@bp.post("/imports")
@api_requires(Action.MANAGE_REGISTER)
def upload():
    body = request.get_data()
    name = _arg("filename") or ("register.xlsx" if request.mimetype == XLSX or body[:2] == b"PK"
                                else "register.csv")
    if not body:
        return api_error(422, "err_import_empty", "send the CSV or XLSX file as the request body", "file")
    if len(body) > MAX_FILE:
        return api_error(422, "err_import_big", f"at most {MAX_FILE // (1024 * 1024)} MiB", "file")
    try:
        table = read_table(name, body)
    except TableError as exc:
        return api_error(422, exc.code or "err_table_format", str(exc), "file")
    except (csv.Error, ValueError) as exc:
        return api_error(422, "err_table_format", f"the file cannot be read: {exc}", "file")
    session = db.session()
    org = _org()
    with db.write_lock():
        row = RegisterImport(org_id=org.id, actor=api_actor(), filename=name[:200], body=body)
        session.add(row)
        session.commit()
    found = plan(session, org, table, api_actor())
    session.rollback()
    return jsonify(_preview(row, found)), 201


@bp.post("/imports/<int:import_id>/apply")
@api_requires(Action.MANAGE_REGISTER)
def apply_import(import_id: int):
    session = db.session()
    upload_row = session.get(RegisterImport, import_id)
    if upload_row is None or upload_row.org_id != api_org_id():
        return api_error(404, "not_found", f"import {import_id} is not known")
    if upload_row.status == "applied":
        return api_error(422, "import_already", f"import {import_id} is already applied", "id")
    table = read_table(upload_row.filename, upload_row.body)
    with db.write_lock():
        try:
            done = apply(session, _org(), table, api_actor())
        except ImportRefused as exc:
            session.rollback()
            found = plan(session, _org(), table, api_actor())
            session.rollback()
            return jsonify({**_preview(upload_row, found), "error": exc.code, "message": str(exc),
                            "field": "file"}), 422
        upload_row.status, upload_row.applied_at, upload_row.outcome = "applied", utcnow(), done.outcome()
        session.commit()
    return jsonify(_preview(upload_row, done))
