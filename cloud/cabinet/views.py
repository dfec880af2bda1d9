"""The resident's cabinet: their own account only — consumption by month and by day, solar export, payments,
invoices, readings, the voltage at their point, and their contact and notification settings."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

import segno
from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, url_for
from markupsafe import Markup
from sqlalchemy import select

from cloud import db
from cloud.accounts.auth import current_user, requires
from cloud.audit import audit
from cloud.billing.document import invoice_document
from cloud.billing.invoice_pdf import render
from cloud.billing.ledger import account_balance
from cloud.cabinet.consumption import chart, daily, latest_period, monthly, payment_history, solar_lines
from cloud.downloads import attachment
from cloud.i18n import translate
from cloud.models import Account, Invoice, Meter, Organisation, Reading, utcnow
from cloud.operations.views import keep_voltage_days
from cloud.operations.voltage import Week, account_meters, newest_voltage_day, voltage_report
from cloud.payments.card import start_order
from cloud.payments.liqpay import checkout
from cloud.permissions import Action
from cloud.register.fields import EMAIL, FieldError, phone
from shared.calendar import parse_period

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
    session = db.session()
    invoices = session.scalars(
        select(Invoice).where(Invoice.account_id == account.id, Invoice.status == "issued")
        .order_by(Invoice.period.desc())
    ).all()
    org = session.get(Organisation, account.org_id)
    period = request.args.get("period", "").strip()
    error = None
    try:
        parse_period(period)
    except ValueError:
        if period:
            error = translate("err_cabinet_period")
        period = latest_period(session, account, utcnow())
    months = monthly(session, account, period)
    days = daily(session, account, period)
    meters = account_meters(session, account)
    voltage = None
    if meters:
        day = newest_voltage_day(session, [m[0] for m in meters])
        if day is not None:
            keep_voltage_days(account.org_id, [m[0] for m in meters], Week.of(day))
            voltage = voltage_report(session, meters, Week.of(day))
            voltage = voltage if voltage.points or voltage.episodes else None
    return render_template("cabinet.html", account=account, org=org, invoices=invoices,
                           balance=account_balance(session, account.id),
                           latest=invoices[0] if invoices else None, period=period, error=error,
                           months=months, month_chart=chart(months), days=days, day_chart=chart(days),
                           solar=solar_lines(session, account), payments=payment_history(session, account),
                           voltage=voltage), 200 if error is None else 422


SETTINGS_FIELDS = ("email", "phone", "telegram_chat_id", "reminders_opt_out")


def _settings(account: Account) -> dict:
    return {"email": account.email, "phone": account.phone, "telegram_chat_id": account.telegram_chat_id,
            "reminders_opt_out": bool(account.reminders_opt_out)}


def parse_settings(form) -> tuple[dict, dict[str, str]]:
    """The contact form as the account's values, and the errors by field (nothing is saved with any)."""
    values, errors = {}, {}
    email = form.get("email", "").strip().lower()
    if email and (len(email) > 200 or not EMAIL.fullmatch(email)):
        errors["email"] = translate("err_cabinet_email")
    values["email"] = email
    try:
        values["phone"] = phone("phone", form.get("phone", "").strip())
    except FieldError:
        errors["phone"] = translate("err_cabinet_phone")
    chat = form.get("telegram_chat_id", "").strip()
    if chat and not (chat.lstrip("-").isdigit() and len(chat) <= 20):
        errors["telegram_chat_id"] = translate("err_cabinet_telegram")
    values["telegram_chat_id"] = chat
    values["reminders_opt_out"] = form.get("reminders_opt_out") in ("1", "on", "yes")
    return values, errors


@bp.route("/settings", methods=["GET", "POST"])
@requires(Action.USE_CABINET)
def settings():
    """The resident's own e-mail, phone, Telegram chat and whether debt reminders come (audited)."""
    account = own_account()
    errors: dict[str, str] = {}
    shown = _settings(account)
    if request.method == "POST":
        values, errors = parse_settings(request.form)
        if not errors:
            before = _settings(account)
            changed = {k: v for k, v in values.items() if before[k] != v}
            if changed:
                with db.write_lock():
                    for key, value in changed.items():
                        setattr(account, key, value)
                    audit(db.session(), account.org_id, f"resident:{current_user().email}", "account.contact",
                          f"account:{account.number}", {k: before[k] for k in changed}, changed)
                    db.session().commit()
            flash(translate("cabinet_settings_saved"))
            return redirect(url_for("cabinet.settings"))
        shown = {**shown, **values}
    return render_template("cabinet_settings.html", account=account, values=shown, errors=errors), (
        422 if errors else 200)


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
    return attachment(pdf, "application/pdf", "rakhunok", found.number, extension="pdf", inline=True)


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


# The register of a household meter has at most 8 whole digits; the readings' column holds 11.
LARGEST_READING = Decimal("99999999.999")


def typed_reading(text: str) -> Decimal | None:
    """The reading as the resident typed it (a decimal comma allowed), rounded to the Wh; None unless it is a
    finite number ≥ 0 — ``NaN``, ``sNaN`` and ``Infinity`` parse as Decimals but are no meter's reading."""
    text = text.replace(",", ".").strip()
    if not text or len(text) > 30:
        return None
    try:
        value = Decimal(text)
    except InvalidOperation:
        return None
    if not value.is_finite() or value < 0:
        return None
    if value > LARGEST_READING:
        return value  # refused with its own message; never quantized (1E+30 would overflow the context)
    return value.quantize(Decimal("0.001"))


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
        value = typed_reading(request.form.get("value", ""))
        previous = Decimal(last.values["import_kwh"]) if last and "import_kwh" in last.values else None
        if value is None:
            error = translate("reading_not_number")
        elif value > LARGEST_READING:
            error = translate("reading_too_large", largest=f"{LARGEST_READING:,.3f}".replace(",", " "))
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
