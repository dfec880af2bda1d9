"""Comparisons on the manager's pages: a month against the same month a year before, and the organisation's
sites against each other — losses in kWh and, at the purchase price billing uses, in UAH."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal

from sqlalchemy import select
from sqlalchemy.orm import Session

from cloud.dashboards.series import (
    Span,
    bucket_balances,
    chart,
    layout,
    month_figures,
    purchase_price,
    span_balance,
)
from cloud.dashboards.series import naive_day_bounds as day_start
from cloud.models import Site
from shared.balance import INCOMPLETE, StationBalance

CENTS = Decimal("0.01")


def month_span(year: int, month: int) -> Span:
    first = date(year, month, 1)
    return Span("month", first, date(year + month // 12, month % 12 + 1, 1) - timedelta(days=1))


def months_back(last: Span, count: int) -> list[Span]:
    """The ``count`` months up to the one ``last`` starts in, oldest first."""
    year, month = last.first.year, last.first.month
    found = []
    for _ in range(count):
        found.append(month_span(year, month))
        year, month = (year - 1, 12) if month == 1 else (year, month - 1)
    return found[::-1]


def loss_uah(balance: StationBalance, price: Decimal | None) -> Decimal | None:
    if balance.loss_kwh is None or price is None:
        return None
    return (balance.loss_kwh * price).quantize(CENTS, ROUND_HALF_UP)


def year_over_year(db: Session, site: Site, span: Span, words: dict[str, str]) -> dict:
    """This month's station input and loss by day against the same month a year before, on this month's days
    (a day the earlier month lacks — 29 February — is a gap)."""
    earlier = month_span(span.first.year - 1, span.first.month)
    shape = layout(db, site)
    now = bucket_balances(db, site, span, shape)
    then = {start: bal for start, bal in bucket_balances(db, site, earlier, shape)}
    then_by_day = {n: then.get(day_start(earlier.first + timedelta(days=n))[0]) for n in range(len(span.days))}

    def input_of(bal):
        return None if bal is None or bal.input_kwh is None or bal.missing else float(bal.input_kwh)

    def loss_of(bal):
        return None if bal is None or bal.status == "incomplete" else float(bal.loss_kwh)

    this, last = f"{span.first:%Y-%m}", f"{earlier.first:%Y-%m}"
    return chart([s for s, _ in now], [
        (f"{words['station_input']} {this}", "kWh", [input_of(b) for _, b in now]),
        (f"{words['station_input']} {last}", "kWh", [input_of(then_by_day[n]) for n in range(len(now))]),
        (f"{words['loss_kwh']} {this}", "kWh", [loss_of(b) for _, b in now]),
        (f"{words['loss_kwh']} {last}", "kWh", [loss_of(then_by_day[n]) for n in range(len(now))]),
    ], [], 86400)


@dataclass(frozen=True)
class SiteFigures:
    site: Site
    balance: StationBalance
    price: Decimal | None

    @property
    def loss_uah(self) -> Decimal | None:
        return loss_uah(self.balance, self.price)


def sites_compared(db: Session, org_id: int, span: Span) -> list[SiteFigures]:
    """Every site of the organisation over the span: its balance and its loss in UAH."""
    found = []
    for site in db.scalars(select(Site).where(Site.org_id == org_id).order_by(Site.code)):
        found.append(SiteFigures(site, span_balance(db, site, span), purchase_price(db, site, span)))
    return found


def sites_chart(db: Session, org_id: int, span: Span, words: dict[str, str], months: int = 12) -> dict:
    """Each site's station loss % by month, over the ``months`` months up to the span's."""
    periods = months_back(span, months)
    sites = list(db.scalars(select(Site).where(Site.org_id == org_id).order_by(Site.code)))
    series = []
    for site in sites:
        values = [None if figures.status == INCOMPLETE or figures.loss_pct10 is None else figures.loss_pct10 / 10
                  for figures in month_figures(db, site, periods, layout(db, site))]
        series.append((site.name or site.code, "%", values))
    return chart([day_start(p.first)[0] for p in periods], series, [], 86400 * 30, "bars")
