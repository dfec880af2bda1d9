"""The drill-down pages — station → line → meter for any span of Kyiv days — the comparisons, the money page,
and the JSON series their charts read (``/sites/<code>/series/…``; the format: cloud/static/charts.js).
Staff of the site's organisation only: another organisation's site or meter is a 404."""

from __future__ import annotations

import gc
import threading
from contextlib import contextmanager

from flask import Blueprint, abort, jsonify, render_template, request
from flask_babel import gettext
from sqlalchemy import select

from cloud import db
from cloud.accounts.auth import current_org, requires
from cloud.clock import kyiv_today
from cloud.dashboards import compare, money, series
from cloud.dashboards.series import Span, SpanError, parse_span
from cloud.i18n import translate
from cloud.models import Account, Line, Meter
from cloud.permissions import Action
from cloud.sites.views import org_site

bp = Blueprint("dashboards", __name__)
SPAN_ARGS = ("span", "at", "from", "to")


_paused = threading.Lock()
_pausing = [0, False]  # requests inside ``collector_paused``; whether the collector was on when the first came


@contextmanager
def collector_paused():
    """Python's cycle collector held off while a chart's buckets are built. A week's chart makes some 20 000
    short-lived, acyclic objects (rows, figures) that reference counting frees when the chart is done; left to
    run, the collector promotes them and every few requests walks the whole application (~100 ms) for nothing.
    Counted, so overlapping requests (waitress threads) turn it back on only when the last one is done."""
    with _paused:
        if _pausing[0] == 0:
            _pausing[1] = gc.isenabled()
            gc.disable()
        _pausing[0] += 1
    try:
        yield
    finally:
        with _paused:
            _pausing[0] -= 1
            if _pausing[0] == 0 and _pausing[1]:
                gc.enable()


def words() -> dict[str, str]:
    """The series' names in the page's language (the JSON carries them, so a chart needs no catalogue)."""
    return {
        "station_input": gettext("station_input"),
        "feeders_sum": gettext("feeders_sum"),
        "loss_kwh": gettext("loss_kwh"),
        "line": gettext("line"),
        "feeder_kwh": gettext("feeder_kwh"),
        "subscribers_kwh": gettext("subscribers_kwh"),
        "import_kwh": gettext("import_kwh"),
        "export_kwh": gettext("export_kwh"),
        "purchase_uah": gettext("purchase_uah"),
        "billed_uah": gettext("billed_uah"),
        "cost_recovery": gettext("cost_recovery"),
        "collection_rate": gettext("collection_rate"),
        "break_even": gettext("break_even"),
    }


def span_or_400(json: bool = False) -> Span:
    try:
        return parse_span(request.args, kyiv_today())
    except SpanError as exc:
        message = translate(exc.key)
        if json:
            abort(_json_error(exc.field, message))
        abort(400, description=f"{exc.field}: {message}")


def _json_error(field: str, message: str):
    response = jsonify({"error": "bad_span", "field": field, "message": message})
    response.status_code = 400
    return response


def span_args() -> dict[str, str]:
    return {k: request.args[k] for k in SPAN_ARGS if request.args.get(k)}


def site_line(site, number: str) -> Line:
    line = db.session().scalar(select(Line).where(Line.site_id == site.id, Line.number == number))
    if line is None:
        abort(404)
    return line


def site_meter(site, code: str) -> Meter:
    meter = db.session().scalar(select(Meter).where(Meter.site_id == site.id, Meter.code == code))
    if meter is None:
        abort(404)
    return meter


# ---- pages ---------------------------------------------------------------------------------------------------

@bp.get("/sites/<code>/dashboard")
@requires(Action.VIEW_SITES)
def station(code: str):
    site = org_site(code)
    span = span_or_400()
    session = db.session()
    shape = series.layout(session, site)
    balance = series.span_balance(session, site, span, shape)
    price = series.purchase_price(session, site, span)
    return render_template("dashboards/station.html", site=site, span=span, args=span_args(), balance=balance,
                           price=price, loss_uah=compare.loss_uah(balance, price),
                           names={line.number: line.name for line in site.lines})


@bp.get("/sites/<code>/lines/<number>")
@requires(Action.VIEW_SITES)
def line(code: str, number: str):
    site = org_site(code)
    found = site_line(site, number)
    span = span_or_400()
    session = db.session()
    meters = session.execute(
        select(Meter, Account.number, Account.holder).outerjoin(Account, Account.id == Meter.account_id)
        .where(Meter.site_id == site.id, Meter.line_id == found.id).order_by(Meter.role, Meter.code)).all()
    ids = [meter.id for meter, _, _ in meters]
    # The line's own meters decide its balance: the same as the station's line, from a tenth of the rows.
    line_balance = series.span_line_balance(session, site, span, number, ids)
    totals = series.meter_totals(session, site, span, ids)
    price = series.purchase_price(session, site, span)
    loss_uah = None
    if line_balance is not None and line_balance.loss_kwh is not None and price is not None:
        loss_uah = (line_balance.loss_kwh * price).quantize(compare.CENTS)
    return render_template("dashboards/line.html", site=site, line=found, span=span, args=span_args(),
                           balance=line_balance, meters=meters, totals=totals, loss_uah=loss_uah)


@bp.get("/sites/<code>/meters/<meter_code>")
@requires(Action.VIEW_SITES)
def meter(code: str, meter_code: str):
    site = org_site(code)
    found = site_meter(site, meter_code)
    span = span_or_400()
    session = db.session()
    total = series.meter_totals(session, site, span, [found.id]).get(found.id)
    line_number = session.scalar(select(Line.number).where(Line.id == found.line_id)) if found.line_id else None
    return render_template("dashboards/meter.html", site=site, meter=found, span=span, args=span_args(),
                           total=total, line_number=line_number,
                           readings=series.meter_readings(session, found, span))


@bp.get("/sites/<code>/compare")
@requires(Action.VIEW_SITES)
def site_compare(code: str):
    site = org_site(code)
    span = span_or_400()
    if span.kind != "month":
        span = compare.month_span(span.first.year, span.first.month)
    args = {"span": "month", "at": f"{span.first:%Y-%m}"}
    return render_template("dashboards/compare.html", site=site, span=span, args=args)


@bp.get("/dashboards/sites")
@requires(Action.VIEW_SITES)
def sites():
    org = current_org()
    span = span_or_400()
    return render_template("dashboards/sites.html", span=span, args=span_args(),
                           figures=compare.sites_compared(db.session(), org.id, span))


@bp.get("/dashboards/money")
@requires(Action.VIEW_REPORTS)
def money_page():
    org = current_org()
    period = request.args.get("period") or f"{kyiv_today():%Y-%m}"
    try:
        series.parse_span({"span": "month", "at": period}, kyiv_today())
    except SpanError:
        abort(400, description=f"period: {translate('err_span_month')}")
    months = money.money_by_month(db.session(), org, period, kyiv_today())
    ageing = money.debt_ageing(db.session(), org, period, kyiv_today())
    top = max([*ageing.values(), 1])
    return render_template("dashboards/money.html", period=period, months=months, ageing=ageing, top=top)


# ---- the charts' JSON ----------------------------------------------------------------------------------------

@bp.get("/sites/<code>/series/station")
@requires(Action.VIEW_SITES)
def station_series(code: str):
    with collector_paused():
        found = series.station_chart(db.session(), org_site(code), span_or_400(True), words())
    return jsonify(found)


@bp.get("/sites/<code>/series/lines")
@requires(Action.VIEW_SITES)
def lines_series(code: str):
    with collector_paused():
        found = series.lines_chart(db.session(), org_site(code), span_or_400(True), words())
    return jsonify(found)


@bp.get("/sites/<code>/series/lines/<number>")
@requires(Action.VIEW_SITES)
def line_series(code: str, number: str):
    site = org_site(code)
    site_line(site, number)
    with collector_paused():
        found = series.line_chart(db.session(), site, number, span_or_400(True), words())
    return jsonify(found)


@bp.get("/sites/<code>/series/meters/<meter_code>")
@requires(Action.VIEW_SITES)
def meter_series(code: str, meter_code: str):
    site = org_site(code)
    return jsonify(series.meter_chart(db.session(), site_meter(site, meter_code), span_or_400(True), words()))


@bp.get("/sites/<code>/series/yoy")
@requires(Action.VIEW_SITES)
def yoy_series(code: str):
    site = org_site(code)
    span = span_or_400(True)
    month = compare.month_span(span.first.year, span.first.month)
    return jsonify(compare.year_over_year(db.session(), site, month, words()))


@bp.get("/dashboards/series/sites")
@requires(Action.VIEW_SITES)
def sites_series():
    return jsonify(compare.sites_chart(db.session(), current_org().id, span_or_400(True), words()))


@bp.get("/dashboards/series/money")
@requires(Action.VIEW_REPORTS)
def money_series():
    org = current_org()
    period = request.args.get("period") or f"{kyiv_today():%Y-%m}"
    try:
        series.parse_span({"span": "month", "at": period}, kyiv_today())
    except SpanError:
        abort(_json_error("period", translate("err_span_month")))
    months = money.money_by_month(db.session(), org, period, kyiv_today())
    chart = money.recovery_chart if request.args.get("what") == "recovery" else money.money_chart
    return jsonify(chart(months, words()))
