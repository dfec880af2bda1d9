"""A bank statement uploaded by the accountant (``/payments/statements``) or by a script
(``POST /api/v1/payments/statements``): camt.053 XML or a bank's CSV, imported whole or not at all by the same
service as ``balans cloud import-statement`` (cloud/payments/importer.py), with the outcome on screen and the
past imports listed."""

from __future__ import annotations

from flask import Blueprint, abort, jsonify, redirect, render_template, request, url_for
from sqlalchemy import select

from cloud import db
from cloud.accounts.auth import current_org, current_user, requires
from cloud.api.auth import api_actor, api_blueprint, api_error, api_org_id, api_requires
from cloud.i18n import translate
from cloud.models import Organisation, StatementImport
from cloud.payments.csv_statement import shipped_mappings
from cloud.payments.formats import parse_statement_all
from cloud.payments.importer import import_statement
from cloud.payments.statement import StatementError
from cloud.permissions import Action

bp = Blueprint("statements", __name__, url_prefix="/payments")
api = api_blueprint("statements_api", __name__, "/api/v1/payments")
AUTO = "auto"
SHOWN_IMPORTS = 30


def statement_formats() -> list[str]:
    """What the format select offers: the CLI's ``--format`` values."""
    return ["camt053", *(f"csv:{name}" for name in shipped_mappings())]


class FormatUnknown(ValueError):
    """A CSV file that no shipped mapping reads: the person chooses the bank's format."""


def detect_format(data: bytes, filename: str) -> str:
    """XML is camt.053; a CSV is the first shipped bank mapping that reads the whole file."""
    head = data[:200].lstrip(b"\xef\xbb\xbf \t\r\n")
    if head.startswith(b"<"):
        return "camt053"
    for fmt in statement_formats()[1:]:
        try:
            parse_statement_all(data, filename, fmt)
        except StatementError:
            continue
        return fmt
    raise FormatUnknown(filename)


def upload(org: Organisation, data: bytes, filename: str, fmt: str, actor: str) -> StatementImport:
    """Detect the format when asked, import all or nothing and commit; the import's row with its counts."""
    session = db.session()
    if fmt == AUTO:
        fmt = detect_format(data, filename)
    try:
        with db.write_lock():
            import_statement(session, org, data, filename, fmt, actor)
            row = session.scalar(select(StatementImport).where(StatementImport.org_id == org.id)
                                 .order_by(StatementImport.id.desc()).limit(1))
            session.commit()
    except Exception:
        session.rollback()
        raise
    return row


def past_imports(org_id: int) -> list[StatementImport]:
    return db.session().scalars(select(StatementImport).where(StatementImport.org_id == org_id)
                                .order_by(StatementImport.id.desc()).limit(SHOWN_IMPORTS)).all()


def split(counts: dict) -> list[tuple[str, int]]:
    """The picture's parts: matched, unmatched, already there, reversed."""
    return [(part, int(counts.get(part, 0) or 0)) for part in ("matched", "unmatched", "duplicates", "reversed")]


@bp.route("/statements", methods=["GET", "POST"])
@requires(Action.MANAGE_PAYMENTS)
def statements():
    org = current_org()
    fmt = request.form.get("format", AUTO)
    error = None
    if request.method == "POST":
        file = request.files.get("file")
        data = file.read() if file else b""
        filename = (file.filename if file else "") or "statement"
        if not data:
            error = translate("stmt_err_no_file")
        elif fmt not in (AUTO, *statement_formats()):
            error = translate("stmt_err_format", format=fmt)
        else:
            try:
                row = upload(org, data, filename, fmt, current_user().email)
            except FormatUnknown:
                error = translate("stmt_err_unknown_csv")
            except StatementError as exc:
                error = translate("stmt_err_file", where=exc.where, reason=exc.reason)
            else:
                return redirect(url_for("statements.outcome", import_id=row.id))
    return render_template("payments/statements.html", error=error, fmt=fmt, formats=statement_formats(),
                           imports=past_imports(org.id)), 200 if error is None else 422


@bp.get("/statements/<int:import_id>")
@requires(Action.MANAGE_PAYMENTS)
def outcome(import_id: int):
    org = current_org()
    row = db.session().scalar(select(StatementImport).where(StatementImport.org_id == org.id,
                                                            StatementImport.id == import_id))
    if row is None:
        abort(404)
    counts = row.counts or {}
    parts = split(counts)
    return render_template("payments/statement.html", row=row, counts=counts, parts=parts,
                           whole=sum(n for _, n in parts))


# The JSON API: the body is the file (raw, or multipart field «file»); ?format= as the CLI's --format, or auto.

@api.post("/statements")
@api_requires(Action.MANAGE_PAYMENTS)
def api_statements():
    org = db.session().get(Organisation, api_org_id())
    file = request.files.get("file")
    data = file.read() if file else request.get_data()
    filename = (file.filename if file else "") or request.args.get("filename", "") or "statement"
    fmt = request.args.get("format", "") or request.form.get("format", "") or AUTO
    if not data:
        return api_error(422, "invalid", "send the statement file as the request body", "file")
    if fmt not in (AUTO, *statement_formats()):
        return api_error(422, "invalid", f"unknown format {fmt!r}; known: auto, {', '.join(statement_formats())}",
                         "format")
    try:
        row = upload(org, data, filename, fmt, api_actor())
    except FormatUnknown:
        return api_error(422, "invalid", "no bank's CSV mapping reads this file; send ?format=csv:<mapping>",
                         "format")
    except StatementError as exc:
        return api_error(422, "invalid", str(exc), exc.where)
    return jsonify({"id": row.id, "filename": row.filename, "format": row.format, **(row.counts or {})}), 201


@api.get("/statements")
@api_requires(Action.MANAGE_PAYMENTS)
def api_statement_list():
    return jsonify([{"id": r.id, "filename": r.filename, "format": r.format, "imported_at": r.imported_at.isoformat(),
                     **(r.counts or {})} for r in past_imports(api_org_id())])
