"""The accountant's payment pages: cash taken at the office, the unmatched queue (assign a payment to an
account, see payer IBANs that are no longer trusted, link a bank reversal to its payment), and one account's
invoices with their status and its payments, where a payment entered in error is reversed.

Only an accountant or the organisation's admin, only their own organisation; every form carries a CSRF token.
"""

from __future__ import annotations

import secrets
from datetime import date
from decimal import InvalidOperation

from flask import Blueprint, abort, flash, jsonify, redirect, render_template, request, url_for
from sqlalchemy import select

from cloud import db
from cloud.accounts.auth import current_org, current_user, requires
from cloud.clock import kyiv_today
from cloud.i18n import explain, translate
from cloud.models import Account, Invoice, Payment, PaymentReversal
from cloud.payments.book import account_book
from cloud.payments.card import apply_callback
from cloud.payments.csv_statement import parse_amount
from cloud.payments.importer import PaymentEntryError, cash_payment, resolve_unmatched
from cloud.payments.liqpay import CallbackError
from cloud.payments.queue import conflicting_ibans, find_account, unmatched_payment, unmatched_payments
from cloud.payments.reversals import (
    ReversalError,
    apply_reversal,
    candidates_for,
    reverse_payment,
    unlinked_reversals,
)
from cloud.permissions import Action

bp = Blueprint("payments", __name__, url_prefix="/payments")
# The payment provider's server calls back here; it proves itself with a signature, not a session (no CSRF).
callbacks = Blueprint("payment_callbacks", __name__, url_prefix="/api/v1/payments")


own_org = current_org


def today() -> date:
    return kyiv_today()


@bp.route("/cash", methods=["GET", "POST"])
@requires(Action.MANAGE_PAYMENTS)
def cash():
    """Cash taken at the office: account, amount, date, receipt — booked once even if the form is sent twice."""
    org = own_org()
    session = db.session()
    form = {"account": request.args.get("account", ""), "amount": "", "date": today().isoformat(), "receipt": "",
            "entry": f"B-{today():%Y%m%d}-{secrets.token_hex(3).upper()}"}
    error = None
    if request.method == "POST":
        form = {k: request.form.get(k, "").strip() for k in form}
        try:
            account = find_account(session, org.id, form["account"])
            try:
                amount = parse_amount(form["amount"], decimal_comma=True)
            except InvalidOperation:
                raise PaymentEntryError("not an amount", "err_amount_format", amount=form["amount"]) from None
            try:
                booked = date.fromisoformat(form["date"])
            except ValueError:
                raise PaymentEntryError("not a date", "err_date_format", date=form["date"]) from None
            # The hidden entry number stands in for a receipt number: a form sent twice is one payment.
            with db.write_lock():
                payment, created = cash_payment(session, org, account, amount, booked, current_user().email,
                                                form["receipt"] or form["entry"], today=today())
                session.commit()
        except PaymentEntryError as exc:
            session.rollback()
            error = explain(exc)
        else:
            receipt = payment.key.removeprefix("cash:")
            flash(translate("cash_booked", amount=f"{payment.amount:.2f}", account=account.number, receipt=receipt)
                  if created else translate("cash_again", receipt=receipt), "ok" if created else "problem")
            return redirect(url_for("payments.cash"))
    recent = session.execute(
        select(Payment.booked, Payment.amount, Payment.key, Account.number, Account.holder)
        .join(Account, Account.id == Payment.account_id)
        .where(Payment.org_id == org.id, Payment.channel == "cash")
        .order_by(Payment.id.desc()).limit(20)).all()
    return render_template("payments/cash.html", form=form, error=error, recent=recent), 200 if error is None else 422


@bp.get("/unmatched")
@requires(Action.MANAGE_PAYMENTS)
def unmatched():
    org = own_org()
    session = db.session()
    conflicts = conflicting_ibans(session, org.id)
    reversals = [(r, candidates_for(session, r)) for r in unlinked_reversals(session, org.id)]
    return render_template("payments/unmatched.html", payments=unmatched_payments(session, org.id),
                           conflicts=conflicts, reversals=reversals)


@bp.post("/unmatched/<int:payment_id>")
@requires(Action.MANAGE_PAYMENTS)
def assign(payment_id: int):
    org = own_org()
    session = db.session()
    try:
        with db.write_lock():
            payment = unmatched_payment(session, org.id, payment_id)
            account = find_account(session, org.id, request.form.get("account", ""))
            iban = resolve_unmatched(session, payment, account, current_user().email)
            session.commit()
    except PaymentEntryError as exc:
        session.rollback()
        flash(explain(exc), "problem")
        return redirect(url_for("payments.unmatched"))
    flash(translate("assigned", amount=f"{payment.amount:.2f}", account=account.number), "ok")
    if iban == "remembered":
        flash(translate("iban_remembered", iban=payment.payer_iban, account=account.number), "ok")
    elif iban == "conflict":
        flash(translate("iban_now_conflicting", iban=payment.payer_iban), "problem")
    return redirect(url_for("payments.unmatched"))


@bp.post("/reversals/<int:reversal_id>")
@requires(Action.MANAGE_PAYMENTS)
def link(reversal_id: int):
    """Link an unlinked bank reversal to the payment it undoes (one of the candidates shown)."""
    org = own_org()
    session = db.session()
    reversal = session.scalar(select(PaymentReversal).where(PaymentReversal.org_id == org.id,
                                                            PaymentReversal.id == reversal_id,
                                                            PaymentReversal.payment_id.is_(None)))
    if reversal is None:
        abort(404)
    try:
        payment_id = int(request.form.get("payment", ""))
    except ValueError:
        abort(400)
    payment = session.scalar(select(Payment).where(Payment.org_id == org.id, Payment.id == payment_id))
    try:
        if payment is None:
            raise PaymentEntryError("no such payment", "err_no_payment", payment=payment_id)
        with db.write_lock():
            apply_reversal(session, reversal, payment, current_user().email)
            session.commit()
    except (PaymentEntryError, ReversalError) as exc:
        session.rollback()
        flash(explain(exc), "problem")
    else:
        flash(translate("reversal_linked", payment=payment.id), "ok")
    return redirect(url_for("payments.unmatched"))


@bp.get("/account")
@requires(Action.MANAGE_PAYMENTS)
def account():
    """One account: its invoices with their status today, its payments (reversed ones marked), its credit."""
    org = own_org()
    session = db.session()
    number = request.args.get("number", "").strip()
    if not number:
        return render_template("payments/account.html", found=None, number="", error=None)
    try:
        found = find_account(session, org.id, number)
    except PaymentEntryError as exc:
        return render_template("payments/account.html", found=None, number=number, error=explain(exc)), 404
    book = account_book(session, org.id, found.id)
    invoices = {i.id: i for i in session.scalars(select(Invoice).where(Invoice.org_id == org.id,
                                                                      Invoice.account_id == found.id))}
    statuses = [(invoices[a.invoice_id], a) for a in reversed(book.statuses(today()))]
    reversals = {r.payment_id: r for r in session.scalars(
        select(PaymentReversal).join(Payment, Payment.id == PaymentReversal.payment_id)
        .where(PaymentReversal.org_id == org.id, Payment.account_id == found.id))}
    payments = session.scalars(select(Payment).where(Payment.org_id == org.id, Payment.account_id == found.id)
                               .order_by(Payment.booked.desc(), Payment.id.desc()).limit(200)).all()
    return render_template("payments/account.html", found=found, number=found.number, error=None,
                           statuses=statuses, payments=payments, reversals=reversals, credit=book.credit)


@bp.post("/<int:payment_id>/reverse")
@requires(Action.MANAGE_PAYMENTS)
def reverse(payment_id: int):
    """An accountant's storno of a whole payment (cash on the wrong account, a payment refunded by hand)."""
    org = own_org()
    session = db.session()
    payment = session.scalar(select(Payment).where(Payment.org_id == org.id, Payment.id == payment_id,
                                                   Payment.account_id.is_not(None)))
    if payment is None:
        abort(404)
    number = session.get(Account, payment.account_id).number
    reason = " ".join(request.form.get("reason", "").split())
    if not reason:
        flash(translate("err_reason"), "problem")
        return redirect(url_for("payments.account", number=number))
    try:
        with db.write_lock():
            done = reverse_payment(session, payment, "hand", f"hand:{payment.id}", today(), current_user().email,
                                   purpose=reason)
            session.commit()
    except ReversalError as exc:
        session.rollback()
        flash(explain(exc), "problem")
    else:
        flash(translate("reversed_done", amount=f"{payment.amount:.2f}") if done else
              translate("err_already_reversed", payment=payment.id), "ok" if done else "problem")
    return redirect(url_for("payments.account", number=number))


@callbacks.post("/liqpay")
def liqpay_callback():
    """LiqPay's server callback (form fields data and signature)."""
    session = db.session()
    try:
        with db.write_lock():
            outcome = apply_callback(session, request.form.get("data", ""), request.form.get("signature", ""))
            session.commit()
    except CallbackError as exc:
        session.rollback()
        return jsonify({"error": "bad_callback", "message": str(exc)}), exc.status
    return jsonify({"status": outcome}), 200
