"""LiqPay-compatible card payments: the checkout form for an invoice and the server callback.

data = base64(JSON); signature = base64(sha1(private_key + data + private_key)), computed over the base64
``data`` exactly as received and compared in constant time. Idempotent by order id.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from dataclasses import dataclass
from decimal import Decimal

CHECKOUT_URL = "https://www.liqpay.ua/api/3/checkout"
PAID = ("success", "sandbox")
FAILED = ("failure", "error")
REVERSED = ("reversed",)


class CallbackError(ValueError):
    def __init__(self, status: int, reason: str):
        super().__init__(reason)
        self.status = status


def sign(private_key: str, data: str) -> str:
    digest = hashlib.sha1((private_key + data + private_key).encode("utf-8")).digest()
    return base64.b64encode(digest).decode("ascii")


def checkout(public_key: str, private_key: str, order_id: str, amount: Decimal, description: str,
             result_url: str, server_url: str, sandbox: bool = False) -> dict[str, str]:
    """The two form fields (data, signature) that open LiqPay's checkout for this order."""
    params = {"version": 3, "public_key": public_key, "action": "pay", "amount": f"{amount:.2f}", "currency": "UAH",
              "description": description[:250], "order_id": order_id, "result_url": result_url,
              "server_url": server_url, "language": "uk"}
    if sandbox:
        params["sandbox"] = 1
    data = base64.b64encode(json.dumps(params, ensure_ascii=False).encode("utf-8")).decode("ascii")
    return {"data": data, "signature": sign(private_key, data)}


@dataclass(frozen=True)
class Callback:
    order_id: str
    status: str
    amount: Decimal
    currency: str
    payment_id: str
    public_key: str


def verify_callback(private_key: str, data: str, signature: str) -> Callback:
    """Check the signature (constant time) and read the callback; raises CallbackError with an HTTP status."""
    if not data or not signature:
        raise CallbackError(400, "data and signature are required")
    if not hmac.compare_digest(sign(private_key, data), signature):
        raise CallbackError(403, "signature does not match")
    try:
        payload = json.loads(base64.b64decode(data, validate=True))
        return Callback(order_id=str(payload["order_id"]), status=str(payload["status"]),
                        amount=Decimal(str(payload["amount"])), currency=str(payload.get("currency", "UAH")),
                        payment_id=str(payload.get("payment_id", "")), public_key=str(payload.get("public_key", "")))
    except (ValueError, KeyError, TypeError) as exc:
        raise CallbackError(400, f"malformed callback data ({exc.__class__.__name__})") from exc
