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
from cloud.accounts.auth import current_user, requires
from cloud.i18n import MESSAGES, translate
from cloud.models import Account, Invoice, Organisation, Payment, PaymentReversal, utcnow
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

WORDS: dict[str, dict[str, str]] = {
    "payments": {"uk": "Оплати", "en": "Payments"},
    "cash_entry": {"uk": "Оплата в касі", "en": "Cash payment"},
    "cash_hint": {"uk": "Готівка, прийнята в офісі, — на особовий рахунок", "en": "Cash taken at the office, onto an account"},
    "amount_uah": {"uk": "Сума, грн", "en": "Amount, UAH"},
    "pay_date": {"uk": "Дата оплати", "en": "Date paid"},
    "receipt": {"uk": "№ квитанції (необов'язково)", "en": "Receipt no. (optional)"},
    "book_cash": {"uk": "Провести оплату", "en": "Book the payment"},
    "cash_booked": {"uk": "Оплату {amount} грн на о/р {account} проведено, квитанція {receipt}",
                    "en": "{amount} UAH booked on account {account}, receipt {receipt}"},
    "cash_again": {"uk": "Квитанцію {receipt} вже проведено раніше — вдруге не зараховано",
                   "en": "Receipt {receipt} was booked before — not counted twice"},
    "recent_cash": {"uk": "Останні оплати в касі", "en": "Recent cash payments"},
    "unmatched": {"uk": "Нерозпізнані оплати", "en": "Unmatched payments"},
    "unmatched_hint": {"uk": "Оплати, для яких не знайдено особовий рахунок. Вкажіть рахунок — IBAN платника "
                             "запам'ятається для наступних виписок.",
                       "en": "Payments no account was found for. Give the account — the payer's IBAN is remembered "
                             "for the next statements."},
    "queue_empty": {"uk": "Черга порожня: кожна оплата на своєму рахунку", "en": "The queue is empty: every payment is on its account"},
    "payer": {"uk": "Платник", "en": "Payer"},
    "purpose": {"uk": "Призначення", "en": "Purpose"},
    "assign": {"uk": "Зарахувати", "en": "Assign"},
    "why_unmatched_none": {"uk": "рахунок не знайдено", "en": "no account found"},
    "why_unmatched_ambiguous": {"uk": "кілька можливих рахунків", "en": "several possible accounts"},
    "assigned": {"uk": "Оплату {amount} грн зараховано на о/р {account}", "en": "{amount} UAH assigned to account {account}"},
    "iban_remembered": {"uk": "IBAN {iban} запам'ятано для о/р {account}", "en": "IBAN {iban} remembered for account {account}"},
    "iban_now_conflicting": {"uk": "IBAN {iban} уже платив за інший рахунок: тепер він не використовується для "
                                   "автоматичного зіставлення", "en": "IBAN {iban} paid for another account before: it is "
                                   "no longer used for automatic matching"},
    "conflicting_ibans": {"uk": "IBAN, що платили за кілька рахунків", "en": "IBANs that paid for several accounts"},
    "conflicting_hint": {"uk": "Такі IBAN (платіжний агент, батьки за дві квартири) не використовуються для "
                               "автоматичного зіставлення — оплати з них потрапляють сюди, якщо в призначенні немає "
                               "рахунку.", "en": "These IBANs (a paying agent, a parent paying for two flats) are not "
                               "used for automatic matching — their payments come here when the purpose names no account."},
    "iban_conflict_badge": {"uk": "IBAN платив за кілька рахунків ({accounts}): автоматично не зіставляється",
                            "en": "IBAN paid for several accounts ({accounts}): not matched automatically"},
    "unlinked_reversals": {"uk": "Сторно і повернення без оплати", "en": "Reversals and refunds without their payment"},
    "unlinked_hint": {"uk": "Банк повернув гроші, але не зрозуміло, яку саме оплату. Оберіть оплату — її буде "
                            "сторновано, а рахунки знову покажуть борг.",
                      "en": "The bank sent money back but which payment it undoes is unclear. Pick the payment — it is "
                            "reversed and its invoices owe again."},
    "link_reversal": {"uk": "Сторнувати цю оплату", "en": "Reverse this payment"},
    "no_candidates": {"uk": "Немає оплати на таку суму", "en": "No payment of that amount"},
    "reversal_linked": {"uk": "Оплату {payment} сторновано", "en": "Payment {payment} reversed"},
    "err_already_assigned": {"uk": "Оплату {payment} вже зараховано", "en": "Payment {payment} is already assigned"},
    "err_reversed": {"uk": "Оплату {payment} сторновано банком", "en": "Payment {payment} was reversed by the bank"},
    "err_amount_kopecks": {"uk": "Сума {amount}: не більше двох знаків після коми", "en": "Amount {amount}: at most two decimals"},
    "err_amount_positive": {"uk": "Сума має бути більшою за нуль", "en": "The amount must be more than zero"},
    "err_amount_too_large": {"uk": "Сума {amount} більша за ліміт однієї квитанції ({limit})",
                             "en": "{amount} is more than one receipt may carry ({limit})"},
    "err_amount_format": {"uk": "Сума «{amount}» — не гривні з копійками; наприклад 1250,40",
                          "en": "«{amount}» is not an amount in hryvnias and kopecks; e.g. 1250.40"},
    "err_date_format": {"uk": "Дата «{date}» — не дата", "en": "«{date}» is not a date"},
    "err_future": {"uk": "Дата {date} ще не настала", "en": "{date} is in the future"},
    "err_receipt_taken": {"uk": "Квитанцію {receipt} вже проведено: {amount} грн від {date}. Нова квитанція — новий номер.",
                          "en": "Receipt {receipt} is already booked: {amount} UAH on {date}. A new receipt needs a new number."},
    "err_no_payment": {"uk": "Оплату {payment} не знайдено", "en": "Payment {payment} not found"},
    "err_no_account_number": {"uk": "Вкажіть особовий рахунок", "en": "Give the account number"},
    "err_account_ambiguous": {"uk": "Рахунок {account} може бути {candidates}: введіть точно",
                              "en": "Account {account} could be {candidates}: type it exactly"},
    "err_account_unknown": {"uk": "Рахунку {account} немає в реєстрі", "en": "Account {account} is not in the register"},
    "account_money": {"uk": "Оплати й рахунки абонента", "en": "An account's payments and invoices"},
    "find": {"uk": "Знайти", "en": "Find"},
    "status_paid": {"uk": "оплачено", "en": "paid"},
    "status_partly_paid": {"uk": "частково оплачено", "en": "partly paid"},
    "status_overdue": {"uk": "прострочено", "en": "overdue"},
    "status_open": {"uk": "до сплати", "en": "to pay"},
    "outstanding": {"uk": "Залишок", "en": "Outstanding"},
    "credit_left": {"uk": "Переплата", "en": "Credit"},
    "reversed_on": {"uk": "сторновано {date}", "en": "reversed {date}"},
    "reverse": {"uk": "Сторнувати", "en": "Reverse"},
    "reverse_reason": {"uk": "Причина", "en": "Reason"},
    "reverse_confirm": {"uk": "Сторнувати всю оплату? Рахунки, які вона оплатила, знову покажуть борг.",
                        "en": "Reverse the whole payment? The invoices it paid will owe again."},
    "reversed_done": {"uk": "Оплату {amount} грн сторновано", "en": "{amount} UAH reversed"},
    "err_reason": {"uk": "Вкажіть причину сторно", "en": "Give the reason"},
    "channel_order": {"uk": "картка", "en": "card"},
    "err_reversal_amount": {"uk": "Оплата {payment} на {amount} грн, а сторно на {reversal} грн",
                            "en": "Payment {payment} is {amount} UAH, the reversal {reversal} UAH"},
}
MESSAGES.update({key: value for key, value in WORDS.items() if key not in MESSAGES})


def say(key: str, **params) -> str:
    return translate(key).format(**params)


def problem(exc: PaymentEntryError | ReversalError) -> str:
    """The error in the person's language when there are words for it, else as the service said it."""
    key = f"err_{exc.code}"
    return say(key, **exc.params) if exc.code and key in MESSAGES else str(exc)


def own_org() -> Organisation:
    user = current_user()
    org = db.session().get(Organisation, user.org_id) if user.org_id else None
    if org is None:
        abort(404)
    return org


def today() -> date:
    return utcnow().date()


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
                raise PaymentEntryError("not an amount", "amount_format", amount=form["amount"]) from None
            try:
                booked = date.fromisoformat(form["date"])
            except ValueError:
                raise PaymentEntryError("not a date", "date_format", date=form["date"]) from None
            # The hidden entry number stands in for a receipt number: a form sent twice is one payment.
            with db.write_lock():
                payment, created = cash_payment(session, org, account, amount, booked, current_user().email,
                                                form["receipt"] or form["entry"], today=today())
                session.commit()
        except PaymentEntryError as exc:
            session.rollback()
            error = problem(exc)
        else:
            receipt = payment.key.removeprefix("cash:")
            flash(say("cash_booked", amount=f"{payment.amount:.2f}", account=account.number, receipt=receipt)
                  if created else say("cash_again", receipt=receipt), "ok" if created else "problem")
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
        flash(problem(exc), "problem")
        return redirect(url_for("payments.unmatched"))
    flash(say("assigned", amount=f"{payment.amount:.2f}", account=account.number), "ok")
    if iban == "remembered":
        flash(say("iban_remembered", iban=payment.payer_iban, account=account.number), "ok")
    elif iban == "conflict":
        flash(say("iban_now_conflicting", iban=payment.payer_iban), "problem")
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
            raise PaymentEntryError("no such payment", "no_payment", payment=payment_id)
        with db.write_lock():
            apply_reversal(session, reversal, payment, current_user().email)
            session.commit()
    except (PaymentEntryError, ReversalError) as exc:
        session.rollback()
        flash(problem(exc), "problem")
    else:
        flash(say("reversal_linked", payment=payment.id), "ok")
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
        return render_template("payments/account.html", found=None, number=number, error=problem(exc)), 404
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
        flash(say("err_reason"), "problem")
        return redirect(url_for("payments.account", number=number))
    try:
        with db.write_lock():
            done = reverse_payment(session, payment, "hand", f"hand:{payment.id}", today(), current_user().email,
                                   purpose=reason)
            session.commit()
    except ReversalError as exc:
        session.rollback()
        flash(problem(exc), "problem")
    else:
        flash(say("reversed_done", amount=f"{payment.amount:.2f}") if done else
              say("err_reversed", payment=payment.id), "ok" if done else "problem")
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
