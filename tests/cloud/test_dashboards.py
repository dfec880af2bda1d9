"""The manager's drill-down: a cooperative's station with two lines, a month of quarter-hours. The daily table
adds up to the intervals (the 25-hour day the clocks go back included), the drill-down's totals to the month's
balance and to the invoices, a dead meter is a gap and never theft, and another organisation sees nothing."""

from __future__ import annotations

import os
import random
import threading
import uuid
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete, func, select
from werkzeug.serving import make_server

from cloud.accounts.organisations import create_user
from cloud.dashboards.compare import months_back, sites_chart
from cloud.dashboards.daily import rebuild_daily, refresh_days, touched_days
from cloud.dashboards.series import (
    Span,
    _summed_rows,
    line_chart,
    lines_chart,
    span_balance,
    span_energies,
    span_line_balance,
    station_chart,
    station_figures,
)
from cloud.models import (
    Batch,
    DailyEnergy,
    IntervalEnergy,
    Line,
    LineIntervalEnergy,
    Meter,
    MonthlyEnergy,
    Organisation,
    Reading,
    Site,
)
from cloud.operations.events import balance_flags
from cloud.sites.balance import meter_energy, site_balance
from provisioning.ports import free_port
from shared.balance import LineTopology, MeterEnergy, StationTopology, Thresholds, station_balance
from shared.calendar import from_kyiv_wall, kyiv_day
from tests.cloud.office import account_with_meter, bill, intervals, invoice_of, office

PASSWORD = "correct horse battery"
OCTOBER = Span("month", date(2026, 10, 1), date(2026, 10, 31))


def station(session, suffix: str = "", price: str = "4.20"):
    """ТП with an input meter, lines 1 and 2 each with a feeder and two subscribers (accounts 1x, 2x)."""
    org, site = office(session, name=f"ОК «Сосновий Бір»{suffix}", code=f"TP-7{suffix}", price=price)
    meters = {}
    session.add(Meter(org_id=org.id, site_id=site.id, code=f"IN{suffix}", role="station_input"))
    for number in ("1", "2"):
        line = Line(org_id=org.id, site_id=site.id, number=number)
        session.add(line)
        session.flush()
        session.add(Meter(org_id=org.id, site_id=site.id, code=f"F{number}{suffix}", role="feeder", line_id=line.id))
        for n in ("1", "2"):
            _, meter = account_with_meter(session, org, site, f"{number}{n}{suffix}", f"M{number}{n}{suffix}")
            meter.line_id = line.id
    session.flush()
    for meter in session.scalars(select(Meter).where(Meter.site_id == site.id)):
        meters[meter.code.removesuffix(suffix)] = meter
    return org, site, meters


def fill(session, org, site, meters, wh: dict[str, int], start=datetime(2026, 10, 1), end=datetime(2026, 11, 1),
         dead: dict[str, tuple[datetime, datetime]] | None = None):
    """Constant Wh per quarter-hour per meter; a dead meter sends nothing in its (Kyiv) window."""
    dead = dead or {}
    for code, value in wh.items():
        window = dead.get(code)
        if window:
            low, high = from_kyiv_wall(window[0]), from_kyiv_wall(window[1])
            intervals(session, org, site, meters[code], start, end,
                      lambda ts, v=value: v)
            session.query(IntervalEnergy).filter(IntervalEnergy.meter_id == meters[code].id,
                                                 IntervalEnergy.start >= low, IntervalEnergy.start < high).delete()
        else:
            intervals(session, org, site, meters[code], start, end, lambda ts, v=value: v)
    rebuild_daily(session, site)


def sign_in(client, session_factory, org_id_of_site: str, role: str = "manager", email: str = "m@coop.ua"):
    with session_factory() as session:
        site = session.scalar(select(Site).where(Site.code == org_id_of_site))
        create_user(session, email, PASSWORD, role, session.get(Organisation, site.org_id))
    response = client.post("/login", data={"email": email, "password": PASSWORD})
    assert response.status_code in (302, 303)


# ---- the daily table ----------------------------------------------------------------------------------------

def test_daily_sums_equal_the_intervals_on_the_25_hour_day(db):
    rng = random.Random(18)
    with db() as session:
        org, site, meters = station(session)
        for code in ("IN", "F1", "M11"):
            intervals(session, org, site, meters[code], datetime(2026, 10, 24), datetime(2026, 10, 27),
                      lambda ts: rng.randint(0, 900))
        rows = session.execute(select(IntervalEnergy.meter_id, IntervalEnergy.start)).all()
        refresh_days(session, org.id, touched_days(rows))  # the path ingestion takes
        incremental = {(r.meter_id, r.day): (r.imp_wh, r.intervals) for r in session.scalars(select(DailyEnergy))}
        rebuild_daily(session, site)
        rebuilt = {(r.meter_id, r.day): (r.imp_wh, r.intervals) for r in session.scalars(select(DailyEnergy))}
        direct: dict = {}
        for meter_id, start, imp in session.execute(
                select(IntervalEnergy.meter_id, IntervalEnergy.start, IntervalEnergy.imp_wh)):
            key = (meter_id, kyiv_day(start))
            total, count = direct.get(key, (0, 0))
            direct[key] = (total + imp, count + 1)
    assert incremental == rebuilt == direct
    assert direct[(meters["IN"].id, date(2026, 10, 25))][1] == 100  # 25 hours of quarter-hours


def test_a_duplicate_interval_is_not_counted_twice(db):
    with db() as session:
        org, site, meters = station(session)
        intervals(session, org, site, meters["IN"], datetime(2026, 10, 1), datetime(2026, 10, 2), lambda ts: 100)
        rows = session.execute(select(IntervalEnergy.meter_id, IntervalEnergy.start)).all()
        refresh_days(session, org.id, touched_days(rows))
        refresh_days(session, org.id, touched_days(rows))  # the same batch again
        day = session.scalar(select(DailyEnergy))
    assert (day.day, day.imp_wh, day.intervals) == (date(2026, 10, 1), 9600, 96)


def test_monthly_sums_equal_the_days_kept_by_ingest_and_by_rebuild(db):
    """Two Kyiv months and a bit, sent as batches would be: the months ingest keeps (refresh_days) are the sums of
    their days, the same as a rebuild's; a batch re-sent, and a late interval into an old month, change them as
    they change the days."""
    rng = random.Random(1800)
    with db() as session:
        org, site, meters = station(session)
        for code in ("IN", "F1", "M11"):
            intervals(session, org, site, meters[code], datetime(2026, 9, 29), datetime(2026, 11, 2, 12),
                      lambda ts: rng.randint(0, 900))
        rows = session.execute(select(IntervalEnergy.meter_id, IntervalEnergy.start)).all()
        for n in range(0, len(rows), 700):  # batch by batch, the last one twice
            refresh_days(session, org.id, touched_days(rows[n:n + 700]))
        refresh_days(session, org.id, touched_days(rows[-700:]))

        def months():
            return {(m.meter_id, m.month): (m.imp_wh, m.exp_wh, m.intervals, m.estimated)
                    for m in session.scalars(select(MonthlyEnergy))}

        def days_summed():
            found: dict = {}
            for d in session.scalars(select(DailyEnergy)):
                key = (d.meter_id, d.day.replace(day=1))
                found[key] = tuple(a + b for a, b in zip(found.get(key, (0, 0, 0, 0)),
                                                         (d.imp_wh, d.exp_wh, d.intervals, d.estimated), strict=True))
            return found

        kept = months()
        assert kept == days_summed()
        assert {month for _, month in kept} == {date(2026, 9, 1), date(2026, 10, 1), date(2026, 11, 1)}
        assert kept[(meters["IN"].id, date(2026, 10, 1))][2] == 31 * 96 + 4  # October's 25-hour day
        # A late estimated interval into September, as a gateway's backlog would bring it.
        session.query(IntervalEnergy).filter(IntervalEnergy.meter_id == meters["F1"].id,
                                             IntervalEnergy.start == datetime(2026, 9, 29, 6)).delete()
        late = [(meters["F1"].id, datetime(2026, 9, 29, 6), 5000, 7, "estimated")]
        session.execute(IntervalEnergy.__table__.insert(), [
            {"meter_id": m, "start": t, "imp_wh": i, "exp_wh": e, "flag": f, "batch_id": rows_batch(session)}
            for m, t, i, e, f in late])
        refresh_days(session, org.id, touched_days(late))
        assert months() == days_summed()
        assert months()[(meters["F1"].id, date(2026, 9, 1))][3] == 1
        incremental = months()
        rebuild_daily(session, site)
        assert months() == incremental


def rows_batch(session) -> int:
    return session.scalar(select(IntervalEnergy.batch_id).limit(1))


def test_a_span_of_months_and_days_sums_what_the_intervals_do(db):
    """A span from the middle of one month to the middle of another reads the whole months from monthly_energy and
    the ends from daily_energy: per meter the same import, export and completeness as the quarter-hours summed."""
    with db() as session:
        org, site, meters = station(session)
        fill(session, org, site, meters, {"IN": 700, "F1": 300, "F2": 350, "M11": 140, "M12": 150, "M21": 160,
                                          "M22": 170}, start=datetime(2026, 8, 10), end=datetime(2026, 11, 20),
             dead={"M21": (datetime(2026, 9, 3, 10), datetime(2026, 9, 3, 12))})
        for span in (Span("custom", date(2026, 8, 14), date(2026, 11, 12)),
                     Span("custom", date(2026, 9, 1), date(2026, 10, 31)), OCTOBER,
                     Span("custom", date(2026, 10, 5), date(2026, 10, 20))):
            start, end = span.bounds
            direct = meter_energy(session, site, start, end)
            assert span_energies(session, site, span) == direct, span
        summed = span_energies(session, site, Span("custom", date(2026, 8, 14), date(2026, 11, 12)))
        assert not summed["M21"].complete and summed["M22"].complete


def test_the_sites_chart_shows_each_months_balance(db):
    """The sites chart sums a year of per-day group rows into months: each month's loss % is the month's own
    balance (span_balance, from the meters' monthly rows); a month with a dead feeder, or without data, is a gap."""
    with db() as session:
        org, site, meters = station(session)
        fill(session, org, site, meters, {"IN": 800, "F1": 380, "F2": 400, "M11": 150, "M12": 160, "M21": 190,
                                          "M22": 200}, start=datetime(2026, 7, 1), end=datetime(2026, 11, 1),
             dead={"F1": (datetime(2026, 9, 10), datetime(2026, 9, 10, 1))})
        found = sites_chart(session, org.id, OCTOBER, {})
        expected = [None if (b := span_balance(session, site, month)).status == "incomplete" or b.loss_pct is None
                    else float(b.loss_pct) for month in months_back(OCTOBER, 12)]
    assert found["y"] == [expected]
    assert expected[-4:] == [2.5, 2.5, None, 2.5] and expected[:-4] == [None] * 8


def test_the_events_pages_loss_flags_are_the_months_balance(db):
    """The events page flags lines from the month's per-group day sums: the same lines, statuses, loss % and kWh
    as the month's balance from the meters' own rows — line 1 suspected of theft, line 2 with a dead subscriber
    incomplete (never flagged)."""
    with db() as session:
        org, site, meters = station(session)
        fill(session, org, site, meters, {"IN": 900, "F1": 400, "F2": 450, "M11": 150, "M12": 170, "M21": 190,
                                          "M22": 200}, dead={"M22": (datetime(2026, 10, 3), datetime(2026, 10, 3, 2))})
        flags = balance_flags(session, site, "2026-10")
        balance = span_balance(session, site, OCTOBER)
    expected = [(f"line_{b.status}", b.line, f"{b.loss_pct:.1f}", f"{b.loss_kwh:.3f}") for b in balance.lines
                if b.status in ("elevated", "suspected_theft")]
    assert [(f.kind, f.line, f.detail["loss_pct"], f.detail["loss_kwh"]) for f in flags] == expected
    assert expected == [("line_suspected_theft", "1", "20.0", "238.400")]  # 80 Wh × 2 980 quarter-hours
    assert balance.lines[1].status == "incomplete"


# ---- the drill-down against the balance and the invoices ----------------------------------------------------

WH = st.integers(min_value=0, max_value=8).map(lambda k: 50 * k)  # 2 980 quarter-hours × 50 Wh: whole kWh, as billed


@settings(max_examples=3, deadline=None, phases=[Phase.explicit, Phase.generate],
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(subscribers=st.lists(WH, min_size=4, max_size=4), loss=st.lists(st.integers(0, 60), min_size=2, max_size=2),
       dead_day=st.one_of(st.none(), st.integers(1, 31)))
def test_the_drill_down_totals_are_the_balance_and_the_invoices(db, subscribers, loss, dead_day):
    suffix = f"-{uuid.uuid4().hex[:8]}"
    with db() as session:
        org, site, meters = station(session, suffix)
        wh = {"M11": subscribers[0], "M12": subscribers[1], "M21": subscribers[2], "M22": subscribers[3]}
        wh["F1"] = wh["M11"] + wh["M12"] + loss[0]
        wh["F2"] = wh["M21"] + wh["M22"] + loss[1]
        wh["IN"] = wh["F1"] + wh["F2"] + 5
        dead = {"M22": (datetime(2026, 10, dead_day), datetime(2026, 10, dead_day, 5))} if dead_day else None
        fill(session, org, site, meters, wh, dead=dead)
        for code in ("M11", "M12", "M21", "M22"):  # the register at the month's ends: the invoices read these
            total = session.scalar(select(func.sum(IntervalEnergy.imp_wh)).where(
                IntervalEnergy.meter_id == meters[code].id))
            session.add(Reading(meter_id=meters[code].id, ts=from_kyiv_wall(datetime(2026, 10, 1)),
                                values={"import_kwh": "1000.000"}, source="office"))
            session.add(Reading(meter_id=meters[code].id, ts=from_kyiv_wall(datetime(2026, 11, 1)),
                                values={"import_kwh": f"{1000 + total / 1000:.3f}"}, source="office"))
        session.flush()
        drill = span_balance(session, site, OCTOBER)
        assert drill.as_json() == site_balance(session, site, "2026-10").as_json()
        for line in drill.lines:  # the line page's balance, from the line's own meters
            ids = list(session.scalars(select(Meter.id).join(Line, Line.id == Meter.line_id)
                                       .where(Line.site_id == site.id, Line.number == line.line)))
            assert span_line_balance(session, site, OCTOBER, line.line, ids) == line
        code = site.code
    bill(db, code, "2026-10")
    with db() as session:
        for line in drill.lines:
            billed = sum((invoice_of(session, f"{line.line}{n}{suffix}", "2026-10").quantity_kwh for n in "12"),
                         Decimal(0))
            assert billed == line.subscribers_kwh
        if dead_day:
            assert next(b for b in drill.lines if b.line == "2").status == "incomplete"


# ---- pages, gaps, isolation ---------------------------------------------------------------------------------

@pytest.fixture
def cooperative(db):
    with db() as session:
        org, site, meters = station(session)
        wh = {"M11": 100, "M12": 120, "M21": 90, "M22": 80, "F1": 240, "F2": 175, "IN": 420}  # line 1 at 8 %
        # M22 dead for six hours on 12 October, line 1 stealing 30 % on the 20th
        fill(session, org, site, meters, wh, dead={"M22": (datetime(2026, 10, 12), datetime(2026, 10, 12, 6))})
        low, high = from_kyiv_wall(datetime(2026, 10, 20)), from_kyiv_wall(datetime(2026, 10, 21))
        session.query(IntervalEnergy).filter(IntervalEnergy.meter_id == meters["F1"].id, IntervalEnergy.start >= low,
                                             IntervalEnergy.start < high).update({"imp_wh": 320})
        rebuild_daily(session, site)
        return site.code


def test_a_dead_meter_is_a_gap_never_theft(client, db, cooperative):
    sign_in(client, db, cooperative)
    day = client.get(f"/sites/{cooperative}/series/lines/2?span=day&at=2026-10-12").get_json()
    loss = day["y"][2]
    assert loss[:24] == [None] * 24 and all(v is not None for v in loss[24:])  # the six dead hours
    assert day["flags"] == []
    month = client.get(f"/sites/{cooperative}/series/lines/2?span=month&at=2026-10").get_json()
    assert month["y"][2][11] is None and month["y"][2][10] is not None  # 12 October: a gap in the days too
    theft = client.get(f"/sites/{cooperative}/series/lines/1?span=month&at=2026-10").get_json()
    statuses = [f["status"] for f in theft["flags"]]  # 8 % all month, 30 % on the 20th
    assert statuses.count("suspected_theft") == 1 and set(statuses) == {"elevated", "suspected_theft"}
    meter = client.get(f"/sites/{cooperative}/series/meters/M22?span=day&at=2026-10-12").get_json()
    assert meter["y"][0][:24] == [None] * 24 and meter["y"][0][24] == 0.08


def test_every_page_answers_in_both_languages(client, db, cooperative):
    sign_in(client, db, cooperative)
    pages = [f"/sites/{cooperative}/dashboard?span=month&at=2026-10", f"/sites/{cooperative}/lines/1?span=week&at=2026-10-21",
             f"/sites/{cooperative}/meters/M11?span=day&at=2026-10-25", f"/sites/{cooperative}/compare?at=2026-10",
             "/dashboards/sites?span=year&at=2026", "/dashboards/money?period=2026-10",
             f"/sites/{cooperative}/dashboard?span=custom&from=2026-10-20&to=2026-10-26"]
    for url in pages:
        uk = client.get(url + "&lang=uk")
        assert uk.status_code == 200, url
        assert "Графіки" in uk.text or "Гроші" in uk.text or "Порівняння" in uk.text or "Місяць" in uk.text
        en = client.get(url + "&lang=en")
        assert en.status_code == 200, url
    station_day = client.get(f"/sites/{cooperative}/series/station?span=day&at=2026-10-25").get_json()
    assert len(station_day["x"]) == 100  # the 25-hour Kyiv day


def test_a_bad_span_is_refused_naming_the_field(client, db, cooperative):
    sign_in(client, db, cooperative)
    response = client.get(f"/sites/{cooperative}/series/station?span=custom&from=2026-10-20&to=2026-10-01")
    assert response.status_code == 400 and response.get_json()["field"] == "to"
    assert client.get(f"/sites/{cooperative}/dashboard?span=month&at=2026-13").status_code == 400
    assert client.get(f"/sites/{cooperative}/series/station?span=fortnight").get_json()["field"] == "span"


def test_another_organisation_sees_nothing(client, db, cooperative):
    with db() as session:
        station(session, "-B")
    sign_in(client, db, "TP-7-B", email="other@coop.ua")
    for url in (f"/sites/{cooperative}/dashboard", f"/sites/{cooperative}/lines/1", f"/sites/{cooperative}/meters/M11",
                f"/sites/{cooperative}/series/station", f"/sites/{cooperative}/series/lines/1",
                f"/sites/{cooperative}/series/meters/M11", f"/sites/{cooperative}/series/yoy"):
        assert client.get(url).status_code == 404, url
    mine = client.get("/dashboards/sites?span=month&at=2026-10").text
    assert "TP-7-B" in mine and ">TP-7<" not in mine


# ---- in a real browser --------------------------------------------------------------------------------------

@pytest.mark.skipif(not Path("/usr/bin/chromium").exists(), reason="Debian's chromium is not installed")
@pytest.mark.parametrize("width", [1280, 390])
def test_the_line_drill_down_draws_its_chart(app, db, database_url, cooperative, tmp_path, width):
    from playwright.sync_api import sync_playwright  # noqa: PLC0415 - only where a browser runs

    if not database_url.startswith("sqlite"):
        pytest.skip("one database is enough for the look of a page")
    with db() as session:
        site = session.scalar(select(Site).where(Site.code == cooperative))
        create_user(session, "m@coop.ua", PASSWORD, "manager", session.get(Organisation, site.org_id))
    running = make_server("127.0.0.1", free_port(), app, threaded=True)
    threading.Thread(target=running.serve_forever, daemon=True).start()
    shots = Path(os.environ.get("BALANS_SCREENSHOTS", tmp_path))
    shots.mkdir(parents=True, exist_ok=True)
    base = f"http://127.0.0.1:{running.server_port}"
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=[
                "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"])
            page = browser.new_context(viewport={"width": width, "height": 900}, locale="uk-UA").new_page()
            page.goto(base + "/login")
            page.fill("input[name=email]", "m@coop.ua")
            page.fill("input[name=password]", PASSWORD)
            page.click("button[type=submit]")
            page.goto(base + f"/sites/{cooperative}/lines/1?span=month&at=2026-10")
            page.wait_for_selector("#line-chart.chart-drawn canvas", timeout=10_000)
            page.screenshot(path=str(shots / f"dashboard-line-{width}.png"), full_page=True)
            assert page.eval_on_selector("#line-chart canvas", "c => c.getBoundingClientRect().width") <= width
            browser.close()
    finally:
        running.shutdown()


def test_daily_rows_span_only_kyiv_days(db):
    with db() as session:
        org, site, meters = station(session)
        intervals(session, org, site, meters["IN"], datetime(2026, 10, 31, 23), datetime(2026, 11, 1, 1),
                  lambda ts: 10)
        rebuild_daily(session, site)
        days = dict(session.execute(select(DailyEnergy.day, DailyEnergy.intervals)).all())
    assert days == {date(2026, 10, 31): 4, date(2026, 11, 1): 4}


# ---- the week's charts from the pre-summed quarter-hours --------------------------------------------------------

WORDS = {k: k for k in ("station_input", "feeders_sum", "loss_kwh", "line", "feeder_kwh", "subscribers_kwh")}


def charts(session, site, span) -> dict:
    return {"station": station_chart(session, site, span, WORDS), "lines": lines_chart(session, site, span, WORDS),
            **{f"line {n}": line_chart(session, site, n, span, WORDS) for n in ("1", "2")}}


@pytest.mark.parametrize("monday", [date(2026, 10, 12), date(2026, 10, 19)])  # the dead meter; the theft
def test_a_weeks_charts_from_the_pre_summed_rows_are_those_of_the_intervals(db, cooperative, monday):
    week = Span("week", monday, monday + timedelta(days=6))
    with db() as session:
        site = session.scalar(select(Site).where(Site.code == cooperative))
        assert session.scalar(select(func.count()).select_from(LineIntervalEnergy)) > 0
        assert _summed_rows(session, site, week) is not None  # the charts read the pre-summed rows
        summed = charts(session, site, week)
        session.execute(delete(LineIntervalEnergy))
        assert _summed_rows(session, site, week) is None  # they no longer add up to the daily table
        assert charts(session, site, week) == summed
    flags = {f["status"] for f in summed["line 1"]["flags"]}
    assert ("suspected_theft" in flags) == (monday == date(2026, 10, 19))
    assert None in summed["line 2"]["y"][2] if monday == date(2026, 10, 12) else None not in summed["line 2"]["y"][2]


def test_a_months_and_a_years_charts_from_the_pre_summed_days_are_those_of_the_daily_table(db, cooperative):
    spans = (OCTOBER, Span("year", date(2026, 1, 1), date(2026, 12, 31)))
    with db() as session:
        site = session.scalar(select(Site).where(Site.code == cooperative))
        assert all(_summed_rows(session, site, span) is not None for span in spans)
        summed = [charts(session, site, span) for span in spans]
        session.execute(delete(LineIntervalEnergy))
        assert all(_summed_rows(session, site, span) is None for span in spans)
        assert [charts(session, site, span) for span in spans] == summed
    october = summed[0]
    assert october["line 2"]["y"][0][11] is None and october["line 2"]["y"][0][10] is not None  # 12 October: a gap
    assert "suspected_theft" in {f["status"] for f in october["line 1"]["flags"]}  # the 20th


def test_a_batch_keeps_the_pre_summed_rows_and_a_moved_meter_makes_them_stale(db, cooperative):
    week = Span("week", date(2026, 11, 2), date(2026, 11, 8))
    with db() as session:
        site = session.scalar(select(Site).where(Site.code == cooperative))
        meters = {m.code: m for m in session.scalars(select(Meter).where(Meter.site_id == site.id))}
        org = session.get(Organisation, site.org_id)
        batch = session.scalar(select(Batch).limit(1))  # a day's batch of every meter, 2 November
        start = from_kyiv_wall(datetime(2026, 11, 2))
        rows = [(meters[code].id, start + timedelta(minutes=15 * n), wh, 0, "measured", batch.id)
                for code, wh in {"IN": 420, "F1": 240, "F2": 175, "M11": 100, "M12": 120, "M21": 90,
                                 "M22": 80}.items() for n in range(96)]
        session.add_all([IntervalEnergy(meter_id=m, start=t, imp_wh=i, exp_wh=e, flag=f, batch_id=b)
                         for m, t, i, e, f, b in rows])
        session.flush()
        refresh_days(session, org.id, touched_days(rows))  # the path ingestion takes
        assert _summed_rows(session, site, week) is not None
        summed = charts(session, site, week)
        assert summed["line 1"]["y"][0][:96] == [0.24] * 96 and summed["line 1"]["y"][0][96] is None
        meters["M12"].line_id = session.scalar(select(Line.id).where(Line.site_id == site.id, Line.number == "2"))
        session.flush()
        assert _summed_rows(session, site, week) is None  # summed under the old layout: the intervals instead
        moved = charts(session, site, week)
        assert moved["line 2"]["y"][1][0] == 0.29 and moved != summed
        rebuild_daily(session, site)
        assert _summed_rows(session, site, week) is not None and charts(session, site, week) == moved
        november = Span("month", date(2026, 11, 1), date(2026, 11, 30))
        assert charts(session, site, november)["line 2"]["y"][1][1] == 27.84  # 96 × 290 Wh


GROUP = st.one_of(st.none(), st.tuples(st.integers(-5000, 90_000), st.integers(0, 9000), st.booleans()))


@settings(max_examples=300, deadline=None)
@given(lines=st.lists(st.tuples(st.booleans(), st.booleans(), GROUP, GROUP), min_size=1, max_size=4),
       source=st.one_of(st.just(False), GROUP), elevated=st.integers(0, 900), extra=st.integers(0, 2000))
def test_the_charts_integer_balance_is_station_balance(lines, source, elevated, extra):
    """``station_figures`` (Wh, for the charts' many buckets) says what ``station_balance`` (Decimal kWh) says."""
    topology = StationTopology("input" if source is not False else None, tuple(
        LineTopology(str(n), f"feeder:{n}" if has_feeder else None, (f"subscribers:{n}",) if has_subscribers else ())
        for n, (has_feeder, has_subscribers, _, _) in enumerate(lines)))
    groups = {"input": source} if source else {}  # False: no input meter; None: its data missing
    for n, (_, _, fed, used) in enumerate(lines):
        groups |= {name: value for name, value in ((f"feeder:{n}", fed), (f"subscribers:{n}", used)) if value}
    limits = Thresholds(Decimal(elevated).scaleb(-2), Decimal(elevated + extra).scaleb(-2))
    fast = station_figures(topology, groups, limits)
    slow = station_balance(topology, {name: MeterEnergy(Decimal(i).scaleb(-3), Decimal(e).scaleb(-3), complete=c)
                                      for name, (i, e, c) in groups.items()}, limits)

    def kwh(wh):
        return None if wh is None else Decimal(wh).scaleb(-3)

    def pct(tenths):
        return None if tenths is None else Decimal(tenths).scaleb(-1)

    assert (kwh(fast.input_wh), kwh(fast.feeders_wh), kwh(fast.loss_wh), pct(fast.loss_pct10), fast.status,
            fast.missing) == (slow.input_kwh, slow.feeders_kwh, slow.loss_kwh, slow.loss_pct, slow.status,
                              bool(slow.missing))
    for mine, theirs in zip(fast.lines, slow.lines, strict=True):
        assert (mine.line, kwh(mine.feeder_wh), kwh(mine.subscribers_wh), kwh(mine.loss_wh), pct(mine.loss_pct10),
                mine.status) == (theirs.line, theirs.feeder_kwh, theirs.subscribers_kwh, theirs.loss_kwh,
                                 theirs.loss_pct, theirs.status)


def test_the_group_sums_kept_with_each_batch_are_those_a_rebuild_makes(db, cooperative):
    """The ingest path keeps ``line_interval_energy`` with plain SQL (``refresh_lines``); the rebuild sums the same
    groups with SQLAlchemy (``sum_lines``, ``sum_line_day``): every row must be the same."""
    columns = [getattr(LineIntervalEnergy, name) for name in
               ("step", "start", "role", "line_id", "org_id", "imp_wh", "exp_wh", "meters", "intervals", "layout")]
    with db() as session:
        site = session.scalar(select(Site).where(Site.code == cooperative))
        rebuilt = session.execute(select(*columns).where(LineIntervalEnergy.site_id == site.id)
                                  .order_by(*columns[:4])).all()
        assert {row.step for row in rebuilt} == {15, 1440} and len(rebuilt) > 1000
        meters = select(Meter.id).where(Meter.site_id == site.id)
        stored = session.execute(select(IntervalEnergy.meter_id, IntervalEnergy.start)
                                 .where(IntervalEnergy.meter_id.in_(meters))).all()
        for table in (LineIntervalEnergy, DailyEnergy, MonthlyEnergy):
            session.execute(delete(table))
        refresh_days(session, site.org_id, touched_days(stored))  # as if every interval had just arrived
        kept = session.execute(select(*columns).where(LineIntervalEnergy.site_id == site.id)
                               .order_by(*columns[:4])).all()
    assert kept == rebuilt
