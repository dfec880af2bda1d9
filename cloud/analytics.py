"""Analytics for the board, the city council and the regulator (НКРЕКП): payments by channel and day,
collection rate, consumption dynamics and averages, revenue structure, and a summary by consumer category.
All from the ledger, invoices and payments of one organisation.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from cloud.models import Account, Invoice, LedgerEntry, Payment
from cloud.site_balance import period_bounds

ZERO = Decimal("0.00")


def payments_by_channel_and_day(db: Session, org_id: int, period: str) -> list[tuple[str, str, Decimal, int]]:
    """(day, channel, amount, count) of money in during the period."""
    start, end = period_bounds(period)
    rows = db.execute(
        select(Payment.booked, Payment.channel, func.sum(Payment.amount), func.count())
        .where(Payment.org_id == org_id, Payment.booked >= start.date(), Payment.booked < end.date())
        .group_by(Payment.booked, Payment.channel).order_by(Payment.booked, Payment.channel)
    ).all()
    return [(day.isoformat(), channel, Decimal(amount).quantize(ZERO), count) for day, channel, amount, count in rows]


@dataclass(frozen=True)
class Collection:
    accrued: Decimal
    paid: Decimal

    @property
    def rate_pct(self) -> Decimal:
        if not self.accrued:
            return Decimal("0.0")
        return (self.paid * 100 / self.accrued).quantize(Decimal("0.1"), ROUND_HALF_UP)


def collection(db: Session, org_id: int, period: str) -> Collection:
    """Accrued in the period (charges less benefits and subsidies) against what was paid in it."""
    def total(kinds):
        return Decimal(db.scalar(select(func.coalesce(func.sum(LedgerEntry.amount), 0)).where(
            LedgerEntry.org_id == org_id, LedgerEntry.period == period, LedgerEntry.kind.in_(kinds))) or 0)

    return Collection(total(("charge", "benefit", "subsidy", "adjustment")).quantize(ZERO),
                      (-total(("payment",))).quantize(ZERO))


def consumption_dynamics(db: Session, org_id: int, last: int = 12) -> list[tuple[str, Decimal, int, Decimal]]:
    """(period, total kWh, invoices, average kWh per account) for the last ``last`` billed periods."""
    rows = db.execute(
        select(Invoice.period, func.sum(Invoice.quantity_kwh), func.count())
        .where(Invoice.org_id == org_id, Invoice.status == "issued").group_by(Invoice.period)
        .order_by(Invoice.period.desc()).limit(last)
    ).all()
    return [(period, Decimal(kwh), count, (Decimal(kwh) / count).quantize(Decimal("0.1"), ROUND_HALF_UP))
            for period, kwh, count in reversed(rows)]


def revenue_structure(db: Session, org_id: int, period: str) -> dict[str, Decimal]:
    """What the period's accrual is made of: energy, fees, and the credits (benefits, subsidies, export)."""
    rows = db.execute(select(Invoice.lines).where(Invoice.org_id == org_id, Invoice.period == period,
                                                  Invoice.status == "issued")).scalars()
    structure: dict[str, Decimal] = {}
    for lines in rows:
        for line in lines:
            structure[line["kind"]] = structure.get(line["kind"], ZERO) + Decimal(line["amount"])
    return dict(sorted(structure.items()))


def regulator_summary(db: Session, org_id: int, period: str) -> list[dict]:
    """By consumer category: accounts, volume (kWh), accrued, paid, debt at the end of the period."""
    entries = LedgerEntry
    rows = db.execute(
        select(Account.category, func.count(func.distinct(Account.id)),
               func.coalesce(func.sum(case((entries.kind == "charge", entries.amount), else_=0)), 0))
        .select_from(Account).outerjoin(entries, (entries.account_id == Account.id) & (entries.period == period))
        .where(Account.org_id == org_id).group_by(Account.category)
    ).all()
    volume = dict(db.execute(select(Account.category, func.sum(Invoice.quantity_kwh)).join(
        Invoice, Invoice.account_id == Account.id).where(Invoice.org_id == org_id, Invoice.period == period,
                                                          Invoice.status == "issued").group_by(Account.category)).all())
    paid = dict(db.execute(select(Account.category, -func.sum(entries.amount)).join(
        entries, entries.account_id == Account.id).where(entries.org_id == org_id, entries.period == period,
                                                           entries.kind == "payment").group_by(Account.category)).all())
    debt = dict(db.execute(select(Account.category, func.sum(entries.amount)).join(
        entries, entries.account_id == Account.id).where(entries.org_id == org_id, entries.period <= period)
        .group_by(Account.category)).all())
    return [{"category": category, "accounts": accounts, "volume_kwh": Decimal(volume.get(category) or 0),
             "accrued_uah": Decimal(accrued).quantize(ZERO), "paid_uah": Decimal(paid.get(category) or 0).quantize(ZERO),
             "debt_uah": max(Decimal(debt.get(category) or 0), ZERO).quantize(ZERO)}
            for category, accounts, accrued in rows]
