"""Money that went back: a bank reversal, a refund to the payer, a LiqPay «reversed», an accountant's storno.

A reversal undoes one whole payment, at most once: the payment stays on record, a positive ledger entry of the
same kind («payment») takes the money off the account again (so «paid» in the reports is net of reversals), and
the invoices the payment paid owe it again (cloud/payments/book.py). A reversal of a payment still in the
unmatched queue only takes it out of the queue — it was never on an account. A refund may also send back part
of a payment — an overpayment returned to the payer — once or several times, never more than the payment.

Which payment a bank debit undoes is decided, never guessed, in this order: the same bank reference, the same
EndToEndId, the payer's IBAN with the same amount (one candidate only, untouched by any reversal). Then, for a
refund only: when the payee's IBAN is a trusted remembered payer IBAN (``payer_ibans``) and its account's credit
covers the debit, a refund of part of the latest payment from that IBAN with enough of it left. A reversal
(RvslInd) that fits no payment, a refund that fits several, or one to a remembered payer that the rules cannot
place is kept as *unlinked* for an accountant; a debit to any other IBAN is the organisation's own payment (not
stored).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from cloud.audit import audit
from cloud.billing.ledger import account_balance
from cloud.errors import ExplainedError
from cloud.models import LedgerEntry, PayerIban, Payment, PaymentReversal
from cloud.payments.statement import REVERSAL, StatementTransaction

KIND_WORDS = {"reversal": "Сторно банком", "refund": "Повернення платнику", "card": "Повернення LiqPay",
              "hand": "Сторно бухгалтером"}


class ReversalError(ExplainedError, ValueError):
    """A reversal the books cannot take: says which payment and why (``code``/``params`` for a page)."""


@dataclass
class ReversalOutcome:
    reversed: list[PaymentReversal] = field(default_factory=list)  # linked to their payment and applied
    unlinked: list[PaymentReversal] = field(default_factory=list)  # bank reversals waiting for an accountant
    duplicates: int = 0
    outgoing: int = 0  # debits that undo nothing: the organisation's own payments
    partial: int = 0  # of ``reversed``: refunds of part of a payment

    @property
    def amount(self) -> Decimal:
        return sum((r.amount for r in self.reversed), Decimal("0.00"))


def is_reversed(db: Session, payment: Payment) -> bool:
    return db.scalar(select(PaymentReversal.id).where(PaymentReversal.payment_id == payment.id)) is not None


def reversed_amount(db: Session, payment: Payment) -> Decimal:
    """How much of the payment has gone back so far (whole reversals and partial refunds)."""
    return Decimal(db.scalar(select(func.coalesce(func.sum(PaymentReversal.amount), 0))
                             .where(PaymentReversal.payment_id == payment.id)))


def not_reversed():
    """A WHERE clause: the payment has not been reversed."""
    return ~select(PaymentReversal.id).where(PaymentReversal.payment_id == Payment.id).exists()


def apply_reversal(db: Session, reversal: PaymentReversal, payment: Payment, actor: str) -> PaymentReversal:
    """Link ``reversal`` to ``payment`` and take the money off the account (when the payment was on one)."""
    if payment.org_id != reversal.org_id:
        raise ReversalError(f"payment {payment.id} belongs to another organisation", "err_no_payment", payment=payment.id)
    # One reversal of a payment at a time (a LiqPay «reversed» racing an accountant's storno, say): the row lock
    # makes the second wait and then see the first (PostgreSQL); SQLite's single writer refuses the stale one.
    db.execute(select(Payment.id).where(Payment.id == payment.id).with_for_update())
    already = reversed_amount(db, payment)
    if already >= payment.amount:
        raise ReversalError(f"payment {payment.id} is already reversed", "err_already_reversed", payment=payment.id)
    partial = reversal.amount != payment.amount or already > 0
    if partial and (reversal.kind != "refund" or payment.account_id is None):
        raise ReversalError(f"payment {payment.id} is {payment.amount:.2f} UAH, the reversal {reversal.amount:.2f}: "
                            "only a whole payment is reversed", "err_reversal_amount", payment=payment.id,
                            amount=payment.amount, reversal=reversal.amount)
    if partial and not Decimal(0) < reversal.amount <= payment.amount - already:
        raise ReversalError(f"payment {payment.id} has {payment.amount - already:.2f} UAH left to refund, the refund "
                            f"is {reversal.amount:.2f}", "err_reversal_amount", payment=payment.id,
                            amount=payment.amount - already, reversal=reversal.amount)
    reversal.payment_id = payment.id
    db.add(reversal)
    db.flush()
    if payment.account_id is not None:
        part = f"частина ({reversal.amount:.2f} грн) оплати" if partial else "оплата"
        db.add(LedgerEntry(org_id=payment.org_id, account_id=payment.account_id, kind="payment",
                           amount=reversal.amount, period=reversal.booked.strftime("%Y-%m"),
                           memo=f"{KIND_WORDS.get(reversal.kind, 'Сторно')} {reversal.booked:%d.%m.%Y}: {part} "
                                f"{payment.booked:%d.%m.%Y} ({payment.channel}) {payment.payer}"[:300]))
    audit(db, payment.org_id, actor, "payment.refund_part" if partial else "payment.reverse", f"payment:{payment.id}",
          {"amount": f"{payment.amount:.2f}", "reversed_before": f"{already:.2f}", "account_id": payment.account_id},
          {"reversal": reversal.id, "kind": reversal.kind, "amount": f"{reversal.amount:.2f}",
           "booked": reversal.booked.isoformat(), "key": reversal.key})
    return reversal


def refunded_payment(db: Session, payer: PayerIban, tx: StatementTransaction) -> Payment | None:
    """The payment a refund to ``payer`` sends part of back, when the rules can tell: the IBAN is trusted for one
    account (``payer_ibans``, as matching uses it), that account's credit covers the refund, and the latest
    payment from that IBAN has enough left."""
    org_id = payer.org_id
    if payer.conflict or -account_balance(db, payer.account_id) < tx.amount:
        return None  # several accounts, or more than the account has to give back: an accountant decides
    for payment in db.scalars(select(Payment).where(
            Payment.org_id == org_id, Payment.account_id == payer.account_id, Payment.payer_iban == tx.payer_iban,
            Payment.channel == "bank", Payment.booked <= tx.booked).order_by(Payment.booked.desc(), Payment.id.desc())):
        if payment.amount - reversed_amount(db, payment) >= tx.amount:
            return payment
    return None


def _payer(db: Session, org_id: int, iban: str) -> PayerIban | None:
    if not iban:
        return None
    return db.scalar(select(PayerIban).where(PayerIban.org_id == org_id, PayerIban.iban == iban))


def reverse_payment(db: Session, payment: Payment, kind: str, key: str, booked: date, actor: str,
                    purpose: str = "", statement_id: int | None = None) -> PaymentReversal | None:
    """Reverse one payment; the same ``key`` again changes nothing and returns None."""
    existing = db.scalar(select(PaymentReversal).where(PaymentReversal.org_id == payment.org_id,
                                                       PaymentReversal.key == key))
    if existing is not None:
        return None
    reversal = PaymentReversal(org_id=payment.org_id, key=key, kind=kind, booked=booked, amount=payment.amount,
                               counterpart=payment.payer[:200], counterpart_iban=payment.payer_iban[:34],
                               purpose=purpose[:500], statement_id=statement_id)
    return apply_reversal(db, reversal, payment, actor)


def original_payments(db: Session, org_id: int, tx: StatementTransaction) -> list[Payment]:
    """The payments a debit could undo, by the first rule that finds any (reference, EndToEndId, IBAN + amount)."""
    base = select(Payment).where(Payment.org_id == org_id, Payment.amount == tx.amount, Payment.channel == "bank",
                                 Payment.booked <= tx.booked, not_reversed()).order_by(Payment.booked, Payment.id)
    rules = []
    if tx.bank_reference:
        rules.append(Payment.key == f"ref:{tx.bank_reference}")
    if tx.end_to_end_id:
        rules.append(Payment.end_to_end_id == tx.end_to_end_id)
    if tx.payer_iban:
        rules.append(Payment.payer_iban == tx.payer_iban)
    for rule in rules:
        found = db.scalars(base.where(rule)).all()
        if found:
            return list(found)
    return []


def candidates_for(db: Session, reversal: PaymentReversal, limit: int = 20) -> list[Payment]:
    """Payments an accountant may link an unlinked reversal to: same amount, not reversed, booked before it."""
    query = select(Payment).where(Payment.org_id == reversal.org_id, Payment.amount == reversal.amount,
                                  Payment.channel == "bank", Payment.booked <= reversal.booked, not_reversed())
    if reversal.counterpart_iban:
        same_iban = db.scalars(query.where(Payment.payer_iban == reversal.counterpart_iban)
                               .order_by(Payment.booked.desc()).limit(limit)).all()
        if same_iban:
            return list(same_iban)
    return list(db.scalars(query.order_by(Payment.booked.desc(), Payment.id.desc()).limit(limit)))


def apply_statement_debits(db: Session, org_id: int, debits: list[StatementTransaction], statement_id: int,
                           actor: str) -> ReversalOutcome:
    """A statement's debits against the books: reversals and refunds undo their payment, once."""
    outcome = ReversalOutcome()
    keys = [tx.key for tx in debits]
    seen = set(db.scalars(select(PaymentReversal.key).where(PaymentReversal.org_id == org_id,
                                                            PaymentReversal.key.in_(keys)))) if keys else set()
    for tx in debits:
        if tx.key in seen:
            outcome.duplicates += 1
            continue
        seen.add(tx.key)
        kind = "reversal" if tx.direction == REVERSAL else "refund"
        found = original_payments(db, org_id, tx)
        reversal = PaymentReversal(org_id=org_id, key=tx.key, kind=kind, booked=tx.booked, amount=tx.amount,
                                   counterpart=tx.payer[:200], counterpart_iban=tx.payer_iban[:34],
                                   purpose=tx.purpose[:500], statement_id=statement_id)
        payer = _payer(db, org_id, tx.payer_iban) if not found and kind == "refund" else None
        part = refunded_payment(db, payer, tx) if payer is not None else None
        if len(found) == 1:
            outcome.reversed.append(apply_reversal(db, reversal, found[0], actor))
        elif part is not None:
            outcome.reversed.append(apply_reversal(db, reversal, part, actor))
            outcome.partial += reversal.amount != part.amount
        elif found or kind == "reversal" or payer is not None:
            # The bank took money back, refunded a payer who paid that amount more than once, or sent one of our
            # payers money the rules cannot place: an accountant says which payment it was.
            db.add(reversal)
            outcome.unlinked.append(reversal)
        else:
            outcome.outgoing += 1  # a debit to no payer of ours: the organisation's own payment
    db.flush()
    return outcome


def unlinked_reversals(db: Session, org_id: int) -> list[PaymentReversal]:
    return list(db.scalars(select(PaymentReversal).where(PaymentReversal.org_id == org_id,
                                                         PaymentReversal.payment_id.is_(None))
                           .order_by(PaymentReversal.booked, PaymentReversal.id)))
