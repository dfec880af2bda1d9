"""Report pages for the accountant and the board: on screen, CSV and XLSX, scoped to the user's organisation."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from flask import Blueprint, Response, abort, render_template, request

from cloud import db
from cloud.auth import current_user, login_required
from cloud.models import Organisation
from cloud.payments.allocation import BUCKETS
from cloud.reports import debtors, debtors_csv, turnover_csv, turnover_sheet, turnover_xlsx

bp = Blueprint("reports", __name__, url_prefix="/reports")
ROLES = ("org_admin", "manager", "accountant", "clerk", "operator")


def _period() -> str:
    period = request.args.get("period") or date.today().strftime("%Y-%m")
    if len(period) != 7 or period[4] != "-" or not (period[:4] + period[5:]).isdigit():
        abort(400)
    return period


@bp.get("/turnover")
@login_required(*ROLES)
def turnover():
    period = _period()
    sheet = turnover_sheet(db.session(), current_user().org_id, period)
    fmt = request.args.get("format")
    if fmt == "csv":
        return Response(turnover_csv(sheet), mimetype="text/csv",
                        headers={"Content-Disposition": f"attachment; filename=osv-{period}.csv"})
    if fmt == "xlsx":
        org = db.session().get(Organisation, current_user().org_id)
        return Response(turnover_xlsx(sheet, org.name),
                        mimetype="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                        headers={"Content-Disposition": f"attachment; filename=osv-{period}.xlsx"})
    return render_template("report_turnover.html", sheet=sheet, period=period)


@bp.get("/debtors")
@login_required(*ROLES)
def debtors_page():
    found = debtors(db.session(), current_user().org_id, date.today())
    if request.args.get("format") == "csv":
        return Response(debtors_csv(found), mimetype="text/csv",
                        headers={"Content-Disposition": "attachment; filename=borzhnyky.csv"})
    return render_template("report_debtors.html", debtors=found, buckets=BUCKETS)


@bp.get("/analytics")
@login_required(*ROLES)
def analytics():
    from cloud.analytics import (
        collection,
        consumption_dynamics,
        payments_by_channel_and_day,
        regulator_summary,
        revenue_structure,
    )

    period = _period()
    org_id = current_user().org_id
    session = db.session()
    payments = payments_by_channel_and_day(session, org_id, period)
    if request.args.get("format") == "csv":
        import csv
        import io

        buffer = io.StringIO()
        writer = csv.writer(buffer, delimiter=";")
        writer.writerow(["Дата", "Канал", "Сума", "Кількість"])
        writer.writerows([(day, channel, f"{amount:.2f}".replace(".", ","), count)
                          for day, channel, amount, count in payments])
        return Response("\ufeff" + buffer.getvalue(), mimetype="text/csv",
                        headers={"Content-Disposition": f"attachment; filename=platezhi-{period}.csv"})
    dynamics = consumption_dynamics(session, org_id)
    top = max((kwh for _, kwh, _, _ in dynamics), default=Decimal(1)) or Decimal(1)
    return render_template("report_analytics.html", period=period, payments=payments,
                           collection=collection(session, org_id, period), dynamics=dynamics, top=top,
                           structure=revenue_structure(session, org_id, period),
                           regulator=regulator_summary(session, org_id, period))
