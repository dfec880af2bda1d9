"""Every dashboard, operations and cabinet page and their JSON series over real HTTP, against a year of 15-minute data.

Builds a station (an input meter, 10 lines each with a feeder, the rest subscribers) with a year of quarter-hours
per meter, generated inside the database (INSERT … SELECT over meters × quarter-hours), readings with phase
voltages, and the pre-aggregates ingest keeps (``daily_energy``, ``line_interval_energy``) summed in bulk by the
same grouping ``rebuild_daily`` uses (a small build checks them against it); the gateway's events over the span,
a week of batches (one per 15 minutes, the last hour a backlog), and a resident with a year of issued invoices
(solar export netted) and payments. Serves the app in a thread (waitress) and times every entry of ``PAGES`` — as a
signed-in manager, or as the resident for ``RESIDENT_PAGES``. Prints p50 and p95 per page and, last, a JSON line:
per page p50, p95 and p95 / 200 ms, and the worst page. ``--quick``: 60 meters, 35 days (CI). ``--db postgresql
--meters 5000`` for the large case; ``--keep`` then ``--reuse FILE`` to time again without building again.
"""

from __future__ import annotations

import argparse
import gc
import http.client
import json
import re
import shutil
import statistics
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import psycopg
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from waitress.server import create_server

from cloud import create_app
from cloud.accounts.organisations import (
    create_organisation,
    create_site,
    create_user,
    set_tariff,
    upsert_account,
)
from cloud.dashboards.daily import (
    LINE_COLUMNS,
    SQLITE_TIME,
    rebuild_daily,
    rebuild_monthly,
    site_layout,
    sum_line_day,
    sum_lines,
)
from cloud.db import insert_rows, make_engine, session_scope
from cloud.migrate import upgrade
from cloud.models import (
    Base,
    Batch,
    BillingRun,
    DailyEnergy,
    Event,
    Gateway,
    Invoice,
    Line,
    LineIntervalEnergy,
    Meter,
    MonthlyEnergy,
    Organisation,
    Payment,
    Site,
)
from cloud.operations.voltage import Week, site_meters, store_voltage_days
from provisioning.ports import free_port
from shared.calendar import iso_utc, kyiv_day, naive_midnight
from shared.cost_sharing import cost_recovery

LIMIT_MS = 200.0
LINES = 10
PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/test"
# (name, URL): {site}, {line}, {meter}, {gateway}, {invoice}, {month}, {day}, {year} are filled in. Add pages here.
PAGES = [
    ("site", "/sites/{site}?period={month}"),
    ("station day", "/sites/{site}/dashboard?span=day&at={day}"),
    ("station week", "/sites/{site}/dashboard?span=week&at={day}"),
    ("station month", "/sites/{site}/dashboard?span=month&at={month}"),
    ("station year", "/sites/{site}/dashboard?span=year&at={year}"),
    ("station custom", "/sites/{site}/dashboard?span=custom&from={first}&to={last}"),
    ("line week", "/sites/{site}/lines/{line}?span=week&at={day}"),
    ("line month", "/sites/{site}/lines/{line}?span=month&at={month}"),
    ("line year", "/sites/{site}/lines/{line}?span=year&at={year}"),
    ("meter day", "/sites/{site}/meters/{meter}?span=day&at={day}"),
    ("meter month", "/sites/{site}/meters/{meter}?span=month&at={month}"),
    ("meter year", "/sites/{site}/meters/{meter}?span=year&at={year}"),
    ("compare", "/sites/{site}/compare?at={month}"),
    ("sites", "/dashboards/sites?span=month&at={month}"),
    ("money", "/dashboards/money?period={month}"),
    ("json station day", "/sites/{site}/series/station?span=day&at={day}"),
    ("json station week", "/sites/{site}/series/station?span=week&at={day}"),
    ("json station month", "/sites/{site}/series/station?span=month&at={month}"),
    ("json station year", "/sites/{site}/series/station?span=year&at={year}"),
    ("json lines week", "/sites/{site}/series/lines?span=week&at={day}"),
    ("json lines month", "/sites/{site}/series/lines?span=month&at={month}"),
    ("json lines year", "/sites/{site}/series/lines?span=year&at={year}"),
    ("json line week", "/sites/{site}/series/lines/{line}?span=week&at={day}"),
    ("json line month", "/sites/{site}/series/lines/{line}?span=month&at={month}"),
    ("json line year", "/sites/{site}/series/lines/{line}?span=year&at={year}"),
    ("json meter week", "/sites/{site}/series/meters/{meter}?span=week&at={day}"),
    ("json meter year", "/sites/{site}/series/meters/{meter}?span=year&at={year}"),
    ("json yoy", "/sites/{site}/series/yoy?span=month&at={month}"),
    ("json sites", "/dashboards/series/sites?span=year&at={year}"),
    ("json money", "/dashboards/series/money?period={month}"),
    ("json recovery", "/dashboards/series/money?period={month}&what=recovery"),
    ("events", "/events"),
    ("events all", "/events?state=all&period={month}"),
    ("site events", "/sites/{site}/events"),
    ("gateways", "/sites/{site}/gateways"),
    ("gateway health", "/gateways/{gateway}/health"),
    ("voltage", "/sites/{site}/voltage?week={day}"),
]
# The resident's cabinet, signed in as the holder of {meter}'s account.
RESIDENT_PAGES = [
    ("cabinet", "/cabinet/"),
    ("cabinet month", "/cabinet/?period={month}"),
    ("cabinet invoice", "/cabinet/invoices/{invoice}"),
    ("cabinet settings", "/cabinet/settings"),
    ("cabinet reading", "/cabinet/reading"),
]
VOLTAGE_DAYS = 7  # readings with phase voltages: the week of {day}


QUARTERS = "bench_quarters"  # the build's own table: each quarter-hour of the span, its step and its Kyiv day


def stamp(ts: datetime, sqlite: bool):
    """A naive UTC instant as the column holds it: SQLAlchemy's text on SQLite."""
    return ts.strftime(SQLITE_TIME) if sqlite else ts


def build(app, meters: int, days: int, first: date, reading_days: int) -> dict:
    """The station and a year of its quarter-hours, generated inside the database (INSERT … SELECT over the
    meters × the span's quarter-hours): interval energy for every day, readings (with phase voltages) for the
    last ``reading_days``; then the pre-aggregates ingest keeps — ``daily_energy`` and ``line_interval_energy``
    — summed from those intervals in bulk, through the same grouping ``rebuild_daily`` uses."""
    with session_scope(app) as db:
        org = create_organisation(db, f"Bench {uuid.uuid4().hex[:6]}", "cooperative", "43210987",
                                  "UA853005280000026007012345678")
        site = create_site(db, org, "TP-1")
        set_tariff(db, org, "cooperative", Decimal("4.20"), Decimal("1.15"), date(2000, 1, 1),
                   zones={"day": Decimal("1"), "night": Decimal("0.5")})  # the cabinet splits days by zone
        create_user(db, "bench@coop.ua", "bench-password", "manager", org)
        lines = [Line(org_id=org.id, site_id=site.id, number=str(n + 1)) for n in range(LINES)]
        db.add_all(lines)
        db.flush()
        rows = [Meter(org_id=org.id, site_id=site.id, code="IN", role="station_input")]
        rows += [Meter(org_id=org.id, site_id=site.id, code=f"F{n + 1}", role="feeder", line_id=line.id)
                 for n, line in enumerate(lines)]
        rows += [Meter(org_id=org.id, site_id=site.id, code=f"M{i:05d}", role="subscriber",
                       line_id=lines[i % LINES].id) for i in range(max(meters - 1 - LINES, 1))]
        db.add_all(rows)
        gateway = Gateway(org_id=org.id, site_id=site.id, code=f"gw-{uuid.uuid4().hex[:6]}", public_key="-")
        db.add(gateway)
        db.flush()
        batch = Batch(org_id=org.id, gateway_id=gateway.id, seq=1, hash="", prev="", body=b"", signature=b"")
        db.add(batch)
        db.flush()
        names = {"site": "TP-1", "line": "1", "meter": "M00001", "org_id": org.id, "site_id": site.id,
                 "gateway_id": gateway.id, "gateway": gateway.code,
                 "meter_ids": [m.id for m in rows if m.role == "subscriber"]}
        site_id, org_id, batch_id = site.id, org.id, batch.id
    sqlite = app.extensions["balans_engine"].dialect.name == "sqlite"
    start, end = naive_midnight(first), naive_midnight(first + timedelta(days=days))
    steps = int((end - start) / timedelta(minutes=15))
    read_from = steps - int((end - naive_midnight(first + timedelta(days=days - reading_days))) / timedelta(minutes=15))
    engine = app.extensions["balans_engine"]
    with engine.begin() as connection:
        kind = ("TEXT", "TEXT") if sqlite else ("TIMESTAMP", "DATE")
        run_sql(connection, sqlite, f"CREATE TABLE {QUARTERS} (step INTEGER PRIMARY KEY, "
                                    f"start {kind[0]} NOT NULL UNIQUE, day {kind[1]} NOT NULL)")
        quarters = [(step, start + timedelta(minutes=15 * step)) for step in range(steps)]
        connection.exec_driver_sql(f"INSERT INTO {QUARTERS} (step, start, day) VALUES "
                                   f"({', '.join(['?' if sqlite else '%s'] * 3)})", [
            (step, stamp(ts, sqlite), kyiv_day(ts).isoformat() if sqlite else kyiv_day(ts)) for step, ts in quarters])
    # Readings as a gateway sends them: the import register, and each meter's phase voltages (every tenth
    # three-phase; the subscribers of line 4 sagging) — the voltage page's 10-minute means come from these.
    volts = "(230 + (m.id * 7 + q.step) % 24 - 12 - CASE WHEN m.line_id % 10 = 3 THEN 25 ELSE 0 END)"
    three = (f"CASE WHEN m.id % 10 = 0 THEN ', \"voltage_l2\": \"' || ({volts} + 1) || '.0\", "
             f"\"voltage_l3\": \"' || ({volts} - 1) || '.0\"' ELSE '' END")
    values = (f"'{{\"import_kwh\": \"' || (q.step / 10) || '.' || (q.step % 10) || '00\", \"voltage_l1\": \"' "
              f"|| {volts} || '.0\"' || {three} || '}}'")
    # A month at a time (one statement over a year of 5 000 meters would hold 175 million rows in one go); on
    # PostgreSQL on two connections at once.
    statements = [
        "INSERT INTO interval_energy (meter_id, start, imp_wh, exp_wh, flag, batch_id) "
        f"SELECT m.id, q.start, 50 + (m.id + q.step) % 40, 0, 'measured', {int(batch_id)} "
        f"FROM {QUARTERS} q CROSS JOIN meters m WHERE m.site_id = {int(site_id)} "
        f"AND q.step >= {low} AND q.step < {min(low + 96 * 31, steps)}" for low in range(0, steps, 96 * 31)]
    statements += [
        'INSERT INTO readings (meter_id, ts, "values", source, batch_id) '
        f"SELECT m.id, q.start, {values if sqlite else f'CAST({values} AS JSON)'}, 'gateway', {int(batch_id)} "
        f"FROM {QUARTERS} q CROSS JOIN meters m WHERE m.site_id = {int(site_id)} "
        f"AND m.role = 'subscriber' AND q.step >= {low} AND q.step < {min(low + 96 * 31, steps)}"
        for low in range(read_from, steps, 96 * 31)]

    def insert(sql: str) -> None:
        with engine.begin() as connection:
            if not sqlite:  # the rows are consistent by construction: no foreign-key check per row
                connection.exec_driver_sql("SET LOCAL session_replication_role = replica")
            run_sql(connection, sqlite, sql)
        print(f"  … {sql[:32]} {sql[-30:]}", file=sys.stderr, flush=True)

    if not sqlite:  # PostgreSQL: the big tables' keys are built once after the load, not row by row
        with engine.begin() as connection:
            for drop, _ in PG_KEYS:
                connection.exec_driver_sql(drop)
    with ThreadPoolExecutor(1 if sqlite else 2) as pool:
        list(pool.map(insert, statements))
    if not sqlite:
        with ThreadPoolExecutor(2) as pool:
            list(pool.map(lambda sql: run_ddl(engine, sql), [create for _, create in PG_KEYS]))
        with engine.connect() as connection:  # the planner's row counts, before the sums over them
            connection.exec_driver_sql("ANALYZE interval_energy")
            connection.exec_driver_sql("ANALYZE readings")
            connection.commit()
        print("  … keys", file=sys.stderr, flush=True)
    with session_scope(app) as db:
        connection = db.connection()
        meter_ids = f"SELECT id FROM meters WHERE site_id = {int(site_id)}"
        if not sqlite:  # room for the sums' hash tables
            connection.exec_driver_sql("SET LOCAL work_mem = '1GB'")
        # The pre-aggregates, as ingest keeps them (cloud/dashboards/daily.py): Σ per meter and Kyiv day; Σ per
        # group of meters per quarter-hour; Σ per group and Kyiv day from the daily rows.
        run_sql(connection, sqlite,
            "INSERT INTO daily_energy (meter_id, day, org_id, imp_wh, exp_wh, intervals, estimated) "
            f"SELECT e.meter_id, q.day, {int(org_id)}, SUM(e.imp_wh), SUM(e.exp_wh), COUNT(*), "
            "SUM(CASE WHEN e.flag = 'estimated' THEN 1 ELSE 0 END) "
            f"FROM interval_energy e JOIN {QUARTERS} q ON q.start = e.start "
            f"WHERE e.meter_id IN ({meter_ids}) GROUP BY e.meter_id, q.day")
        rebuild_monthly(db, site_id)
        print("  … daily_energy, monthly_energy", file=sys.stderr, flush=True)
        site = db.get(Site, site_id)
        input_id, digest = site_layout(db, site_id)
        db.execute(LineIntervalEnergy.__table__.insert().from_select(
            LINE_COLUMNS, sum_lines(site_id, org_id, input_id, digest)))
        for day in {kyiv_day(ts) for _, ts in quarters}:
            db.execute(LineIntervalEnergy.__table__.insert().from_select(
                LINE_COLUMNS, sum_line_day(site_id, org_id, input_id, digest, day)))
        print("  … line_interval_energy", file=sys.stderr, flush=True)
        run_sql(connection, sqlite, f"DROP TABLE {QUARTERS}")
        if days <= 62:  # small builds: the bulk sums are held to what rebuild_daily writes
            before = aggregates(db, site_id)
            rebuild_daily(db, site)
            assert aggregates(db, site_id) == before, "the bench's bulk sums differ from rebuild_daily's"
    return names | {"intervals": steps * len(names["meter_ids"]) + steps * (1 + LINES),
                    "readings": (steps - read_from) * len(names["meter_ids"])}


# (drop, create) of the keys and indexes of the two big tables, named as the migration names them.
PG_KEYS = [
    ("ALTER TABLE interval_energy DROP CONSTRAINT interval_energy_pkey",
     "ALTER TABLE interval_energy ADD CONSTRAINT interval_energy_pkey PRIMARY KEY (meter_id, start)"),
    ("DROP INDEX interval_energy_start", "CREATE INDEX interval_energy_start ON interval_energy (start)"),
    ("ALTER TABLE readings DROP CONSTRAINT readings_meter_id_ts_key",
     "ALTER TABLE readings ADD CONSTRAINT readings_meter_id_ts_key UNIQUE (meter_id, ts)"),
]


def run_ddl(engine, sql: str) -> None:
    with engine.begin() as connection:
        connection.exec_driver_sql("SET LOCAL maintenance_work_mem = '2GB'")
        connection.exec_driver_sql(sql)


def run_sql(connection, sqlite: bool, sql: str) -> None:
    """Plain SQL through the driver: psycopg reads a lone ``%`` as a placeholder."""
    connection.exec_driver_sql(sql if sqlite else sql.replace("%", "%%"))


def aggregates(db, site_id: int) -> tuple[list, list, list]:
    meters = select(Meter.id).where(Meter.site_id == site_id)
    daily = db.execute(select(DailyEnergy.meter_id, DailyEnergy.day, DailyEnergy.imp_wh, DailyEnergy.exp_wh,
                              DailyEnergy.intervals, DailyEnergy.estimated)
                       .where(DailyEnergy.meter_id.in_(meters)).order_by(DailyEnergy.meter_id, DailyEnergy.day)).all()
    monthly = db.execute(select(MonthlyEnergy.meter_id, MonthlyEnergy.month, MonthlyEnergy.imp_wh,
                                MonthlyEnergy.exp_wh, MonthlyEnergy.intervals, MonthlyEnergy.estimated)
                         .where(MonthlyEnergy.meter_id.in_(meters))
                         .order_by(MonthlyEnergy.meter_id, MonthlyEnergy.month)).all()
    columns = [getattr(LineIntervalEnergy, c) for c in LINE_COLUMNS]
    summed = db.execute(select(*columns).where(LineIntervalEnergy.site_id == site_id).order_by(*columns[:5])).all()
    return [tuple(r) for r in daily], [tuple(r) for r in monthly], [tuple(r) for r in summed]


def build_operations(app, built: dict, first: date, days: int, week_day: date, now: datetime) -> dict:
    """What the operations and cabinet pages read: the gateway's events over the span (a meter in fifteen has one
    a day; those before the last month acknowledged), the voltage episodes of the week of ``week_day``, a week of
    batches (the last hour a backlog), and a resident with a year of issued invoices and payments."""
    org_id, site_id, gateway_id, meter_ids = built["org_id"], built["site_id"], built["gateway_id"], built["meter_ids"]
    with session_scope(app) as db:
        monday = week_day - timedelta(days=week_day.weekday())
        start = naive_midnight(monday)
        sqlite = db.connection().dialect.name == "sqlite"
        kinds = ("voltage_under_voltage", "voltage_over_voltage", "tamper", "counter_reset", "meter_offline",
                 "meter_online")
        rows, seen = [], naive_midnight(first + timedelta(days=days - 31))
        for day in range(days):
            midnight = naive_midnight(first + timedelta(days=day))
            for n in range(max(len(meter_ids) // 15, 20)):
                at = midnight + timedelta(minutes=(n * 37) % 1440)
                kind = kinds[(day + n) % len(kinds)]
                detail = {"phase": "l1", "start": iso_utc(at), "end": iso_utc(at + timedelta(minutes=20)),
                          "extreme_v": "195.0"} if kind.startswith("voltage") else {}
                acked = at < seen
                rows.append((org_id, gateway_id, meter_ids[(day * 7 + n * 13) % len(meter_ids)], stamp(at, sqlite), kind,
                             json.dumps(detail), 1, stamp(at + timedelta(days=1), sqlite) if acked else None,
                             "bench@coop.ua" if acked else "", ""))
        insert_rows(db, "events", ("org_id", "gateway_id", "meter_id", "ts", "kind", "detail", "count",
                                   "acknowledged_at", "acknowledged_by", "note"), rows)
        events = []
        for n, mid in enumerate(meter_ids[:200]):
            at = start + timedelta(hours=3 * n % (24 * VOLTAGE_DAYS))
            kind = ("voltage_under_voltage", "voltage_over_voltage", "tamper", "counter_reset")[n % 4]
            detail = {"phase": "l1", "start": iso_utc(at), "end": iso_utc(at + timedelta(minutes=20)),
                      "extreme_v": "195.0"} if kind.startswith("voltage") else {}
            events.append(Event(org_id=org_id, gateway_id=gateway_id, meter_id=mid, ts=at, kind=kind, detail=detail))
        events += [Event(org_id=org_id, gateway_id=gateway_id, ts=now - timedelta(hours=h), kind="security:bad_signature",
                         detail={}, count=12, last_ts=now - timedelta(hours=h)) for h in range(0, 48, 6)]
        db.add_all(events)
        # One batch a quarter-hour over the span, up to now; the last three hours' received late (a backlog).
        count = days * 96
        batches, sealed = [], now - timedelta(minutes=15 * count)
        for seq in range(2, 2 + count):
            late = now - sealed < timedelta(hours=3) and now - sealed > timedelta(hours=1)
            received = now - timedelta(minutes=(2 + count - seq) % 5) if late else sealed + timedelta(seconds=3)
            body = json.dumps({"created": iso_utc(sealed), "gateway": built["gateway"], "seq": seq}, sort_keys=True,
                              separators=(",", ":")).encode()  # canonical, as a gateway seals it
            batches.append((org_id, gateway_id, seq, f"{seq:064x}", "", body, b"", stamp(received, sqlite), 0))
            sealed += timedelta(minutes=15)
        insert_rows(db, "batches", ("org_id", "gateway_id", "seq", "hash", "prev", "body", "signature", "received_at",
                                    "rows"), batches)
        db.get(Gateway, gateway_id).last_seen = now
        db.get(Gateway, gateway_id).last_seq = seq
        org = db.get(Organisation, org_id)
        site = db.get(Site, site_id)
        account = upsert_account(db, org, "1001", "Іваненко Марія", "вул. Сонячна, 1", site, "maria@example.com")
        db.scalar(select(Meter).where(Meter.site_id == site_id, Meter.code == built["meter"])).account_id = account.id
        create_user(db, "resident@coop.ua", "resident-password", "resident", org, account=account)
        invoice_id = None
        for month in range(1, 13):
            period = f"2026-{month:02d}" if month <= 10 else f"2025-{month:02d}"
            figures = cost_recovery(Decimal("60000.000"), Decimal("4.20"), Decimal("55000.000"), Decimal("290000.00"))
            run = BillingRun(org_id=org_id, site_id=site_id, period=period, status="issued", issued_at=now,
                             summary={**figures.as_json(), "purchase_kwh": "60000.000", "share_price": "4.20"})
            db.add(run)
            db.flush()
            lines = [{"kind": "energy", "description": "електроенергія", "quantity": "210.000", "unit": "кВт·год",
                      "price": "4.32", "amount": "907.20"},
                     {"kind": "export_credit", "description": "відпущено в мережу з СЕС", "quantity": "40.000",
                      "unit": "кВт·год", "price": "-2.00", "amount": "-80.00"}]
            invoice = Invoice(org_id=org_id, run_id=run.id, account_id=account.id, period=period,
                              number=f"B-{period}", status="issued", issued_at=now, due_date=date(2026, 12, 20),
                              quantity_kwh=Decimal("210"), start_reading=Decimal(1000 + 210 * month),
                              end_reading=Decimal(1210 + 210 * month), total=Decimal("827.20"), lines=lines)
            db.add(invoice)
            db.add(Payment(org_id=org_id, key=f"bench-{period}", channel="bank", booked=date(2026, 11, 1),
                           amount=Decimal("827.20"), account_id=account.id, matched_by="purpose"))
            db.flush()
            invoice_id = invoice.id if period == "2026-10" else invoice_id
    with session_scope(app) as db:
        # Each past day's voltage figures are summed once, on the first look (cloud/operations/voltage.py): here, so
        # that the timed requests see what every later visit of the page sees.
        store_voltage_days(db, org_id, [m[0] for m in site_meters(db, db.get(Site, site_id))], Week.of(week_day))
    return {"invoice": invoice_id}


def login(port: int, who: str = "email=bench%40coop.ua&password=bench-password") -> str:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    connection.request("POST", "/login", who,
                       {"Content-Type": "application/x-www-form-urlencoded"})
    response = connection.getresponse()
    response.read()
    cookie = response.getheader("Set-Cookie", "").split(";", 1)[0]
    assert response.status in (302, 303) and cookie, response.status
    return cookie


def time_pages(port: int, cookie: str, names: dict, repeats: int, pages: list = PAGES,
               budget_s: float = 30.0) -> dict[str, list[float]]:
    """Each page's request times in ms: one untimed (it warms the caches), then ``repeats`` — fewer (at least
    five) for a page so slow that they would take more than ``budget_s``."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    found = {}
    for name, template in pages:
        url = template.format(**names)
        times = []
        for n in range(repeats + 1):
            started = time.perf_counter()
            connection.request("GET", url, headers={"Cookie": cookie})
            response = connection.getresponse()
            response.read()
            assert response.status == 200, (url, response.status)
            times.append((time.perf_counter() - started) * 1000)
            if n >= 5 and sum(times) > budget_s * 1000:
                break
        found[name] = times[1:]
        print(f"  … {name}: p95 {p95(found[name])} ms", file=sys.stderr, flush=True)
    return found


def p95(times: list[float]) -> float:
    return round(statistics.quantiles(times, n=20, method="inclusive")[-1] if len(times) > 1 else times[0], 1)


def p50(times: list[float]) -> float:
    return round(statistics.median(times), 1)


def pg_url() -> str:
    name = f"balans_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=3) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"


def add_indexes(url: str, site_id: int) -> None:
    """A kept database built before a table or an index was added to cloud/models.py: create what it lacks (the
    bench's own stand-in for the regenerated migration), and sum the months of a monthly table new to it."""
    engine = make_engine(url)
    Base.metadata.create_all(engine)
    for table in Base.metadata.sorted_tables:
        for index in table.indexes:
            index.create(engine, checkfirst=True)
    with Session(engine) as db, db.begin():
        if db.scalar(select(func.count()).select_from(MonthlyEnergy)) == 0:
            rebuild_monthly(db, site_id)
    engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="example: python -m bench.dashboard_pages --db postgresql --meters 5000")
    parser.add_argument("--quick", action="store_true", help="60 meters, 35 days, 5 requests per page (CI)")
    parser.add_argument("--meters", type=int, default=300)
    parser.add_argument("--days", type=int, default=365, help="days of quarter-hours to build (a year by default)")
    parser.add_argument("--reading-days", type=int, help="days of readings, the last of the span (default: all)")
    parser.add_argument("--db", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--pg", action="store_true", help="the same as --db postgresql")
    parser.add_argument("--repeats", type=int, default=20, help="timed requests per page")
    parser.add_argument("--only", help="time only the pages whose name matches this regular expression")
    parser.add_argument("--keep", action="store_true", help="keep the database; its URL and names go to a file")
    parser.add_argument("--reuse", help="time against a database kept by --keep (the file it wrote)")
    args = parser.parse_args()
    meters, days, repeats = (60, 35, 5) if args.quick else (args.meters, args.days, args.repeats)
    postgres = args.pg or args.db == "postgresql"
    last = date(2026, 10, 31)
    first = last - timedelta(days=days - 1)
    if args.reuse:
        kept = json.loads(Path(args.reuse).read_text())
        url, names, built = kept["url"], kept["names"], kept["build_seconds"]
        meters, days, postgres = kept["meters"], kept["days"], url.startswith("postgresql")
        add_indexes(url, names["site_id"])
    else:
        folder = Path(tempfile.mkdtemp(prefix="balans-dash-"))
        url = pg_url() if postgres else f"sqlite:///{folder / 'cloud.sqlite3'}"
        upgrade(url)
    # CSRF off: the bench signs in with one POST; the pages it times are GETs, checked the same either way.
    app = create_app({"DATABASE_URL": url, "SECRET_KEY": "bench", "WTF_CSRF_ENABLED": False})
    if not args.reuse:
        started = time.perf_counter()
        names = build(app, meters, days, first, min(args.reading_days or days, days))
        names |= build_operations(app, names, first, days, date(2026, 10, 21),
                                  datetime.now(UTC).replace(tzinfo=None, microsecond=0))
        if postgres:  # what autovacuum does soon after a load: the planner's statistics, the visibility map
            with psycopg.connect(url.replace("+psycopg", ""), autocommit=True) as conn:
                conn.execute("VACUUM ANALYZE")
        built = round(time.perf_counter() - started, 1)
        names |= {"month": "2026-10", "day": "2026-10-21", "year": "2026", "first": "2026-10-05", "last": "2026-10-18"}
        if args.keep:
            kept = Path(tempfile.gettempdir()) / f"balans-bench-{uuid.uuid4().hex[:8]}.json"
            kept.write_text(json.dumps({"url": url, "names": names, "meters": meters, "days": days,
                                        "build_seconds": built}))
            print(f"kept: --reuse {kept}", file=sys.stderr)
    gc.collect()  # the build's own garbage, which a server would never have held
    wanted = re.compile(args.only) if args.only else None
    pages = [p for p in PAGES if wanted is None or wanted.search(p[0])]
    resident = [p for p in RESIDENT_PAGES if wanted is None or wanted.search(p[0])]
    port = free_port()
    server = create_server(app, host="127.0.0.1", port=port, threads=4)
    threading.Thread(target=server.run, daemon=True).start()
    try:
        times = time_pages(port, login(port), names, repeats, pages) if pages else {}
        if resident:
            times |= time_pages(port, login(port, "email=resident%40coop.ua&password=resident-password"), names,
                                repeats, resident)
    finally:
        server.close()
        app.extensions["balans_engine"].dispose()
        if postgres and not (args.keep or args.reuse):
            with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}" WITH (FORCE)')
        elif not (postgres or args.keep or args.reuse):
            shutil.rmtree(folder, ignore_errors=True)  # a year of 300 meters is some 3 GB
    pages_ms = {name: {"p50_ms": p50(t), "p95_ms": p95(t), "ratio": round(p95(t) / LIMIT_MS, 2)}
                for name, t in times.items()}
    for name, figures in pages_ms.items():
        print(f"{name:20s} p50 {figures['p50_ms']:7.1f} ms  p95 {figures['p95_ms']:7.1f} ms"
              f"{'  OVER' if figures['p95_ms'] > LIMIT_MS else ''}")
    if not pages_ms:  # --only matched nothing: a build to --keep
        return
    worst = max(pages_ms, key=lambda name: pages_ms[name]["p95_ms"])
    print(json.dumps({"meters": meters, "days": days, "intervals": names["intervals"],
                      "readings": names.get("readings"), "build_seconds": built,
                      "database": "postgresql" if postgres else "sqlite", "pages": pages_ms,
                      "p95_ms": {name: f["p95_ms"] for name, f in pages_ms.items()}, "worst_page": worst,
                      "worst_p95_ms": pages_ms[worst]["p95_ms"], "limit_ms": LIMIT_MS,
                      "ratio": pages_ms[worst]["ratio"]}))


if __name__ == "__main__":
    main()
