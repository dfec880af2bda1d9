"""Analytics for the board, the city council and the regulator (НКРЕКП): payments by channel and day,
collection rate, consumption dynamics and averages, revenue structure. All from the ledger, invoices and
payments of one organisation; each also as a Report (cloud.reports.export) for the page, CSV, XLSX and CLI.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import ROUND_HALF_UP, Decimal

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from cloud.i18n import N_
from cloud.models import Invoice, LedgerEntry, Organisation, Payment, PaymentReversal
from cloud.reports.accounting import KNOWN_KINDS, in_unit, period_subtitle, volume_unit
from cloud.reports.accounting import (
    regulator_summary as regulator_summary,  # built from the turnover sheet; kept here too
)
from cloud.reports.export import Column, Report, money, totals_row, word
from shared.calendar import period_days

ZERO = Decimal("0.00")
TENTH = Decimal("0.1")
CHANNELS = ("bank", "card", "cash")


def _cents(value) -> Decimal:
    return Decimal(value or 0).quantize(ZERO)


def _pct(part: Decimal, whole: Decimal) -> Decimal | None:
    return (part * 100 / whole).quantize(TENTH, ROUND_HALF_UP) if whole > 0 else None


def _subtitle(org: Organisation, period: str, lang: str) -> str:
    return period_subtitle(org.name, period, lang)


def payments_by_channel_and_day(db: Session, org_id: int, period: str) -> list[tuple[str, str, Decimal, int]]:
    """(day, channel, amount, count) of money in during the period (matched or waiting in the queue)."""
    first, last = period_days(period)
    rows = db.execute(
        select(Payment.booked, Payment.channel, func.sum(Payment.amount), func.count())
        .where(Payment.org_id == org_id, Payment.booked >= first, Payment.booked <= last)
        .group_by(Payment.booked, Payment.channel).order_by(Payment.booked, Payment.channel)
    ).all()
    return [(day.isoformat(), channel, _cents(amount), count) for day, channel, amount, count in rows]


def payments_report(db: Session, org: Organisation, period: str, today: date, lang: str) -> Report:
    """One row per day: the amount by channel, the day's total and count, how much of it is unmatched, and the
    money that went back that day from payments on accounts (reversals, refunds) — so that
    Σ total − Σ unmatched − Σ reversed = the turnover sheet's «paid»."""
    by_day = payments_by_channel_and_day(db, org.id, period)
    first, last = period_days(period)
    unmatched = {d.isoformat(): _cents(a) for d, a in db.execute(
        select(Payment.booked, func.sum(Payment.amount)).where(
            Payment.org_id == org.id, Payment.booked >= first, Payment.booked <= last,
            Payment.account_id.is_(None)).group_by(Payment.booked))}
    reversed_ = {d.isoformat(): _cents(a) for d, a in db.execute(
        select(PaymentReversal.booked, func.sum(PaymentReversal.amount))
        .join(Payment, Payment.id == PaymentReversal.payment_id)
        .where(PaymentReversal.org_id == org.id, PaymentReversal.booked >= first,
               PaymentReversal.booked <= last, Payment.account_id.is_not(None))
        .group_by(PaymentReversal.booked))}
    channels = [*CHANNELS, *sorted({c for _, c, _, _ in by_day} - set(CHANNELS))]
    columns = (Column("day", N_("col_day"), kind="date", width=12),
               *(money(f"channel_{c}", f"channel_{c}") for c in channels),  # the channel's word, «Банк»
               money("total", N_("col_day_total")),
               Column("count", N_("col_payments_count"), places=0, width=10),
               money("unmatched", N_("col_unmatched")),
               money("reversed", N_("col_reversed")))
    days: dict[str, dict] = {day: {"count": 0} for day in reversed_}
    for day, channel, amount, count in by_day:
        row = days.setdefault(day, {"count": 0})
        row[channel] = amount
        row["count"] += count
    rows = [(date.fromisoformat(day), *(v.get(c, ZERO) for c in channels), sum((v.get(c, ZERO) for c in channels),
                                                                               ZERO),
             v["count"], unmatched.get(day, ZERO), reversed_.get(day, ZERO)) for day, v in sorted(days.items())]
    summed = [c.key for c in columns[1:]]
    return Report("payments", word("payments_by_day", lang), _subtitle(org, period, lang), columns, rows,
                  totals_row(columns, rows, word("total", lang), summed), lang, chart=("day", "total"))


@dataclass(frozen=True)
class Collection:
    """What residents were asked to pay in a period (accrued less benefits and subsidies, with recalculations)
    against what they paid in it."""

    accrued: Decimal
    paid: Decimal

    @property
    def rate_pct(self) -> Decimal:
        return _pct(self.paid, self.accrued) or Decimal("0.0")


def _ledger_by_period(db: Session, org_id: int, until: str) -> dict[str, dict[str, Decimal]]:
    totals: dict[str, dict[str, Decimal]] = {}
    for period, kind, amount in db.execute(
            select(LedgerEntry.period, LedgerEntry.kind, func.sum(LedgerEntry.amount))
            .where(LedgerEntry.org_id == org_id, LedgerEntry.period <= until)
            .group_by(LedgerEntry.period, LedgerEntry.kind)):
        kind = kind if kind in KNOWN_KINDS else "other"
        sums = totals.setdefault(period, {})
        sums[kind] = sums.get(kind, ZERO) + _cents(amount)
    return totals


def collection(db: Session, org_id: int, period: str) -> Collection:
    """The period's collection, in the turnover sheet's terms: paid / (accrued + recalculations − benefits −
    subsidies)."""
    sums = _ledger_by_period(db, org_id, period).get(period, {})
    return Collection(sum((v for k, v in sums.items() if k != "payment"), ZERO), -sums.get("payment", ZERO))


COLLECTION_COLUMNS = (
    Column("period", N_("col_period"), width=10),
    money("accrued", N_("col_accrued")),
    money("recalculations", N_("col_recalculations")),
    money("benefits", N_("col_benefits")),
    money("subsidies", N_("col_subsidies")),
    money("to_pay", N_("col_to_pay")),
    money("paid", N_("col_paid")),
    Column("rate_pct", N_("col_rate_pct"), places=1, width=12),
)


def collection_report(db: Session, org: Organisation, period: str, today: date, lang: str,
                      last: int = 12) -> Report:
    """The collection rate of the last ``last`` periods up to ``period``: paid / to pay, each period and overall."""
    by_period = _ledger_by_period(db, org.id, period)
    by_period.setdefault(period, {})  # the chosen month has its row, even before anything happened in it
    rows = []
    for p in sorted(by_period)[-last:]:
        sums = by_period[p]
        accrued, other = sums.get("charge", ZERO), sums.get("other", ZERO)
        benefits, subsidies, paid = -sums.get("benefit", ZERO), -sums.get("subsidy", ZERO), -sums.get("payment", ZERO)
        to_pay = accrued + other - benefits - subsidies
        rows.append((p, accrued, other, benefits, subsidies, to_pay, paid, _pct(paid, to_pay)))
    totals = list(totals_row(COLLECTION_COLUMNS, rows, word("total", lang),
                             [c.key for c in COLLECTION_COLUMNS[1:-1]]))
    totals[-1] = _pct(totals[6], totals[5]) if rows else None
    return Report("collection", word("collection_rate", lang), _subtitle(org, period, lang), COLLECTION_COLUMNS,
                  rows, tuple(totals), lang, chart=("period", "rate_pct"))


def consumption_dynamics(db: Session, org_id: int, last: int = 12,
                         until: str | None = None) -> list[tuple[str, Decimal, int, Decimal]]:
    """(period, total kWh, invoices, average kWh per account) for the last ``last`` billed periods."""
    query = (select(Invoice.period, func.sum(Invoice.quantity_kwh), func.count())
             .where(Invoice.org_id == org_id, Invoice.status == "issued"))
    if until:
        query = query.where(Invoice.period <= until)
    rows = db.execute(query.group_by(Invoice.period).order_by(Invoice.period.desc()).limit(last)).all()
    return [(period, Decimal(kwh).quantize(Decimal("0.0001")), count,
             (Decimal(kwh) / count).quantize(TENTH, ROUND_HALF_UP)) for period, kwh, count in reversed(rows)]


CONSUMPTION_COLUMNS = (  # volumes in kWh, or Gcal for a heat network (in_unit)
    Column("period", N_("col_period"), width=10),
    Column("kwh", N_("col_consumption"), N_("kwh"), places=3, width=16),
    Column("accounts", N_("col_accounts"), places=0, width=10),
    Column("average_kwh", N_("col_average_per_account"), N_("kwh"), places=1, width=16),
)


def consumption_report(db: Session, org: Organisation, period: str, today: date, lang: str) -> Report:
    rows = consumption_dynamics(db, org.id, until=period)
    columns = tuple(in_unit(c, org) for c in CONSUMPTION_COLUMNS)
    totals = list(totals_row(columns, rows, word("total", lang), ("kwh", "accounts")))
    totals[3] = (totals[1] / totals[2]).quantize(TENTH, ROUND_HALF_UP) if rows and totals[2] else None
    title = word("consumption_dynamics", lang, unit=word(volume_unit(org), lang))
    return Report("consumption", title, _subtitle(org, period, lang), columns, rows, tuple(totals), lang,
                  chart=("period", "kwh"))


def revenue_structure(db: Session, org_id: int, period: str) -> dict[str, Decimal]:
    """What the period's accrual is made of: energy, fees, and the credits (benefits, subsidies, export)."""
    rows = db.execute(select(Invoice.lines).where(Invoice.org_id == org_id, Invoice.period == period,
                                                  Invoice.status == "issued")).scalars()
    structure: dict[str, Decimal] = {}
    for lines in rows:
        for line in lines:
            structure[line["kind"]] = structure.get(line["kind"], ZERO) + Decimal(line["amount"])
    return dict(sorted(structure.items()))


REVENUE_ORDER = ("energy", "fee", "export_credit", "correction", "trueup", "benefit", "subsidy")
REVENUE_COLUMNS = (
    Column("component", N_("col_component"), width=24),
    money("amount", N_("col_amount")),
    Column("share_pct", N_("col_share_pct"), places=1, width=14),
)


def revenue_report(db: Session, org: Organisation, period: str, today: date, lang: str) -> Report:
    """The issued invoices of the period by kind of line; shares of the gross accrual (the positive lines).
    Carried solar kWh are not money and are left out."""
    structure = {k: v for k, v in revenue_structure(db, org.id, period).items() if k != "carry"}
    order = sorted(structure, key=lambda k: (REVENUE_ORDER.index(k) if k in REVENUE_ORDER else 99, k))
    gross = sum((v for v in structure.values() if v > 0), ZERO)
    heat = org.kind == "heat"
    rows = [(word(f"line_{'heat' if heat and k == 'energy' else k}", lang), structure[k].quantize(ZERO),
             _pct(structure[k], gross)) for k in order]
    return Report("revenue", word("revenue_structure", lang), _subtitle(org, period, lang), REVENUE_COLUMNS,
                  rows, totals_row(REVENUE_COLUMNS, rows, word("total", lang), ("amount",)), lang)
