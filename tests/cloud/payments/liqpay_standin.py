"""A local stand-in for LiqPay on 127.0.0.1: takes a checkout (form POST or link GET) and checks its signature
like the real service, then POSTs a signed server callback to the order's server_url, as LiqPay does.
"""

from __future__ import annotations

import base64
import itertools
import json
import threading
import urllib.error
import urllib.parse
import urllib.request
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from cloud.payments.liqpay import sign

CHECKOUT_PATH = "/api/3/checkout"


class LiqPayStandIn:
    """Knows the merchant's keys, as LiqPay does. Use as a context manager or call close()."""

    def __init__(self, public_key: str, private_key: str):
        self.public_key, self.private_key = public_key, private_key
        self.checkouts: list[dict] = []  # every accepted checkout's parameters, in order
        self.orders: dict[str, dict] = {}
        self._payment_ids = itertools.count(2_000_000_001)
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}{CHECKOUT_PATH}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def _handler(self):
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                url = urllib.parse.urlsplit(self.path)
                self._checkout(url.path, urllib.parse.parse_qs(url.query))

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0))).decode("utf-8")
                self._checkout(urllib.parse.urlsplit(self.path).path, urllib.parse.parse_qs(body))

            def _checkout(self, path, form):
                if path != CHECKOUT_PATH:
                    return self._answer(404, "not found")
                data, signature = form.get("data", [""])[0], form.get("signature", [""])[0]
                status, text = stand_in.accept_checkout(data, signature)
                self._answer(status, text)

            def _answer(self, status, text):
                body = text.encode("utf-8")
                self.send_response(status)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        return Handler

    def accept_checkout(self, data: str, signature: str) -> tuple[int, str]:
        if not data or sign(self.private_key, data) != signature:
            return 400, "<h1>Помилка підпису</h1>"  # LiqPay refuses a checkout signed with another key
        params = json.loads(base64.b64decode(data))
        if params.get("public_key") != self.public_key:
            return 400, "<h1>Невідомий public_key</h1>"
        self.checkouts.append(params)
        self.orders[str(params["order_id"])] = params
        return 200, f"<h1>LiqPay checkout</h1><p>{params['description']}</p><p>{params['amount']} UAH</p>"

    def payload(self, order: dict, status: str) -> dict:
        """The callback's JSON as LiqPay fills it (the fields a merchant reads, and some it ignores)."""
        now = int(datetime.now().timestamp() * 1000)
        payload = {"version": 3, "action": order.get("action", "pay"), "type": "buy", "paytype": "card",
                   "public_key": self.public_key, "acq_id": 414963, "order_id": order["order_id"],
                   "liqpay_order_id": f"STANDIN{now}", "description": order.get("description", ""),
                   "sender_card_mask2": "414962*15", "sender_card_bank": "pb", "sender_card_type": "visa",
                   "sender_card_country": 804, "amount": float(order["amount"]), "currency": order.get("currency", "UAH"),
                   "sender_commission": 0.0, "receiver_commission": round(float(order["amount"]) * 0.015, 2),
                   "agent_commission": 0.0, "amount_debit": float(order["amount"]), "currency_debit": "UAH",
                   "is_3ds": False, "language": order.get("language", "uk"), "create_date": now, "end_date": now,
                   "transaction_id": next(self._payment_ids), "payment_id": next(self._payment_ids),
                   "status": status}
        if status in ("failure", "error"):
            payload.update(err_code="limit", err_description="Перевищено ліміт картки")
        return payload

    def pay(self, order_id: str, status: str = "success", *, private_key: str | None = None,
            server_url: str | None = None) -> tuple[int, str]:
        """POST the server callback for an accepted checkout; returns the merchant's HTTP status and body."""
        order = self.orders[order_id]
        data = base64.b64encode(json.dumps(self.payload(order, status)).encode("utf-8")).decode("ascii")
        body = urllib.parse.urlencode({"data": data, "signature": sign(private_key or self.private_key, data)})
        request = urllib.request.Request(server_url or order["server_url"], data=body.encode(), method="POST",
                                         headers={"Content-Type": "application/x-www-form-urlencoded"})
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, response.read().decode("utf-8")
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode("utf-8")

    def callback(self, order: dict, status: str, *, private_key: str | None = None) -> tuple[int, dict]:
        """The callback for an order dict (as in ``checkouts``), with the merchant's JSON answer decoded."""
        self.orders.setdefault(str(order["order_id"]), order)
        code, text = self.pay(str(order["order_id"]), status, private_key=private_key)
        return code, json.loads(text)

    def close(self):
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
