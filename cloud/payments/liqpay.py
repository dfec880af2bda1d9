"""LiqPay-compatible card payments: the checkout (link or form) for an invoice, and the server callback.

data = base64(JSON); signature = base64(sha1(private_key + data + private_key)), computed over the base64
``data`` exactly as received and compared in constant time. A callback is idempotent by its order id.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import urllib.parse
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

CHECKOUT_URL = "https://www.liqpay.ua/api/3/checkout"

# What a status means for the books (LiqPay API «Callback» status list; verify new ones against the docs).
PAID = ("success", "sandbox")  # sandbox: a test payment that succeeded
FAILED = ("failure", "error")
REVERSED = ("reversed",)
PENDING = ("processing", "prepared", "wait_secure", "wait_accept", "wait_lc", "wait_reserve", "wait_card",
           "wait_compensation", "hold_wait", "invoice_wait", "cash_wait", "wait_qr", "wait_sender",
           "3ds_verify", "captcha_verify", "cvv_verify", "ivr_verify", "otp_verify", "password_verify",
           "phone_verify", "pin_verify", "receiver_verify", "sender_verify", "senderapp_verify", "p24_verify",
           "mp_verify")
OUTCOMES = {**dict.fromkeys(PAID, "paid"), **dict.fromkeys(FAILED, "failed"), **dict.fromkeys(REVERSED, "reversed"),
            **dict.fromkeys(PENDING, "pending")}


class CallbackError(ValueError):
    """A callback refused; ``status`` is the HTTP status to answer with."""

    def __init__(self, status: int, reason: str):
        super().__init__(reason)
        self.status = status


def encode_data(params: dict) -> str:
    """The ``data`` field: base64 of the JSON parameters."""
    return base64.b64encode(json.dumps(params, ensure_ascii=False).encode("utf-8")).decode("ascii")


def sign(private_key: str, data: str) -> str:
    """base64(sha1(private_key + data + private_key)) over the base64 ``data`` string."""
    digest = hashlib.sha1((private_key + data + private_key).encode("utf-8")).digest()
    return base64.b64encode(digest).decode("ascii")


def checkout_params(public_key: str, order_id: str, amount: Decimal, description: str, result_url: str,
                    server_url: str, sandbox: bool = False, language: str = "uk") -> dict:
    """The JSON parameters of a «pay» checkout for one order (the order id is the idempotency key)."""
    if Decimal(amount) <= 0:
        raise ValueError(f"order {order_id}: amount must be positive, got {amount}")
    params = {"version": 3, "public_key": public_key, "action": "pay", "amount": f"{Decimal(amount):.2f}",
              "currency": "UAH", "description": description[:250], "order_id": order_id, "result_url": result_url,
              "server_url": server_url, "language": language}
    if sandbox:
        params["sandbox"] = 1
    return params


def checkout(public_key: str, private_key: str, order_id: str, amount: Decimal, description: str,
             result_url: str, server_url: str, sandbox: bool = False) -> dict[str, str]:
    """The two form fields (data, signature) that open LiqPay's checkout; POST them to CHECKOUT_URL."""
    data = encode_data(checkout_params(public_key, order_id, amount, description, result_url, server_url, sandbox))
    return {"data": data, "signature": sign(private_key, data)}


def checkout_link(public_key: str, private_key: str, order_id: str, amount: Decimal, description: str,
                  result_url: str, server_url: str, sandbox: bool = False, base_url: str = CHECKOUT_URL) -> str:
    """The same checkout as a link (for an e-mail or a QR code): GET base_url?data=…&signature=…"""
    fields = checkout(public_key, private_key, order_id, amount, description, result_url, server_url, sandbox)
    return f"{base_url}?{urllib.parse.urlencode(fields)}"


@dataclass(frozen=True)
class Callback:
    """A verified server callback."""

    order_id: str
    status: str
    amount: Decimal
    currency: str
    payment_id: str
    public_key: str
    payload: dict | None = None

    @property
    def outcome(self) -> str:
        """paid | failed | reversed | pending | unknown — what the books do with it."""
        return OUTCOMES.get(self.status, "unknown")

    @property
    def is_test(self) -> bool:
        return self.status == "sandbox"

    @property
    def idempotency_key(self) -> str:
        """One payment per order, however many times LiqPay calls back."""
        return f"liqpay:{self.order_id}"


def verify_callback(private_key: str, data: str, signature: str, public_key: str | None = None) -> Callback:
    """Check the signature (constant time), then read the callback; raises CallbackError with an HTTP status."""
    if not data or not signature:
        raise CallbackError(400, "callback: the form fields data and signature are both required")
    if not hmac.compare_digest(sign(private_key, data).encode("ascii"), signature.strip().encode("utf-8", "replace")):
        raise CallbackError(403, "callback: signature does not match (wrong private key, or data altered)")
    try:
        payload = json.loads(base64.b64decode(data, validate=True), parse_float=Decimal)
        callback = Callback(order_id=str(payload["order_id"]), status=str(payload["status"]),
                            amount=Decimal(str(payload["amount"])), currency=str(payload.get("currency", "UAH")),
                            payment_id=str(payload.get("payment_id", "")),
                            public_key=str(payload.get("public_key", "")), payload=payload)
    except (ValueError, KeyError, TypeError, InvalidOperation, binascii.Error) as exc:
        raise CallbackError(400, f"callback: malformed data ({exc.__class__.__name__}: {exc})") from exc
    if public_key is not None and callback.public_key != public_key:
        raise CallbackError(403, f"callback: order {callback.order_id} is for public key {callback.public_key!r}, "
                                 "not this merchant's")
    if not callback.amount.is_finite() or callback.amount < 0:
        raise CallbackError(400, f"callback: order {callback.order_id} has amount {callback.amount}")
    return callback
