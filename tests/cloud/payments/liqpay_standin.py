"""A local stand-in for LiqPay: takes a checkout like the real service, and posts a signed server callback."""

from __future__ import annotations

import base64
import json
import threading
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from cloud.payments.liqpay import sign


class LiqPayStandIn:
    """Knows the merchant's keys, as LiqPay does; checks the checkout's signature like the real one."""

    def __init__(self, public_key: str, private_key: str):
        self.public_key, self.private_key = public_key, private_key
        self.checkouts: list[dict] = []
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                length = int(self.headers.get("Content-Length", 0))
                form = urllib.parse.parse_qs(self.rfile.read(length).decode())
                data, signature = form["data"][0], form["signature"][0]
                ok = sign(stand_in.private_key, data) == signature
                if ok:
                    stand_in.checkouts.append(json.loads(base64.b64decode(data)))
                self.send_response(200 if ok else 400)
                self.end_headers()
                self.wfile.write(b"checkout page" if ok else b"bad signature")

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/api/3/checkout"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def callback(self, order: dict, status: str, *, private_key: str | None = None) -> tuple[int, dict]:
        """POST the server callback for a checkout to its server_url, signed with the merchant's key."""
        payload = {"public_key": self.public_key, "order_id": order["order_id"], "amount": float(order["amount"]),
                   "currency": "UAH", "status": status, "payment_id": 1234567, "action": "pay"}
        data = base64.b64encode(json.dumps(payload).encode()).decode()
        body = urllib.parse.urlencode({"data": data, "signature": sign(private_key or self.private_key, data)})
        request = urllib.request.Request(order["server_url"], data=body.encode(), method="POST",
                                         headers={"Content-Type": "application/x-www-form-urlencoded"})
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read())

    def close(self):
        self.server.shutdown()
