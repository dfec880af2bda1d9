"""Reconciling a parsed statement with an organisation's books, as values: what is new, what is a duplicate,
which account each new payment goes to, and what waits in the unmatched queue (every kopeck in one of them).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from decimal import Decimal

from cloud.payments.matching import AMBIGUOUS, AccountIndex, Match, match_account
from cloud.payments.statement import StatementError, StatementTransaction


@dataclass(frozen=True)
class Reconciled:
    transaction: StatementTransaction
    match: Match


@dataclass
class Reconciliation:
    """The outcome for one statement, in file order.

    ``new_ibans``: payer IBAN → account to remember; ``conflicting_ibans``: IBANs to stop trusting.
    """

    new: list[Reconciled] = field(default_factory=list)  # not imported before: matched or for the queue
    duplicates: list[StatementTransaction] = field(default_factory=list)
    new_ibans: dict[str, str] = field(default_factory=dict)
    conflicting_ibans: set[str] = field(default_factory=set)

    @property
    def matched(self) -> list[Reconciled]:
        return [r for r in self.new if r.match.account is not None]

    @property
    def unmatched(self) -> list[Reconciled]:
        """The unmatched queue: an accountant assigns these by hand."""
        return [r for r in self.new if r.match.account is None]

    @property
    def total(self) -> Decimal:
        """Money new in this statement: Σ matched + Σ unmatched."""
        return sum((r.transaction.amount for r in self.new), Decimal("0.00"))

    def by_account(self) -> dict[str, Decimal]:
        found: dict[str, Decimal] = {}
        for r in self.matched:
            found[r.match.account] = found.get(r.match.account, Decimal("0.00")) + r.transaction.amount
        return found

    def counts(self) -> dict:
        matched = sum(1 for r in self.new if r.match.account is not None)
        return {"transactions": len(self.new) + len(self.duplicates), "imported": len(self.new), "matched": matched,
                "unmatched": len(self.new) - matched, "duplicates": len(self.duplicates), "total_uah": f"{self.total:.2f}"}


def reconcile(transactions: list[StatementTransaction], accounts: AccountIndex,
              known_ibans: Mapping[str, str] | None = None, existing_keys: Collection[str] = (),
              filename: str = "statement", currency: str = "UAH") -> Reconciliation:
    """Sort a statement's payments: duplicates (key seen before or earlier in the file), matched, unmatched.

    A payment in another currency is an error for the whole file (nothing half-applied). Payer IBANs are
    learnt from payments the purpose matched; an IBAN seen paying for two accounts (a paying agent, a parent
    paying for two flats) is never used to match and is reported in ``conflicting_ibans``.
    """
    for tx in transactions:
        if tx.currency != currency:
            raise StatementError(filename, tx.source, f"currency {tx.currency}: only {currency} payments are imported")
    known = dict(known_ibans or {})
    result = Reconciliation()
    fresh: list[tuple[StatementTransaction, Match]] = []
    seen: set[str] = set()
    paid_for: dict[str, set[str]] = {}
    for tx in transactions:  # first pass: duplicates, and what the purpose alone says
        if tx.key in existing_keys or tx.key in seen:
            result.duplicates.append(tx)
            continue
        seen.add(tx.key)
        match = match_account(tx.matching_text, "", accounts)
        fresh.append((tx, match))
        if match.account is not None and tx.payer_iban:
            paid_for.setdefault(tx.payer_iban, set()).add(match.account)
    for iban, found in paid_for.items():
        if len(found) > 1 or (iban in known and known[iban] not in found):
            result.conflicting_ibans.add(iban)
        elif iban not in known:
            result.new_ibans[iban] = next(iter(found))
    usable = {iban: account for iban, account in known.items() if iban not in result.conflicting_ibans}
    for tx, match in fresh:  # second pass: a payer IBAN seen before, for what the purpose left open
        if match.account is None and match.how != AMBIGUOUS and tx.payer_iban in usable:
            match = match_account(tx.matching_text, tx.payer_iban, accounts, usable)
        result.new.append(Reconciled(tx, match))
    return result
