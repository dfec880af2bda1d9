"""LiqPay, the pure part and over real HTTP: a checkout the stand-in accepts, a signed server callback sent to a
small receiver on loopback that verifies it, applies it once per order id, and refuses a forgery."""

from __future__ import annotations

import base64
import hashlib
import json
import threading
import urllib.parse
import urllib.request
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from cloud.payments.liqpay import (
    PENDING,
    CallbackError,
    checkout,
    checkout_link,
    encode_data,
    sign,
    verify_callback,
)
from tests.cloud.payments.liqpay_standin import LiqPayStandIn

PUBLIC, PRIVATE = "sandbox_i000000001", "sandbox_private_key_of_the_cooperative"


def test_the_signature_is_base64_sha1_of_key_data_key():
    # LiqPay's documented construction, computed independently here.

    data = encode_data({"version": 3, "action": "pay", "amount": "1.00"})
    expected = base64.b64encode(hashlib.sha1(f"{PRIVATE}{data}{PRIVATE}".encode()).digest()).decode()
    assert sign(PRIVATE, data) == expected


def test_checkout_form_and_link_carry_the_order():
    fields = checkout(PUBLIC, PRIVATE, "04001-ab12", Decimal("3197.46"), "о/р 04001, рахунок 000001",
                      "https://balans.example/cabinet", "https://balans.example/api/v1/payments/liqpay")
    params = json.loads(base64.b64decode(fields["data"]))
    assert params["amount"] == "3197.46" and params["order_id"] == "04001-ab12" and params["currency"] == "UAH"
    assert fields["signature"] == sign(PRIVATE, fields["data"])
    link = checkout_link(PUBLIC, PRIVATE, "04001-ab12", Decimal("3197.46"), "о/р 04001", "https://r", "https://s")
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(link).query)
    assert query["signature"] == [sign(PRIVATE, query["data"][0])]


def signed(payload: dict, key: str = PRIVATE) -> tuple[str, str]:
    data = encode_data(payload)
    return data, sign(key, data)


@pytest.mark.parametrize(("status", "outcome"), [
    ("success", "paid"), ("sandbox", "paid"), ("failure", "failed"), ("error", "failed"), ("reversed", "reversed"),
    ("wait_secure", "pending"), ("3ds_verify", "pending"), ("processing", "pending"), ("something_new", "unknown"),
])
def test_statuses_read_as_outcomes_for_the_books(status, outcome):
    callback = verify_callback(PRIVATE, *signed({"order_id": "o1", "status": status, "amount": 12.5, "currency": "UAH",
                                                 "public_key": PUBLIC}), public_key=PUBLIC)
    assert callback.outcome == outcome and callback.amount == Decimal("12.5")
    assert callback.idempotency_key == "liqpay:o1" and callback.is_test == (status == "sandbox")
    assert "wait_accept" in PENDING


@pytest.mark.parametrize(("data", "signature", "status", "why"), [
    ("", "x", 400, "both required"),
    (*signed({"order_id": "o1", "status": "success", "amount": 1}, "guessed"), 403, "signature does not match"),
    (signed({"order_id": "o1", "status": "success", "amount": 1})[0] + "AA",
     signed({"order_id": "o1", "status": "success", "amount": 1})[1], 403, "signature does not match"),
    (*signed({"status": "success", "amount": 1}), 400, "malformed"),
    (*signed({"order_id": "o1", "status": "success", "amount": 1, "public_key": "someone_else"}), 403, "public key"),
])
def test_a_bad_callback_is_refused_with_the_http_status_to_answer(data, signature, status, why):
    with pytest.raises(CallbackError) as error:
        verify_callback(PRIVATE, data, signature, public_key=PUBLIC)
    assert error.value.status == status and why in str(error.value)


class Receiver:
    """The smallest merchant: verifies callbacks and books each order once (stands for cloud/api.py)."""

    def __init__(self):
        self.booked: dict[str, Decimal] = {}
        self.reversed: set[str] = set()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                form = urllib.parse.parse_qs(self.rfile.read(int(self.headers["Content-Length"])).decode())
                try:
                    callback = verify_callback(PRIVATE, form.get("data", [""])[0], form.get("signature", [""])[0],
                                               public_key=PUBLIC)
                    status, answer = 200, {"status": receiver.apply(callback)}
                except CallbackError as exc:
                    status, answer = exc.status, {"error": str(exc)}
                body = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/api/v1/payments/liqpay"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def apply(self, callback) -> str:
        key = callback.idempotency_key
        if callback.outcome == "paid":
            if key in self.booked:
                return "duplicate"
            self.booked[key] = callback.amount
            return "paid"
        if callback.outcome == "reversed" and key in self.booked and key not in self.reversed:
            self.reversed.add(key)
            return "reversed"
        return callback.outcome

    def close(self):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


@pytest.fixture
def receiver():
    found = Receiver()
    yield found
    found.close()


def test_a_real_http_callback_from_the_stand_in_is_verified_and_booked_once(receiver):
    with LiqPayStandIn(PUBLIC, PRIVATE) as liqpay:
        link = checkout_link(PUBLIC, PRIVATE, "04001-ab12", Decimal("3197.46"), "о/р 04001, рахунок 000001",
                             "https://balans.example/cabinet", receiver.url, base_url=liqpay.url)
        with urllib.request.urlopen(link, timeout=10) as page:  # the resident's browser opens the checkout
            assert page.status == 200 and "3197.46" in page.read().decode()
        assert [o["order_id"] for o in liqpay.checkouts] == ["04001-ab12"]

        assert liqpay.pay("04001-ab12", "wait_secure") == (200, '{"status": "pending"}')
        assert liqpay.pay("04001-ab12", "success") == (200, '{"status": "paid"}')
        assert liqpay.pay("04001-ab12", "success") == (200, '{"status": "duplicate"}')  # LiqPay retries
        status, body = liqpay.pay("04001-ab12", "success", private_key="guessed")
        assert status == 403 and "signature does not match" in body
        assert liqpay.pay("04001-ab12", "reversed") == (200, '{"status": "reversed"}')
    assert receiver.booked == {"liqpay:04001-ab12": Decimal("3197.46")} and receiver.reversed == {"liqpay:04001-ab12"}


def test_the_stand_in_refuses_a_checkout_signed_with_another_key():
    with LiqPayStandIn(PUBLIC, PRIVATE) as liqpay:
        fields = checkout(PUBLIC, "not-the-key", "o2", Decimal("10.00"), "x", "https://r", "https://s")
        request = urllib.request.Request(liqpay.url, data=urllib.parse.urlencode(fields).encode(), method="POST")
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=10)
        assert refused.value.code == 400 and liqpay.checkouts == []
