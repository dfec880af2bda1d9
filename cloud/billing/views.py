"""The accountant's billing pages: draft and issue a run, the run's invoices as one PDF, corrections, and the
licence offer beside the month's figures."""

from __future__ import annotations

from decimal import Decimal

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from sqlalchemy import func, select

from cloud import db
from cloud.accounts.auth import current_user, requires
from cloud.billing.corrections import CorrectionError, record_correction
from cloud.billing.delivery import run_invoices
from cloud.billing.delivery import run_pdf as render_run
from cloud.billing.errors import BillingError
from cloud.billing.run import billing_run
from cloud.downloads import attachment
from cloud.i18n import explain, translate
from cloud.models import Account, BillingRun, Correction, Invoice, Organisation, Site, Tariff
from cloud.permissions import Action, allowed
from cloud.sites.balance import site_balance
from cloud.sites.views import latest_period, org_site
from shared.calendar import parse_period
from shared.licence import loss_reduction_return, monthly_price, roi, yearly_price
from shared.money import MoneyError, uah

bp = Blueprint("billing", __name__, url_prefix="/sites")


@bp.get("/<code>/invoices/<period>.pdf")
@requires(Action.PRINT_INVOICES)
def run_pdf(code: str, period: str):
    """The run's invoices as one PDF, named from the site's stored code and the checked period — never from
    the URL as typed (a CR/LF or a quote there would reach the header)."""
    found = org_site(code)
    try:
        parse_period(period)
    except ValueError:
        abort(400, description=translate("err_period_format", period=period[:20]))
    if not run_invoices(db.session(), found, period):
        abort(404, description=translate("err_no_invoices", site=found.code, period=period))
    return attachment(render_run(db.session(), found, period), "application/pdf", "rakhunky", found.code, period,
                      extension="pdf")


@bp.route("/<code>/billing", methods=["GET", "POST"])
@requires(Action.RUN_BILLING)
def billing(code: str):
    """The accountant's billing run: preview as a draft, re-run, then issue — in a few clicks."""
    found = org_site(code)
    period = request.values.get("period") or latest_period(found)
    may_issue = allowed(current_user().role, Action.ISSUE_INVOICES)
    if request.method == "POST":
        action = request.form.get("action")
        if action == "issue" and not may_issue:  # a draft is anyone's on this page; issuing is the accountant's
            abort(403, description=translate("err_issue_role"))
        try:
            result = billing_run(db.session(), found, period, issue=action == "issue", actor=current_user().email)
            db.session().commit()
            flash(translate("run_made", status=translate(result.status), invoices=result.invoices), "ok")
            for problem in result.problems[:20]:
                flash(explain(problem), "problem")
        except BillingError as exc:
            db.session().rollback()
            flash(explain(exc), "problem")
        return redirect(url_for("billing.billing", code=code, period=period))
    run = db.session().scalar(select(BillingRun).where(BillingRun.site_id == found.id, BillingRun.period == period))
    licence = licence_offer(found, period, run)
    pending = pending_on_site(found)
    invoices = []
    if run is not None:
        invoices = db.session().execute(
            select(Invoice.number, Account.number, Account.holder, Invoice.quantity_kwh, Invoice.total, Invoice.id)
            .join(Account, Account.id == Invoice.account_id).where(Invoice.run_id == run.id)
            .order_by(Account.number).limit(500)).all()
    return render_template("billing.html", site=found, period=period, run=run, invoices=invoices, licence=licence,
                           pending=pending, may_issue=may_issue)


def pending_on_site(site: Site) -> list:
    """Corrections recorded for the site's accounts that no issued invoice carries yet."""
    return db.session().execute(
        select(Invoice.number, Account.number, Correction.amount, Correction.reason)
        .join(Invoice, Invoice.id == Correction.invoice_id).join(Account, Account.id == Correction.account_id)
        .where(Correction.org_id == site.org_id, Account.site_id == site.id, Correction.applied_invoice_id.is_(None))
        .order_by(Correction.id)).all()


@bp.post("/<code>/corrections")
@requires(Action.CORRECT_INVOICE)
def correction(code: str):
    """The accountant records a correction (перерахунок) of an issued invoice; the next run carries it."""
    found = org_site(code)
    user = current_user()
    amount, kwh = request.form.get("amount", ""), request.form.get("kwh") or "0"
    try:
        record_correction(db.session(), db.session().get(Organisation, user.org_id),
                          request.form.get("invoice", "").strip(),
                          typed_number(amount, "err_amount_format", amount=amount), request.form.get("reason", ""),
                          user.email, typed_number(kwh, "err_kwh_format", kwh=kwh))
        db.session().commit()
        flash(translate("correction_recorded"), "ok")
    except CorrectionError as exc:
        db.session().rollback()
        flash(explain(exc), "problem")
    return redirect(url_for("billing.billing", code=found.code, period=request.form.get("period") or None))


def typed_number(text: str, code: str, **params) -> Decimal:
    """A number as the accountant typed it (a decimal comma allowed); when it is not one, a CorrectionError
    whose key names the field."""
    try:
        return uah(text)
    except MoneyError:
        raise CorrectionError(f"not a number: {text!r}", code, **params) from None


def licence_offer(site: Site, period: str | None, run: BillingRun | None) -> dict | None:
    """Balans's own licence for this organisation (item 8 of the seed's price list) beside what a loss
    reduction of 1 and 2 percentage points of this month's input would save in a year."""
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
