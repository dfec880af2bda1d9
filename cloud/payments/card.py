"""Card payments on the books: start a checkout for an invoice, and apply LiqPay's callbacks exactly once."""

from __future__ import annotations

import base64
import json
import secrets

from sqlalchemy import select
from sqlalchemy.orm import Session

from cloud.audit import audit
from cloud.clock import kyiv_today
from cloud.models import Account, CardOrder, Organisation, Payment
from cloud.payments.importer import book_payment
from cloud.payments.liqpay import FAILED, PAID, REVERSED, Callback, CallbackError, verify_callback
from cloud.payments.reversals import reverse_payment


def start_order(db: Session, org: Organisation, account: Account, invoice_id: int | None, amount) -> CardOrder:
    order = CardOrder(org_id=org.id, order_id=f"{account.number}-{secrets.token_hex(6)}", account_id=account.id,
                      invoice_id=invoice_id, amount=amount)
    db.add(order)
    db.flush()
    return order


def apply_callback(db: Session, data: str, signature: str) -> str:
    """Verify and apply one callback; the same callback twice changes nothing. Returns what happened."""
    try:
        order_id = str(json.loads(base64.b64decode(data))["order_id"])
    except (ValueError, KeyError, TypeError) as exc:
        raise CallbackError(400, "malformed callback data") from exc
    order = db.scalar(select(CardOrder).where(CardOrder.order_id == order_id))
    if order is None:
        raise CallbackError(404, f"unknown order {order_id}")
    org = db.get(Organisation, order.org_id)
    callback: Callback = verify_callback(org.liqpay_private_key, data, signature, public_key=org.liqpay_public_key)
    if callback.currency != "UAH" or callback.amount <= 0:
        raise CallbackError(422, f"unexpected amount {callback.amount} {callback.currency}")
    account = db.get(Account, order.account_id)
    key = f"liqpay:{order.order_id}"
    paid = db.scalar(select(Payment).where(Payment.org_id == org.id, Payment.key == key))
    if callback.status in PAID:
        if paid is not None:
            return "duplicate"
        payment = Payment(org_id=org.id, key=key, channel="card", booked=kyiv_today(), amount=callback.amount,
                          payer=account.holder, purpose=f"LiqPay {callback.payment_id} order {order.order_id}",
                          account_id=account.id, matched_by="order")
        db.add(payment)
        db.flush()
        book_payment(db, payment, account)
        order.status = callback.status
        audit(db, org.id, "liqpay", "payment.card", f"order:{order.order_id}", None,
              {"amount": f"{callback.amount:.2f}", "status": callback.status})
        return "paid"
    if callback.status in REVERSED:
        if paid is None:
            return "nothing to reverse"
        # Idempotent by the order: LiqPay's retries of «reversed» find the reversal already there.
        done = reverse_payment(db, paid, "card", f"liqpay-reversed:{order.order_id}", kyiv_today(), "liqpay",
                               purpose=f"LiqPay {callback.payment_id} order {order.order_id} reversed")
        order.status = "reversed"
        return "reversed" if done is not None else "duplicate"
    if callback.status in FAILED:
        order.status = callback.status
        return "failed"
    return "pending"  # wait_secure, processing …: the final status comes in a later callback
