"""Manager pages: the site's micro-balance for a period, losses per line, and the money side."""

from __future__ import annotations

from decimal import Decimal

from flask import Blueprint, abort, render_template, request
from sqlalchemy import func, select

from cloud import db
from cloud.auth import STAFF_ROLES, current_user
from cloud.auth import login_required as require
from cloud.models import BillingRun, IntervalEnergy, Meter, Site
from cloud.site_balance import site_balance

bp = Blueprint("dashboard", __name__, url_prefix="/sites")


def org_site(code: str) -> Site:
    """The site with ``code`` in the signed-in user's organisation — or 404, never another org's."""
    user = current_user()
    site = db.session().scalar(select(Site).where(Site.code == code, Site.org_id == user.org_id))
    if site is None:
        abort(404)
    return site


def latest_period(site: Site) -> str | None:
    last = db.session().scalar(
        select(func.max(IntervalEnergy.start)).join(Meter, Meter.id == IntervalEnergy.meter_id)
        .where(Meter.site_id == site.id)
    )
    return None if last is None else f"{last:%Y-%m}"


@bp.get("/")
@require(*STAFF_ROLES)
def sites():
    user = current_user()
    rows = db.session().scalars(select(Site).where(Site.org_id == user.org_id).order_by(Site.code)).all()
    return render_template("sites.html", sites=rows)


@bp.get("/<code>")
@require(*STAFF_ROLES)
def site(code: str):
    found = org_site(code)
    period = request.args.get("period") or latest_period(found)
    balance = None
    run = None
    if period:
        try:
            balance = site_balance(db.session(), found, period)
        except ValueError:
            abort(400)
        run = db.session().scalar(select(BillingRun).where(BillingRun.site_id == found.id,
                                                           BillingRun.period == period))
    lines = found.lines
    names = {line.number: line.name for line in lines}
    worst = max((abs(b.loss_pct) for b in balance.lines if b.loss_pct is not None), default=Decimal(1)) if balance else 1
    return render_template("site.html", site=found, period=period, balance=balance, run=run, names=names,
                           scale=max(Decimal(worst), Decimal(1)))


@bp.get("/<code>/invoices/<period>.pdf")
@require("org_admin", "manager", "accountant", "clerk", "operator")
def run_pdf(code: str, period: str):
    from flask import Response

    from cloud.billing.delivery import run_pdf as render_run

    found = org_site(code)
    pdf = render_run(db.session(), found, period)
    return Response(pdf, mimetype="application/pdf",
                    headers={"Content-Disposition": f"attachment; filename=rakhunky-{code}-{period}.pdf"})


@bp.route("/<code>/billing", methods=["GET", "POST"])
@require("org_admin", "accountant", "clerk", "manager")
def billing(code: str):
    """The accountant's billing run: preview as a draft, re-run, then issue — in a few clicks."""
    from flask import flash, redirect, url_for

    from cloud.billing.run import BillingError, billing_run

    found = org_site(code)
    period = request.values.get("period") or latest_period(found)
    if request.method == "POST":
        action = request.form.get("action")
        try:
            result = billing_run(db.session(), found, period, issue=action == "issue", actor=current_user().email)
            db.session().commit()
            flash(f"{result.status}: {result.invoices}", "ok")
            for problem in result.problems[:20]:
                flash(problem, "problem")
        except BillingError as exc:
            db.session().rollback()
            flash(str(exc), "problem")
        return redirect(url_for("dashboard.billing", code=code, period=period))
    run = db.session().scalar(select(BillingRun).where(BillingRun.site_id == found.id, BillingRun.period == period))
    licence = licence_offer(found, period, run)
    pending = pending_on_site(found)
    invoices = []
    if run is not None:
        from cloud.models import Account, Invoice

        invoices = db.session().execute(
            select(Invoice.number, Account.number, Account.holder, Invoice.quantity_kwh, Invoice.total, Invoice.id)
            .join(Account, Account.id == Invoice.account_id).where(Invoice.run_id == run.id)
            .order_by(Account.number).limit(500)).all()
    return render_template("billing.html", site=found, period=period, run=run, invoices=invoices, licence=licence,
                           pending=pending)


def pending_on_site(site: Site) -> list:
    """Corrections recorded for the site's accounts that no issued invoice carries yet."""
    from cloud.models import Account, Correction, Invoice

    return db.session().execute(
        select(Invoice.number, Account.number, Correction.amount, Correction.reason)
        .join(Invoice, Invoice.id == Correction.invoice_id).join(Account, Account.id == Correction.account_id)
        .where(Correction.org_id == site.org_id, Account.site_id == site.id, Correction.applied_invoice_id.is_(None))
        .order_by(Correction.id)).all()


@bp.post("/<code>/corrections")
@require("org_admin", "accountant")
def correction(code: str):
    """The accountant records a correction (перерахунок) of an issued invoice; the next run carries it."""
    from flask import flash, redirect, url_for

    from cloud.billing.corrections import CorrectionError, record_correction
    from cloud.i18n import translate
    from cloud.models import Organisation
    from shared.money import MoneyError, uah

    found = org_site(code)
    user = current_user()
    try:
        record_correction(db.session(), db.session().get(Organisation, user.org_id),
                          request.form.get("invoice", "").strip(), uah(request.form.get("amount", "")),
                          request.form.get("reason", ""), user.email, uah(request.form.get("kwh") or "0"))
        db.session().commit()
        flash(translate("correction_recorded"), "ok")
    except (CorrectionError, MoneyError) as exc:
        db.session().rollback()
        flash(str(exc), "problem")
    return redirect(url_for("dashboard.billing", code=found.code, period=request.form.get("period") or None))


def licence_offer(site: Site, period: str | None, run: BillingRun | None) -> dict | None:
    """Balans's own licence for this organisation (item 8 of the seed's price list) beside what a loss
    reduction of 1 and 2 percentage points of this month's input would save in a year."""
    from cloud.models import Account, Tariff
    from shared.licence import loss_reduction_return, monthly_price, roi, yearly_price

    session = db.session()
    subscribers = session.scalar(select(func.count()).select_from(Account).where(Account.org_id == site.org_id))
    tariff = session.scalar(select(Tariff.purchase_price).where(Tariff.org_id == site.org_id)
                            .order_by(Tariff.valid_from.desc()).limit(1))
    monthly_input = None
    if run is not None:
        monthly_input = run.summary.get("purchase_kwh") or run.summary.get("building_gcal")
    elif period:
        try:
            monthly_input = site_balance(session, site, period).input_kwh
        except ValueError:
            monthly_input = None
    offer = {"subscribers": subscribers, "monthly": monthly_price(subscribers),
             "year1": yearly_price(subscribers, 1), "year2": yearly_price(subscribers, 2, 12),
             "full": yearly_price(subscribers, 3), "returns": [], "break_even": None}
    if monthly_input and tariff and Decimal(monthly_input) > 0:
        result = roi(subscribers, Decimal(monthly_input), Decimal(tariff))
        offer["break_even"] = result.break_even_loss_reduction_pct
        offer["returns"] = [loss_reduction_return(result, Decimal(points)) for points in (1, 2)]
    return offer
