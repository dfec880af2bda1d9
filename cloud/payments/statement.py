"""One incoming payment as a bank statement gives it, whatever the format; and the error a broken file gets."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import date
from decimal import Decimal


class StatementError(ValueError):
    """A statement that cannot be imported; says which file, where (line or element) and why."""

    def __init__(self, filename: str, where: str, reason: str):
        super().__init__(f"{filename}: {where}: {reason}")
        self.filename, self.where, self.reason = filename, where, reason


@dataclass(frozen=True)
class StatementTransaction:
    booked: date
    amount: Decimal
    currency: str
    payer: str
    payer_iban: str
    purpose: str
    reference: str  # the bank's own reference, when it gives one
    source: str  # where in the file: "line 12" or "Ntry[3]/TxDtls[2]"

    @property
    def key(self) -> str:
        """Stable identity for dedupe: the bank's reference, else a hash of what decides the payment."""
        if self.reference:
            return f"ref:{self.reference}"
        decisive = "|".join([self.booked.isoformat(), f"{self.amount:.2f}", self.currency, self.payer,
                             self.payer_iban, self.purpose, self.source])
        return "hash:" + hashlib.sha256(decisive.encode()).hexdigest()[:32]
