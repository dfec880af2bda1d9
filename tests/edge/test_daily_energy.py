"""Daily totals of interval energy: always the sum of the day's intervals, whatever is written, ignored,
changed or pruned — and a month's balance read from them equals the one summed from the intervals."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from itertools import pairwise

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edge import store as edge_store
from edge.energy import IntervalEnergy
from edge.energy_reports import meter_energy
from edge.store import open_database

START = datetime(2026, 10, 1, tzinfo=UTC)

intervals = st.tuples(st.sampled_from(["M1", "M2", "F1"]), st.integers(0, 5 * 96 - 1), st.integers(0, 5000),
                      st.integers(0, 300), st.sampled_from(["measured", "estimated"]))
operations = st.lists(st.one_of(
    st.tuples(st.just("insert"), st.lists(intervals, max_size=40)),
    st.tuples(st.just("prune"), st.integers(0, 5 * 96)),
    st.tuples(st.just("correct"), intervals),
    st.tuples(st.just("batch"), st.integers(1, 9)),
), max_size=12)


def stamp(index: int) -> str:
    return (START + timedelta(minutes=15 * index)).strftime("%Y-%m-%dT%H:%M:%SZ")


def summed(db) -> dict:
    return {(m, d): (i, e, n, est) for m, d, i, e, n, est in db.conn.execute(
        "SELECT meter, substr(start, 1, 10), sum(imp_wh), sum(exp_wh), count(*), sum(flag = 'estimated') "
        "FROM intervals GROUP BY 1, 2")}


def daily(db) -> dict:
    return {(m, d): (i, e, n, est) for m, d, i, e, n, est in db.conn.execute(
        "SELECT meter, day, imp_wh, exp_wh, intervals, estimated FROM daily_energy")}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(operations)
def test_daily_totals_are_always_the_sum_of_their_intervals(tmp_path_factory, ops):
    db = open_database(tmp_path_factory.mktemp("daily") / "gateway.sqlite3")
    for op, arg in ops:
        db.conn.execute("BEGIN IMMEDIATE")
        if op == "insert":  # as the gateway writes them: a row already there is ignored
            db.conn.executemany("INSERT OR IGNORE INTO intervals(meter, start, imp_wh, exp_wh, flag) "
                                "VALUES (?, ?, ?, ?, ?)", [(m, stamp(i), w, x, f) for m, i, w, x, f in arg])
        elif op == "prune":  # retention
            db.conn.execute("DELETE FROM intervals WHERE start < ?", [stamp(arg)])
        elif op == "correct":
            meter, index, imp, exp, flag = arg
            db.conn.execute("UPDATE intervals SET imp_wh = ?, exp_wh = ?, flag = ? WHERE meter = ? AND start = ?",
                            [imp, exp, flag, meter, stamp(index)])
        else:  # sealing a batch marks rows; the totals do not move
            db.conn.execute("UPDATE intervals SET seq = ? WHERE seq IS NULL", [arg])
        db.conn.execute("COMMIT")
        assert daily(db) == summed(db)
    db.conn.close()


def test_a_store_from_before_the_daily_totals_gets_them_from_its_intervals(tmp_path, monkeypatch):
    path = tmp_path / "gateway.sqlite3"
    monkeypatch.setattr(edge_store, "MIGRATIONS", edge_store.MIGRATIONS[:2])
    old = open_database(path)
    old.conn.executemany("INSERT INTO intervals(meter, start, imp_wh, exp_wh, flag) VALUES (?, ?, ?, ?, ?)",
                         [("M1", stamp(i), 250, 0, "measured") for i in range(96 * 2)])
    old.conn.close()
    monkeypatch.undo()
    db = open_database(path)
    assert db.conn.execute("PRAGMA user_version").fetchone()[0] == len(edge_store.MIGRATIONS)
    assert daily(db) == {("M1", "2026-10-01"): (24000, 0, 96, 0), ("M1", "2026-10-02"): (24000, 0, 96, 0)}


def test_whole_days_and_a_span_inside_a_day_read_the_same_energy(tmp_path):
    db = open_database(tmp_path / "gateway.sqlite3")
    db.conn.executemany("INSERT INTO intervals(meter, start, imp_wh, exp_wh, flag) VALUES (?, ?, ?, ?, ?)",
                        [("M1", stamp(i), 100 + i % 7, i % 3, "estimated" if i == 5 else "measured")
                         for i in range(96 * 3) if i != 130])
    whole = meter_energy(db, START, START + timedelta(days=3), 15)["M1"]  # from the daily totals
    # The same span from the intervals themselves: a bound off midnight by one second is read from them.
    raw = db.conn.execute("SELECT sum(imp_wh), sum(exp_wh), count(*) FROM intervals").fetchone()
    assert (whole.import_kwh * 1000, whole.export_kwh * 1000) == raw[:2]
    assert not whole.complete and whole.estimated  # one interval missing, one estimated
    second_day = meter_energy(db, START + timedelta(days=1), START + timedelta(days=2), 15)["M1"]
    off_midnight = meter_energy(db, START + timedelta(days=1, seconds=-1), START + timedelta(days=2), 15)["M1"]
    assert (second_day.import_kwh, second_day.complete) == (off_midnight.import_kwh, False)
    assert sqlite3.sqlite_version_info >= (3, 24)  # ON CONFLICT … DO UPDATE in the triggers


stored = st.lists(st.tuples(st.sampled_from(["M1", "M2"]), st.integers(0, 5 * 96 - 1), st.integers(0, 5000),
                            st.sampled_from(["measured", "estimated"])), max_size=200)
instants = st.integers(-3600, 5 * 86400 + 3600).map(lambda seconds: START + timedelta(seconds=seconds))


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(stored, st.lists(instants, min_size=2, max_size=7, unique=True))
def test_spans_read_from_the_daily_totals_are_the_sum_of_their_intervals(tmp_path_factory, rows, bounds):
    """Any spans — Kyiv days and months, spans off midnight by seconds, spans inside a day — read through the
    daily totals add up exactly to the intervals they hold."""
    db = open_database(tmp_path_factory.mktemp("spans") / "gateway.sqlite3")
    with db.transaction():
        db.save_intervals([IntervalEnergy(m, START + timedelta(minutes=15 * i), Decimal(wh).scaleb(-3), Decimal(0), f)
                           for m, i, wh, f in rows])
    kept = {(m, START + timedelta(minutes=15 * i)): (wh, f) for m, i, wh, f in reversed(rows)}  # the first one wins
    bounds = sorted(bounds)
    for (start, end), found in zip(pairwise(bounds), db.energy_in_spans(bounds), strict=True):
        expected = {}
        for (meter, at), (wh, flag) in kept.items():
            if start <= at < end:
                imp, count, estimated = expected.get(meter, (0, 0, 0))
                expected[meter] = (imp + wh, count + 1, estimated + (flag == "estimated"))
        assert {m: (t.imp_wh, t.intervals, t.estimated) for m, t in found.items()} == expected
    db.close()
