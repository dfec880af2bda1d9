"""Manager pages: the organisation's sites and each site's micro-balance for a period, losses per line."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from flask import Blueprint, abort, render_template, request
from sqlalchemy import func, select

from cloud import db
from cloud.accounts.auth import current_user, requires
from cloud.dashboards.daily import newest_day
from cloud.dashboards.series import Span, span_balance
from cloud.models import BillingRun, IntervalEnergy, Meter, Site
from cloud.permissions import Action
from shared.calendar import kyiv_period, parse_period, period_days

bp = Blueprint("sites", __name__, url_prefix="/sites")


def org_site(code: str) -> Site:
    """The site with ``code`` in the signed-in user's organisation — or 404, never another org's."""
    user = current_user()
    site = db.session().scalar(select(Site).where(Site.code == code, Site.org_id == user.org_id))
    if site is None:
        abort(404)
    return site


def latest_period(site: Site) -> str | None:
    """The Kyiv month of the site's newest interval energy: the period a manager most likely wants to see. From
    the daily table (one index lookup per meter); intervals stored before it existed (or not through ingest,
    which keeps it) are found in the quarter-hours themselves."""
    session = db.session()
    last_day = newest_day(session, site.id)
    if last_day is not None:
        return f"{last_day:%Y-%m}"
    newest = (select(func.max(IntervalEnergy.start)).where(IntervalEnergy.meter_id == Meter.id).correlate(Meter)
              .scalar_subquery())  # per meter, through the primary key: never a scan of other sites' intervals
    last = session.scalar(select(func.max(newest)).where(Meter.site_id == site.id))
    if isinstance(last, str):  # SQLite hands back the text of a max() over a subquery
        last = datetime.fromisoformat(last)
    return None if last is None else kyiv_period(last)


@bp.get("/")
@requires(Action.VIEW_SITES)
def sites():
    user = current_user()
    rows = db.session().scalars(select(Site).where(Site.org_id == user.org_id).order_by(Site.code)).all()
    return render_template("sites.html", sites=rows)


@bp.get("/<code>")
@requires(Action.VIEW_SITES)
def site(code: str):
    found = org_site(code)
    period = request.args.get("period") or latest_period(found)
    balance = None
    run = None
    if period:
        try:
            parse_period(period)
            # The month's balance from the daily pre-aggregate (cloud/dashboards): the same figures as
            # site_balance, which sums every quarter-hour of every meter (1.7 s for 300 meters' month).
            balance = span_balance(db.session(), found, Span("month", *period_days(period)))
        except ValueError:
            abort(400)
        run = db.session().scalar(select(BillingRun).where(BillingRun.site_id == found.id,
                                                           BillingRun.period == period))
    lines = found.lines
    names = {line.number: line.name for line in lines}
    worst = max((abs(b.loss_pct) for b in balance.lines if b.loss_pct is not None), default=Decimal(1)) if balance else 1
    return render_template("site.html", site=found, period=period, balance=balance, run=run, names=names,
                           scale=max(Decimal(worst), Decimal(1)))
