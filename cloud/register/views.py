"""The register's pages: the list of accounts (search, site and category filters, pages of 50), one account's
form with its meters, the export (CSV, XLSX) and the import — upload, a preview of every row's fate, then apply
all or nothing. Staff of the organisation only; every form carries a CSRF token; every change is audited."""

from __future__ import annotations

from flask import Blueprint, abort, flash, g, redirect, render_template, request, url_for
from sqlalchemy import select

from cloud import db
from cloud.accounts.auth import current_org, current_user, requires
from cloud.clock import kyiv_today, utcnow
from cloud.downloads import attachment
from cloud.i18n import explain, translate
from cloud.models import Account, Organisation, RegisterImport, Site
from cloud.permissions import Action, allowed
from cloud.register.export import register_rows, to_csv, to_xlsx
from cloud.register.fields import ACCOUNT_KEYS, BY_KEY
from cloud.register.importer import ImportRefused, apply, plan
from cloud.register.meters import account_meter_history
from cloud.register.subscribers import account_meters, account_texts, list_accounts, save_account
from cloud.register.table import TableError, read_table

bp = Blueprint("register", __name__, url_prefix="/register")
FORM_KEYS = ("number", "site", *ACCOUNT_KEYS)
MAX_FILE = 20 * 1024 * 1024
SHOWN_ROWS = 200  # a preview lists the first rows of each fate; the counts cover them all


own_org = current_org


def own_account(org: Organisation, account_id: int) -> Account:
    account = db.session().get(Account, account_id)
    if account is None or account.org_id != org.id:
        abort(404)
    return account


def site_codes(org: Organisation) -> list[str]:
    return list(db.session().scalars(select(Site.code).where(Site.org_id == org.id).order_by(Site.code)))


@bp.get("/")
@requires(Action.VIEW_REGISTER)
def accounts():
    org = own_org()
    query, site, category = (request.args.get(k, "").strip()[:100] for k in ("q", "site", "category"))
    page = request.args.get("page", "1")
    listing = list_accounts(db.session(), org, query, site, category, int(page) if page.isdigit() else 1)
    return render_template("register/accounts.html", listing=listing, q=query, site=site, category=category,
                           sites=site_codes(org))


@bp.route("/new", methods=["GET", "POST"])
@requires(Action.MANAGE_REGISTER)
def new_account():
    return _account_form(own_org(), None)


@bp.route("/accounts/<int:account_id>", methods=["GET", "POST"])
@requires(Action.VIEW_REGISTER)
def account(account_id: int):
    org = own_org()
    return _account_form(org, own_account(org, account_id))


def _account_form(org: Organisation, found: Account | None):
    session = db.session()
    texts, errors = account_texts(session, found), {}
    if request.method == "POST":
        if not requires_manage():
            abort(403)
        texts = {key: request.form.get(key, "") for key in FORM_KEYS}
        if "reminders_opt_out" not in request.form:
            texts["reminders_opt_out"] = "ні"  # an unticked box sends nothing
        with db.write_lock():
            saved, problems = save_account(session, org, found, texts, current_user().email)
            if problems:
                session.rollback()
            else:
                session.commit()
        if not problems:
            flash(translate("account_saved", account=saved.number), "ok")
            return redirect(url_for("register.account", account_id=saved.id))
        errors = {problem.column: explain(problem) for problem in problems}
    meters = account_meters(session, found) if found is not None else []
    replacements = account_meter_history(session, found) if found is not None else {}
    fields = [BY_KEY[key] for key in FORM_KEYS]
    return render_template("register/account.html", account=found, texts=texts, errors=errors, fields=fields,
                           meters=meters, replacements=replacements, sites=site_codes(org), can_edit=requires_manage()), 422 if errors else 200


def requires_manage() -> bool:
    return allowed(current_user().role, Action.MANAGE_REGISTER)


@bp.get("/export.<kind>")
@requires(Action.VIEW_REGISTER)
def export(kind: str):
    if kind not in ("csv", "xlsx"):
        abort(404)
    org = own_org()
    site = request.args.get("site", "")
    site_id = db.session().scalar(select(Site.id).where(Site.org_id == org.id, Site.code == site)) if site else None
    rows = register_rows(db.session(), org, site_id)
    if kind == "csv":
        return attachment(to_csv(rows), "text/csv", "reiestr", site, kyiv_today(), extension="csv")
    return attachment(to_xlsx(rows), "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                      "reiestr", site, kyiv_today(), extension="xlsx")


@bp.route("/import", methods=["GET", "POST"])
@requires(Action.MANAGE_REGISTER)
def upload():
    org = own_org()
    if request.method == "GET":
        return render_template("register/import.html", error=None, recent=_recent_imports(org))
    sent = request.files.get("file")
    body = sent.read(MAX_FILE + 1) if sent is not None else b""
    error = None
    if not body:
        error = translate("err_import_empty")
    elif len(body) > MAX_FILE:
        error = translate("err_import_big", limit=MAX_FILE // (1024 * 1024))
    else:
        try:
            read_table(sent.filename or "", body)
        except TableError as exc:
            error = explain(exc)
    if error is not None:
        return render_template("register/import.html", error=error, recent=_recent_imports(org)), 422
    with db.write_lock():
        upload = RegisterImport(org_id=org.id, actor=current_user().email, filename=(sent.filename or "")[:200],
                                body=body)
        db.session().add(upload)
        db.session().commit()
    return redirect(url_for("register.preview", import_id=upload.id))


@bp.get("/import/<int:import_id>")
@requires(Action.MANAGE_REGISTER)
def preview(import_id: int):
    org = own_org()
    upload = _own_import(org, import_id)
    table = read_table(upload.filename, upload.body)
    found = plan(db.session(), org, table, current_user().email)
    shown = {status: [row for row in found.rows if row.status == status][:SHOWN_ROWS]
             for status in ("error", "new", "changed")}
    return render_template("register/preview.html", upload=upload, plan=found, counts=found.counts(), shown=shown,
                           explain=explain, shown_limit=SHOWN_ROWS, change_label=change_label,
                           change_value=change_value)


def field_label(key: str) -> str:
    field = BY_KEY.get(key)
    if field is None:
        return key
    return field.en if g.get("lang") == "en" else field.uk


def change_label(key: str) -> str:
    """A plan's change key in the page's words: «holder» → «ПІБ», «meter M01 line» → «Лічильник M01 · Лінія»."""
    if key.startswith("meter "):
        _, code, *rest = key.split(" ")
        return " · ".join([f"{field_label('meter')} {code}", *(field_label(part) for part in rest)])
    return field_label(key)


def change_value(key: str, value: str) -> str:
    if key.startswith("meter ") and key.count(" ") == 1 and value == "new":
        return translate("meter_added")
    return value


@bp.post("/import/<int:import_id>/apply")
@requires(Action.MANAGE_REGISTER)
def apply_import(import_id: int):
    org = own_org()
    session = db.session()
    upload = _own_import(org, import_id)
    if upload.status == "applied":
        flash(translate("import_already"), "problem")
        return redirect(url_for("register.preview", import_id=upload.id))
    table = read_table(upload.filename, upload.body)
    with db.write_lock():
        try:
            done = apply(session, org, table, current_user().email)
        except ImportRefused as exc:
            session.rollback()
            flash(explain(exc), "problem")
            return redirect(url_for("register.preview", import_id=upload.id))
        upload.status, upload.applied_at, upload.outcome = "applied", utcnow(), done.outcome()
        session.commit()
    counts = done.counts()
    flash(translate("import_applied", new=counts["new"], changed=counts["changed"],
                    unchanged=counts["unchanged"]), "ok")
    return redirect(url_for("register.accounts"))


def _own_import(org: Organisation, import_id: int) -> RegisterImport:
    upload = db.session().get(RegisterImport, import_id)
    if upload is None or upload.org_id != org.id:
        abort(404)
    return upload


def _recent_imports(org: Organisation) -> list[RegisterImport]:
    return list(db.session().scalars(select(RegisterImport).where(RegisterImport.org_id == org.id)
                                     .order_by(RegisterImport.id.desc()).limit(10)))

