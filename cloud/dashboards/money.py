"""The money page's figures by month: billed against purchased, cost recovery and the break-even coefficient
(the billing runs' own summaries, cloud/billing/run.py), the collection rate (cloud/reports/analytics.py) and
the debt by age (cloud/reports/accounting.py) — each computed where the reports compute it, only gathered here."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import ROUND_HALF_UP, Decimal

from sqlalchemy import select
from sqlalchemy.orm import Session

from cloud.dashboards.series import chart
from cloud.dashboards.series import naive_day_bounds as day_start
from cloud.models import BillingRun, Organisation
from cloud.payments.allocation import BUCKETS
from cloud.reports.accounting import as_of, debtors
from cloud.reports.analytics import collection_report
from shared.calendar import period_days

ZERO = Decimal("0.00")


@dataclass(frozen=True)
class MonthMoney:
    period: str
    purchase_uah: Decimal | None
    billed_uah: Decimal
    purchase_kwh: Decimal
    billed_kwh: Decimal
    cost_recovery_pct: Decimal | None
    break_even: Decimal | None
    collection_pct: Decimal | None


def _dec(value) -> Decimal | None:
    return None if value in (None, "") else Decimal(str(value))


def money_by_month(db: Session, org: Organisation, period: str, today: date, last: int = 12) -> list[MonthMoney]:
    """The last ``last`` months up to ``period`` that had a billing run, every site's runs summed. With one
    site the figures are its run's own; with several, recovery and break-even come from the sums."""
    runs = db.scalars(select(BillingRun).where(BillingRun.org_id == org.id, BillingRun.period <= period)
                      .order_by(BillingRun.period)).all()
    by_period: dict[str, list[BillingRun]] = {}
    for run in runs:
        by_period.setdefault(run.period, []).append(run)
    rates = {row[0]: row[-1] for row in collection_report(db, org, period, today, "uk", last).rows}
    found = []
    for p in sorted(by_period)[-last:]:
        summaries = [r.summary or {} for r in by_period[p]]
        billed = sum((_dec(s.get("distributed_uah")) or ZERO for s in summaries), ZERO)
        purchases = [_dec(s.get("purchase_uah")) for s in summaries]
        purchase = sum((x for x in purchases if x is not None), ZERO) if any(x is not None for x in purchases) \
            else None
        kwh_in = sum((_dec(s.get("purchase_kwh")) or ZERO for s in summaries), Decimal(0))
        kwh_out = sum((_dec(s.get("distributed_kwh")) or ZERO for s in summaries), Decimal(0))
        if len(summaries) == 1:
            recovery, even = _dec(summaries[0].get("cost_recovery_pct")), _dec(summaries[0].get("break_even_coefficient"))
        else:
            recovery = (billed * 100 / purchase).quantize(Decimal("0.1"), ROUND_HALF_UP) if purchase else None
            even = (kwh_in / kwh_out).quantize(Decimal("0.0001"), ROUND_HALF_UP) if kwh_out else None
        found.append(MonthMoney(p, purchase, billed, kwh_in, kwh_out, recovery, even, rates.get(p)))
    return found


def debt_ageing(db: Session, org: Organisation, period: str, today: date) -> dict[str, Decimal]:
    """Σ of every debtor's debt by days past due (0-30, 31-60, 61-90, 90+) at the period's end."""
    totals = dict.fromkeys(BUCKETS, ZERO)
    for debtor in debtors(db, org.id, as_of(period, today), period):
        for bucket in BUCKETS:
            totals[bucket] += debtor.buckets[bucket]
    return {b: v.quantize(ZERO) for b, v in totals.items()}


def _f(value: Decimal | None) -> float | None:
    return None if value is None else float(value)


def _month_start(period: str):
    return day_start(period_days(period)[0])[0]


def money_chart(months: list[MonthMoney], words: dict[str, str]) -> dict:
    return chart([_month_start(m.period) for m in months], [
        (words["purchase_uah"], "UAH", [_f(m.purchase_uah) for m in months]),
        (words["billed_uah"], "UAH", [_f(m.billed_uah) for m in months]),
    ], [], 86400 * 30, "bars")


def recovery_chart(months: list[MonthMoney], words: dict[str, str]) -> dict:
    return chart([_month_start(m.period) for m in months], [
        (words["cost_recovery"], "%", [_f(m.cost_recovery_pct) for m in months]),
        (words["collection_rate"], "%", [_f(m.collection_pct) for m in months]),
        (words["break_even"], "×", [_f(m.break_even) for m in months]),
    ], [], 86400 * 30)
