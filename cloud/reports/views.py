"""Report pages for the accountant and the board: every report on screen, as CSV and as XLSX (``?format=``),
for a period (``?period=YYYY-MM``), scoped to the user's organisation, Ukrainian unless English is asked for."""

from __future__ import annotations

from flask import Blueprint, abort, g, render_template, request

from cloud import db
from cloud.accounts.auth import current_user, requires
from cloud.clock import kyiv_today
from cloud.downloads import attachment
from cloud.i18n import N_, translate
from cloud.models import Organisation
from cloud.permissions import Action
from cloud.reports.accounting import volume_unit
from cloud.reports.analytics import collection, consumption_dynamics
from cloud.reports.catalogue import REPORT_KINDS, build_report
from cloud.reports.export import FORMATS, export
from shared.calendar import parse_period

bp = Blueprint("reports", __name__, url_prefix="/reports")
FILE_NAMES = {"turnover": "osv", "debtors": "borzhnyky", "payments": "platezhi", "collection": "riven-oplat",
              "consumption": "spozhyvannia", "revenue": "struktura-narakhuvan", "regulator": "zvedennia-nkrekp"}


def _period() -> str:
    period = request.args.get("period") or kyiv_today().strftime("%Y-%m")
    try:
        parse_period(period)
    except ValueError:
        abort(400, description=translate("err_period_format", period=period[:20]))
    return period


def _org() -> Organisation:
    org_id = current_user().org_id
    org = db.session().get(Organisation, org_id) if org_id else None
    if org is None:
        abort(404)
    return org


def _report(kind: str):
    period, org = _period(), _org()
    fmt = request.args.get("format")
    if fmt and fmt not in FORMATS:
        abort(400, description=translate("err_report_format", format=fmt[:20]))
    report = build_report(db.session(), org, kind, period, kyiv_today(), getattr(g, "lang", "uk"))
    if fmt:
        body, mimetype, extension = export(report, fmt)
        return attachment(body, mimetype, FILE_NAMES[kind], period, extension=extension)
    return render_template("report.html", report=report, period=period, kind=kind, kinds=REPORT_KINDS,
                           tab_of=lambda k: translate(TABS[k]))


TITLE_KEYS = {"turnover": N_("turnover"), "debtors": N_("debtors"), "payments": N_("payments_by_day"),
              "collection": N_("collection_rate"), "consumption": N_("consumption_dynamics"),
              "revenue": N_("revenue_structure"), "regulator": N_("regulator_summary")}

# Short names for the row of report links at the top of each page (fits a phone).
TABS = {"turnover": N_("tab_turnover"), "debtors": N_("tab_debtors"), "payments": N_("tab_payments"),
        "collection": N_("tab_collection"), "consumption": N_("tab_consumption"), "revenue": N_("tab_revenue"),
        "regulator": N_("tab_regulator")}


@bp.get("/turnover")
@requires(Action.VIEW_REPORTS)
def turnover():
    return _report("turnover")


@bp.get("/debtors")
@requires(Action.VIEW_REPORTS)
def debtors_page():
    return _report("debtors")


@bp.get("/<kind>")
@requires(Action.VIEW_REPORTS)
def report(kind: str):
    if kind not in REPORT_KINDS:
        abort(404)
    return _report(kind)


@bp.get("/analytics")
@requires(Action.VIEW_REPORTS)
def analytics():
    """The board's overview: the period's collection, consumption at a glance, and every report."""
    period, org = _period(), _org()
    session = db.session()
    consumption = build_report(session, org, "consumption", period, kyiv_today(), g.lang)
    unit = translate(volume_unit(org))  # the consumption's title is in the organisation's unit
    return render_template("report_analytics.html", period=period, collection=collection(session, org.id, period),
                           consumption=consumption, dynamics=consumption_dynamics(session, org.id, until=period),
                           kinds=REPORT_KINDS, title_of=lambda k: translate(TITLE_KEYS[k], unit=unit))
