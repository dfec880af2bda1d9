"""What a billing run drafts before anything is stored: one invoice per account, its lines as printed, and —
kept as the lines are added, so nothing is parsed back — the invoice's total and its ledger entries.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from shared.tariffs import Line

# The ledger entry a line becomes when the invoice is issued; a "carry" line (kWh carried forward) is none.
LEDGER_KIND = {"energy": "charge", "fee": "charge", "benefit": "benefit", "subsidy": "subsidy",
               "export_credit": "adjustment", "correction": "correction", "trueup": "trueup"}


@dataclass(slots=True)
class DraftInvoice:
    """One account's invoice of the run."""

    account_id: int
    quantity: Decimal
    start: Decimal | None
    end: Decimal | None
    estimated: bool
    meters: list[dict] | None
    lines: list[dict] = field(default_factory=list)
    total: Decimal = Decimal(0)
    # One ledger entry per kind of line: the charge, and benefits, subsidies, export credits apart, so the
    # оборотно-сальдова відомість shows each in its column; a correction or a true-up apart per invoice it
    # refers to (the key's second part).
    ledger: dict[tuple[str, int | None], Decimal] = field(default_factory=dict)
    corrections: list[int] = field(default_factory=list)  # the corrections this invoice applies

    def add(self, lines: list[Line], **extra) -> None:
        """Append ``lines`` to the invoice, each with ``extra`` in its payload (the meter, what it refers to)."""
        refers_to = extra.get("refers_to")
        for line in lines:
            kind = LEDGER_KIND.get(line.kind)
            if kind is None:
                if line.kind == "carry":  # kWh carried forward: no money
                    self.lines.append({**line.as_json(), **extra})
                    continue
                # The total is the sum of the ledger entries: a kind of line without one would drift apart.
                raise ValueError(f"invoice line of kind {line.kind!r} has no ledger entry kind")
            self.lines.append({**line.as_json(), **extra})
            self.total += line.amount
            key = (kind, refers_to)
            self.ledger[key] = self.ledger.get(key, Decimal(0)) + line.amount
        if extra.get("correction_id"):
            self.corrections.append(extra["correction_id"])


@dataclass
class Drafted:
    """What a kind of run (electricity or heat) produced: one invoice per account, before the run row exists."""

    invoices: list[DraftInvoice] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    summary: dict = field(default_factory=dict)
