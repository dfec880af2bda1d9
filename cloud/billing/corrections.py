"""Corrections (перерахунки): an issued invoice never changes; a correction is a line on the account's next
invoice — and, when that invoice is issued, its own ledger entry — that refers to the original invoice.

Two kinds: the accountant's correction (recorded with ``record_correction``: an amount, a reason, optionally
the kWh) and the true-up of an estimated invoice, made by the billing run once real readings cover the
estimated month.
"""

from __future__ import annotations

from decimal import Decimal

from sqlalchemy import exists, select
from sqlalchemy.orm import Session

from cloud.audit import audit
from cloud.errors import ExplainedError
from cloud.models import Correction, Invoice, LedgerEntry, Organisation
from shared.money import round_kopecks
from shared.tariffs import Line


class CorrectionError(ExplainedError, ValueError):
    """A correction that cannot be recorded; the message says which invoice and why."""


def record_correction(db: Session, org: Organisation, invoice_number: str, amount: Decimal, reason: str,
                      actor: str, quantity: Decimal = Decimal(0)) -> Correction:
    """Record a correction of the organisation's issued invoice ``invoice_number``; it goes onto the
    account's next invoice. ``amount`` > 0 charges more, < 0 credits; kopecks, no more digits."""
    invoice = db.scalar(select(Invoice).where(Invoice.org_id == org.id, Invoice.number == invoice_number))
    if invoice is None or invoice.status != "issued":
        raise CorrectionError(f"invoice №{invoice_number} is not an issued invoice of {org.name}",
                              "err_correction_no_invoice", invoice=invoice_number, org=org.name)
    if amount == 0:
        raise CorrectionError(f"invoice №{invoice_number}: a correction of 0.00 UAH changes nothing",
                              "err_correction_zero", invoice=invoice_number)
    if round_kopecks(amount) != amount:
        raise CorrectionError(f"invoice №{invoice_number}: {amount} UAH has more than two decimals",
                              "err_correction_kopecks", invoice=invoice_number, amount=amount)
    if not reason.strip():
        raise CorrectionError(f"invoice №{invoice_number}: say why (the reason is printed on the next invoice)",
                              "err_correction_reason", invoice=invoice_number)
    correction = Correction(org_id=org.id, account_id=invoice.account_id, invoice_id=invoice.id, quantity=quantity,
                            amount=amount, reason=reason.strip()[:300], actor=actor)
    db.add(correction)
    db.flush()
    audit(db, org.id, actor, "correction.record", f"invoice:{invoice_number}", None,
          {"amount": f"{amount:.2f}", "quantity": f"{quantity:f}", "reason": correction.reason})
    return correction


def pending_corrections(db: Session, org_id: int, account_ids: set[int]) -> dict[int, list[tuple[Correction, str]]]:
    """Corrections not yet on an issued invoice, per account, with the corrected invoice's number."""
    found: dict[int, list[tuple[Correction, str]]] = {}
    rows = db.execute(
        select(Correction, Invoice.number, Invoice.period).join(Invoice, Invoice.id == Correction.invoice_id)
        .where(Correction.org_id == org_id, Correction.applied_invoice_id.is_(None)).order_by(Correction.id))
    for correction, number, period in rows:
        if correction.account_id in account_ids:
            found.setdefault(correction.account_id, []).append((correction, f"{number} за {period}"))
    return found


def correction_line(correction: Correction, refers: str) -> tuple[Line, dict]:
    """The invoice line of a correction and what it refers to (kept in the line's payload)."""
    quantity = Decimal(correction.quantity or 0)
    line = Line("correction", f"перерахунок за рахунком №{refers}: {correction.reason}",
                quantity if quantity else Decimal(1), "кВт·год" if quantity else "",
                (correction.amount / quantity).normalize() if quantity else correction.amount, correction.amount)
    return line, {"refers_to": correction.invoice_id, "correction_id": correction.id}


def estimated_invoices(db: Session, org_id: int, account_ids: set[int], period: str) -> dict[int, list[Invoice]]:
    """Issued estimated invoices before ``period`` not yet trued up, per account, oldest first."""
    trued = exists().where(LedgerEntry.corrects_invoice_id == Invoice.id, LedgerEntry.kind == "trueup")
    found: dict[int, list[Invoice]] = {}
    for invoice in db.scalars(select(Invoice).where(
            Invoice.org_id == org_id, Invoice.status == "issued", Invoice.estimated.is_(True),
            Invoice.period < period, ~trued).order_by(Invoice.period)):
        if invoice.account_id in account_ids:
            found.setdefault(invoice.account_id, []).append(invoice)
    return found


RERATED = ("energy", "benefit")  # the kinds of line that depend on the quantity


def trueup_line(estimated: Invoice, actual_kwh: Decimal, rerated: list[Line]) -> tuple[Line, dict]:
    """The difference between the estimated invoice's energy (and benefit) lines and the same lines rated on
    the real consumption: exactly what the estimate over- or under-charged, no kopeck created or lost."""
    billed = sum((Decimal(line["amount"]) for line in estimated.lines if line["kind"] in RERATED), Decimal(0))
    actual = sum((line.amount for line in rerated if line.kind in RERATED), Decimal(0))
    difference = actual - billed
    estimated_kwh = Decimal(estimated.quantity_kwh)
    prices = [line["price"] for line in estimated.lines if line["kind"] == "energy"]
    price = Decimal(prices[0]) if len(prices) == 1 else (difference / (actual_kwh - estimated_kwh)
                                                          if actual_kwh != estimated_kwh else Decimal(0))
    line = Line("trueup", f"уточнення рахунку №{estimated.number} за {estimated.period} (був за оцінкою): "
                f"фактично {actual_kwh:f} кВт·год замість {estimated_kwh:f}",
                actual_kwh - estimated_kwh, "кВт·год", price.normalize(), difference)
    return line, {"refers_to": estimated.id}

