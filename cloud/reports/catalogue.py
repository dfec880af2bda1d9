"""Every report by kind — the accounting reports and the analytics — built the same way for a page, a file
or the command line."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date

from sqlalchemy.orm import Session

from cloud.clock import kyiv_today
from cloud.models import Organisation
from cloud.reports import analytics
from cloud.reports.accounting import debtors_report, regulator_report, turnover_report
from cloud.reports.export import Report
from shared.calendar import parse_period

Builder = Callable[[Session, Organisation, str, date, str], Report]


def catalogue() -> dict[str, Builder]:
    """Every report by kind, in the order the office reads them."""
    return {"turnover": turnover_report, "debtors": debtors_report, "payments": analytics.payments_report,
            "collection": analytics.collection_report, "consumption": analytics.consumption_report,
            "revenue": analytics.revenue_report, "regulator": regulator_report}


REPORT_KINDS = ("turnover", "debtors", "payments", "collection", "consumption", "revenue", "regulator")


def build_report(db: Session, org: Organisation, kind: str, period: str, today: date | None = None,
                 lang: str = "uk") -> Report:
    """One report of one organisation for one period (YYYY-MM), in Ukrainian or English."""
    builders = catalogue()
    if kind not in builders:
        raise ValueError(f"report must be one of {', '.join(REPORT_KINDS)}, got {kind!r}")
    parse_period(period)  # a clear error for a malformed period
    return builders[kind](db, org, period, today or kyiv_today(), lang)


