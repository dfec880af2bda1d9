"""An account's ledger (особовий рахунок): its balance is the sum of its entries, never a stored figure."""

from __future__ import annotations

from decimal import Decimal

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from cloud.models import LedgerEntry


def account_balance(db: Session, account_id: int) -> Decimal:
    """The account's balance: the sum of its ledger (positive = debt, negative = prepaid)."""
    return Decimal(db.scalar(select(func.coalesce(func.sum(LedgerEntry.amount), 0))
                             .where(LedgerEntry.account_id == account_id)) or 0)
