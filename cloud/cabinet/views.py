"""The resident's cabinet: their own account only — invoices, consumption, balance."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

import segno
from flask import Blueprint, Response, abort, current_app, flash, redirect, render_template, request, url_for
from markupsafe import Markup
from sqlalchemy import select

from cloud import db
from cloud.accounts.auth import current_user, requires
from cloud.audit import audit
from cloud.billing.document import invoice_document
from cloud.billing.invoice_pdf import render
from cloud.billing.ledger import account_balance
from cloud.i18n import translate
from cloud.models import Account, Invoice, Meter, Organisation, Reading, utcnow
from cloud.payments.card import start_order
from cloud.payments.liqpay import checkout
from cloud.permissions import Action

bp = Blueprint("cabinet", __name__, url_prefix="/cabinet")


def own_account() -> Account:
    user = current_user()
    account = db.session().get(Account, user.account_id) if user.account_id else None
    if account is None or account.org_id != user.org_id:
        abort(404)
    return account


def own_invoice(invoice_id: int) -> tuple[Account, Invoice, Organisation]:
    """An issued invoice of the signed-in resident's account — another account's is "not found", not "forbidden"."""
    account = own_account()
    found = db.session().get(Invoice, invoice_id)
    if found is None or found.account_id != account.id or found.status != "issued":
        abort(404)
    return account, found, db.session().get(Organisation, account.org_id)


@bp.get("/")
@requires(Action.USE_CABINET)
def index():
    account = own_account()
    invoices = db.session().scalars(
        select(Invoice).where(Invoice.account_id == account.id, Invoice.status == "issued")
        .order_by(Invoice.period.desc())
    ).all()
    org = db.session().get(Organisation, account.org_id)
    return render_template("cabinet.html", account=account, org=org, invoices=invoices,
                           balance=account_balance(db.session(), account.id),
                           latest=invoices[0] if invoices else None)


@bp.get("/invoices/<int:invoice_id>")
@requires(Action.USE_CABINET)
def invoice(invoice_id: int):
    account, found, org = own_invoice(invoice_id)
    document = invoice_document(db.session(), found)
    qr_svg = segno.make(document.payment_url(), error="h").svg_inline(scale=4, border=2)
    return render_template("invoice.html", account=account, org=org, invoice=found, document=document,
                           qr_svg=Markup(qr_svg))


@bp.get("/invoices/<int:invoice_id>.pdf")
@requires(Action.USE_CABINET)
def invoice_pdf(invoice_id: int):
    _, found, _ = own_invoice(invoice_id)
    pdf = render([invoice_document(db.session(), found)])
    return Response(pdf, mimetype="application/pdf",
                    headers={"Content-Disposition": f"inline; filename=rakhunok-{found.number}.pdf"})


@bp.post("/invoices/<int:invoice_id>/card")
@requires(Action.USE_CABINET)
def pay_by_card(invoice_id: int):
    """Start a LiqPay checkout for the invoice's amount due; the browser goes on to LiqPay's page."""

    account, found, org = own_invoice(invoice_id)
    if not org.liqpay_public_key:
        abort(404)
    document = invoice_document(db.session(), found)
    order = start_order(db.session(), org, account, found.id, document.to_pay)
    fields = checkout(org.liqpay_public_key, org.liqpay_private_key, order.order_id, document.to_pay,
                      document.purpose, url_for("cabinet.index", _external=True),
                      url_for("payment_callbacks.liqpay_callback", _external=True),
                      sandbox=bool(current_app.config.get("LIQPAY_SANDBOX")))
    db.session().commit()
    return render_template("card_checkout.html", action=current_app.config["LIQPAY_CHECKOUT_URL"], fields=fields,
                           amount=document.to_pay)


@bp.route("/reading", methods=["GET", "POST"])
@requires(Action.USE_CABINET)
def submit_reading():
    """The resident submits their meter's reading (for meters no gateway reads); checked before it counts."""


    account = own_account()
    # The account's meter in service (after a replacement the new one, never the removed one).
    meter = db.session().scalar(select(Meter).where(Meter.account_id == account.id, Meter.removed_at.is_(None))
                                .order_by(Meter.id.desc()).limit(1))
    if meter is None:
        abort(404)
    last = db.session().execute(select(Reading.ts, Reading.values).where(Reading.meter_id == meter.id)
                                .order_by(Reading.ts.desc()).limit(1)).first()
    error = None
    if request.method == "POST":
        try:
            value = Decimal(request.form.get("value", "").replace(",", ".").strip())
        except InvalidOperation:
            value = None
        previous = Decimal(last.values["import_kwh"]) if last else None
        if value is None or value < 0:
            error = translate("reading_not_number")
        elif previous is not None and value < previous:
            error = translate("reading_lower", previous=previous)
        elif previous is not None and value - previous > 100 * max((utcnow() - last.ts).total_seconds() / 3600, 1):
            error = translate("reading_too_high")
        else:
            now = utcnow().replace(microsecond=0)
            db.session().add(Reading(meter_id=meter.id, ts=now, values={"import_kwh": f"{value:.3f}"},
                                     source="resident"))
            audit(db.session(), account.org_id, f"resident:{account.number}", "reading.submit", f"meter:{meter.code}",
                  None, {"import_kwh": f"{value:.3f}", "at": now.isoformat()})
            db.session().commit()
            flash(translate("reading_saved"))
            return redirect(url_for("cabinet.index"))
    return render_template("reading.html", account=account, meter=meter, last=last, error=error), (
        200 if error is None else 422)
