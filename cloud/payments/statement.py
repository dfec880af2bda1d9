"""One incoming payment as a bank statement gives it, whatever the format; the error a broken file gets;
and the small interface every statement importer (camt.053, CSV mapping, …) implements.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Protocol


class StatementError(ValueError):
    """A statement that cannot be imported: which file, where (line/column or element path) and why."""

    def __init__(self, filename: str, where: str, reason: str):
        super().__init__(f"{filename}: {where}: {reason}")
        self.filename, self.where, self.reason = filename, where, reason


IN, OUT, REVERSAL = "in", "out", "reversal"


@dataclass(frozen=True, slots=True)
class StatementTransaction:
    """One booked movement; an incoming (credit) payment unless ``direction`` says otherwise.

    ``key`` is stable across re-imports of the same transaction. For a debit (``out``: a refund or the
    organisation's own payment; ``reversal``: the bank took a credit back) the payer fields name the
    counterpart — whoever got the money.
    """

    key: str  # dedupe identity: "ref:<bank reference>" or "sha:<hash of the decisive fields>"
    booked: date  # booking date (BookgDt / the CSV date column)
    value_date: date | None
    amount: Decimal  # positive, whole kopecks
    currency: str
    payer: str  # payer's name: ultimate debtor when the bank names one
    payer_iban: str  # without spaces, upper case; "" when unknown
    purpose: str  # призначення платежу, unstructured lines joined
    structured_reference: str = ""  # RmtInf/Strd/CdtrRefInf/Ref, when the payer's bank filled it
    bank_reference: str = ""  # AcctSvcrRef or the CSV reference column
    end_to_end_id: str = ""  # the payer's own id; NOTPROVIDED is dropped
    statement_iban: str = ""  # our account that received the money (Stmt/Acct/Id/IBAN)
    source: str = ""  # where in the file: "line 12" or "Stmt[1]/Ntry[3]/NtryDtls[1]/TxDtls[2]"
    direction: str = IN  # in | out | reversal

    @property
    def reference(self) -> str:
        """The bank's reference (older name, kept for callers that used it)."""
        return self.bank_reference

    @property
    def matching_text(self) -> str:
        """What matching reads: the purpose and the structured reference."""
        if self.structured_reference and self.structured_reference not in self.purpose:
            return f"{self.purpose} {self.structured_reference}".strip()
        return self.purpose


@dataclass(frozen=True)
class StatementContents:
    """A whole statement: payments in, and the debits that may undo some of them (reversals, refunds)."""

    incoming: list[StatementTransaction]
    outgoing: list[StatementTransaction]


class StatementImporter(Protocol):
    """Reads a whole statement file: every incoming payment, or a StatementError and nothing (atomic)."""

    name: str

    def parse(self, data: bytes, filename: str) -> list[StatementTransaction]: ...

    def parse_all(self, data: bytes, filename: str) -> StatementContents: ...


class KeyMaker:
    """Dedupe keys for one file: the bank's reference when there is one, else a hash of the decisive fields.

    Two genuinely identical payments without references (same day, payer, amount, purpose) are told
    apart by their ordinal among identical ones in the file, so neither is lost and re-parsing the
    same file gives the same keys. One reference on two different payments is an error, not a dedupe.
    """

    def __init__(self, filename: str) -> None:
        self.filename = filename
        self._seen: Counter[str] = Counter()
        self._references: dict[str, tuple[str, str]] = {}  # reference → (fingerprint, where)

    def key(self, reference: str, decisive: tuple, where: str) -> str:
        text = "\x1f".join("" if part is None else str(part) for part in decisive)
        if reference:
            earlier = self._references.setdefault(reference, (text, where))
            if earlier[0] != text:
                raise StatementError(self.filename, where, f"bank reference {reference!r} is also on a different "
                                                           f"payment at {earlier[1]}")
            return f"ref:{reference}"
        self._seen[text] += 1
        digest = hashlib.sha256(f"{text}\x1e{self._seen[text]}".encode()).hexdigest()[:40]
        return f"sha:{digest}"


def normalise_iban(text: str) -> str:
    """«UA21 3223 1300 …» → «UA213223130…»: no spaces, upper case."""
    return "".join(text.split()).upper()
