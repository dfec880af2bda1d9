"""The NBU payment QR code, format 002 (НБУ): the payload a Ukrainian banking app reads to pre-fill a payment.

13 fields, each ended by LF: BCD, 002, 1 (UTF-8), UCT, BIC (empty), recipient (≤ 70), IBAN,
amount as UAH1250.40, ЄДРПОУ (8 digits) or РНОКПП (10), two empty, purpose (≤ 140), display text.
The UTF-8 bytes are Base64URL-encoded without padding and appended to https://bank.gov.ua/qr/.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from decimal import Decimal

from shared.money import round_kopecks

BASE_URL = "https://bank.gov.ua/qr/"


class QrError(ValueError):
    """A payment detail that cannot go into the QR code; the message names the field."""


@dataclass(frozen=True)
class PaymentRequest:
    recipient: str
    iban: str
    amount: Decimal | None
    code: str  # ЄДРПОУ (8 digits) or РНОКПП (10 digits)
    purpose: str
    display: str = ""


def payload(request: PaymentRequest) -> str:
    """The 13-field text (each field ended by LF)."""
    recipient = request.recipient.strip()
    if not recipient or len(recipient) > 70:
        raise QrError(f"recipient: 1–70 characters, got {len(recipient)}")
    iban = request.iban.replace(" ", "").upper()
    if not (len(iban) == 29 and iban.startswith("UA") and iban[2:].isdigit()):
        raise QrError(f"iban: a Ukrainian IBAN is UA + 27 digits, got {request.iban!r}")
    if not (request.code.isdigit() and len(request.code) in (8, 10)):
        raise QrError(f"code: ЄДРПОУ is 8 digits, РНОКПП 10, got {request.code!r}")
    purpose = " ".join(request.purpose.split())
    if not purpose or len(purpose) > 140:
        raise QrError(f"purpose: 1–140 characters, got {len(purpose)}")
    if len(request.display) > 70:
        raise QrError("display: at most 70 characters")
    amount = ""
    if request.amount is not None:
        if request.amount <= 0:
            raise QrError(f"amount: must be positive, got {request.amount}")
        amount = f"UAH{round_kopecks(request.amount):.2f}"
    fields = ["BCD", "002", "1", "UCT", "", recipient, iban, amount, request.code, "", "", purpose,
              request.display]
    return "".join(f"{field}\n" for field in fields)


def payment_url(request: PaymentRequest) -> str:
    encoded = base64.urlsafe_b64encode(payload(request).encode("utf-8")).decode("ascii").rstrip("=")
    return BASE_URL + encoded


def decode_url(url: str) -> list[str]:
    """The fields back out of a payment URL (for tests and for checking a printed code)."""
    if not url.startswith(BASE_URL):
        raise QrError("not an NBU payment URL")
    data = url[len(BASE_URL):]
    text = base64.urlsafe_b64decode(data + "=" * (-len(data) % 4)).decode("utf-8")
    return text.split("\n")[:-1]
