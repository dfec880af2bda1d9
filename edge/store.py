"""The gateway's local store (SQLite via sqlite-utils): its schema, its migrations, and every SQL statement
the edge runs, each behind a method named for what it does (``save_readings``, ``pending_batch`` …).

All writes go through one writer thread, each as a function run inside ``BEGIN IMMEDIATE``, so the event
loop never blocks on disk and every change is all-or-nothing. WAL plus ``synchronous=FULL`` means what was
committed survives a power cut.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from functools import lru_cache
from itertools import pairwise
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

import sqlite_utils

from edge.energy import CounterPoint, IntervalEnergy, MeterCounter
from shared.batch import GENESIS_HASH, SealedBatch
from shared.calendar import as_utc, iso_utc, parse_iso

T = TypeVar("T")

# An event's priority: an alert (high) is sealed alone and sent first.
HIGH = "high"
NORMAL = "normal"


def _migration_1(db: sqlite_utils.Database) -> None:
    db["meta"].create({"key": str, "value": str}, pk="key")
    db["readings"].create(
        {"id": int, "meter": str, "ts": str, "mono": float, "q": str, "seq": int}, pk="id"
    )
    db["intervals"].create(
        # Energy as integer Wh: sums in SQL stay exact (SQLite would add decimal text as floats).
        {"meter": str, "start": str, "imp_wh": int, "exp_wh": int, "flag": str, "seq": int},
        pk=("meter", "start"),
    )
    db["boundaries"].create({"meter": str, "ts": str, "imp": str, "exp": str}, pk="meter")
    db["last_readings"].create({"meter": str, "ts": str, "imp": str, "exp": str}, pk="meter")
    db["events"].create(
        {"id": int, "ts": str, "kind": str, "meter": str, "detail": str, "priority": str, "seq": int},
        pk="id",
    )
    db["batches"].create(
        {
            "seq": int, "hash": str, "prev": str, "body": bytes, "signature": bytes, "created": str,
            "priority": str, "rows": int, "status": str, "sent_at": str, "attempts": int, "last_error": str,
        },
        pk="seq",
    )
    db["meter_state"].create(
        {"meter": str, "online": int, "since": str, "last_ts": str, "last_q": str, "failures": int},
        pk="meter",
    )
    db.execute("CREATE INDEX readings_unsent ON readings(seq) WHERE seq IS NULL")
    db.execute("CREATE INDEX intervals_unsent ON intervals(seq) WHERE seq IS NULL")
    db.execute("CREATE INDEX intervals_start ON intervals(start)")
    db.execute("CREATE INDEX events_unsent ON events(seq) WHERE seq IS NULL")
    db.execute("CREATE INDEX batches_pending ON batches(status, priority, seq)")


def _migration_2(db: sqlite_utils.Database) -> None:
    # 10-minute voltage means per meter and phase (EN 50160 statistics), kept as running sums.
    db["voltage_10min"].create({"meter": str, "phase": str, "start": str, "total": float, "samples": int},
                               pk=("meter", "phase", "start"))


def _migration_3(db: sqlite_utils.Database) -> None:
    # Daily totals of interval energy per UTC day, kept equal to the sum of the day's intervals by triggers in
    # the same transaction as every change to them. SQLite knows no time zones, so the totals stay on UTC days;
    # a Kyiv day or month, 2 or 3 hours off them, is read from them plus the few hours of intervals at each end
    # (GatewayDatabase.energy_in_spans): a month's balance reads about 31 rows a meter instead of 2 976 (a Pi
    # balances a month in milliseconds). Rows go when their last interval goes.
    db.execute("""CREATE TABLE daily_energy (meter TEXT NOT NULL, day TEXT NOT NULL, imp_wh INTEGER NOT NULL,
                  exp_wh INTEGER NOT NULL, intervals INTEGER NOT NULL, estimated INTEGER NOT NULL,
                  PRIMARY KEY (meter, day))""")
    db.execute("""INSERT INTO daily_energy SELECT meter, substr(start, 1, 10), sum(imp_wh), sum(exp_wh), count(*),
                  sum(flag = 'estimated') FROM intervals GROUP BY meter, substr(start, 1, 10)""")
    add = """INSERT INTO daily_energy VALUES (NEW.meter, substr(NEW.start, 1, 10), NEW.imp_wh, NEW.exp_wh, 1,
                 NEW.flag = 'estimated')
             ON CONFLICT (meter, day) DO UPDATE SET imp_wh = imp_wh + excluded.imp_wh,
                 exp_wh = exp_wh + excluded.exp_wh, intervals = intervals + 1,
                 estimated = estimated + excluded.estimated;"""
    take = """UPDATE daily_energy SET imp_wh = imp_wh - OLD.imp_wh, exp_wh = exp_wh - OLD.exp_wh,
                 intervals = intervals - 1, estimated = estimated - (OLD.flag = 'estimated')
             WHERE meter = OLD.meter AND day = substr(OLD.start, 1, 10);
             DELETE FROM daily_energy WHERE meter = OLD.meter AND day = substr(OLD.start, 1, 10) AND intervals = 0;"""
    db.execute(f"CREATE TRIGGER intervals_daily_insert AFTER INSERT ON intervals BEGIN {add} END")
    db.execute(f"CREATE TRIGGER intervals_daily_delete AFTER DELETE ON intervals BEGIN {take} END")
    # Marking rows as batched (seq) leaves the totals alone; a change of what an interval measured moves them.
    db.execute(f"""CREATE TRIGGER intervals_daily_update AFTER UPDATE OF meter, start, imp_wh, exp_wh, flag
                   ON intervals BEGIN {take} {add} END""")


# Migrations are registered functions, each applied once, in order, in its own transaction.
MIGRATIONS: list[Callable[[sqlite_utils.Database], None]] = [_migration_1, _migration_2, _migration_3]


def open_database(path: Path) -> GatewayDatabase:
    """Open (creating and migrating as needed) the store at ``path``, with the durability pragmas."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None, timeout=30)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA foreign_keys=ON")
    db = sqlite_utils.Database(conn)
    migrate(db)
    return GatewayDatabase(db)


class StoreSchemaNewer(RuntimeError):
    """The store was migrated by a newer balans than this one: this code does not know its tables, and would
    fail obscurely on them or write rows the newer code misreads."""


def migrate(db: sqlite_utils.Database) -> int:
    """Apply the migrations not yet applied. Two processes may open a new store at once (the gateway starting,
    ``balans edge status`` beside it): the version is read under the write lock, so each migration runs once."""
    while True:
        db.conn.execute("BEGIN IMMEDIATE")
        try:
            version = db.conn.execute("PRAGMA user_version").fetchone()[0]
            if version > len(MIGRATIONS):
                where = db.conn.execute("PRAGMA database_list").fetchone()[2]
                raise StoreSchemaNewer(
                    f"the store {where} has schema version {version}, this balans knows only up to "
                    f"{len(MIGRATIONS)}: a newer balans migrated it. Run that version again (the update launcher "
                    "falls back only to versions that know the store), or restore the store's backup from before")
            if version == len(MIGRATIONS):
                db.conn.execute("COMMIT")
                return len(MIGRATIONS)
            MIGRATIONS[version](db)
            db.conn.execute(f"PRAGMA user_version = {version + 1}")
            db.conn.execute("COMMIT")
        except BaseException:
            db.conn.execute("ROLLBACK")
            raise


@dataclass(frozen=True)
class MeterState:
    """A meter's availability as last recorded: online since when, its last answer, failed polls in a row."""

    online: bool
    since: str | None
    last_ts: str | None
    failures: int


@dataclass(frozen=True)
class EnergyTotals:
    """Σ of one meter's intervals over a span: energy in Wh, how many intervals, how many of them estimated."""

    imp_wh: int
    exp_wh: int
    intervals: int
    estimated: int


class UnsentReading(NamedTuple):
    id: int
    meter: str
    ts: str  # ISO UTC, as the batch carries it
    values: dict[str, str]


class UnsentInterval(NamedTuple):
    meter: str
    start: str  # ISO UTC
    imp_wh: int
    exp_wh: int
    flag: str


class UnsentEvent(NamedTuple):
    id: int
    ts: str  # ISO UTC
    kind: str
    meter: str | None
    detail: dict
    priority: str


class GatewayDatabase:
    """The gateway's SQLite database through named operations.

    A method writes as part of the caller's transaction (:meth:`transaction`, or :meth:`Store.write`); on its
    own it commits at once. Instants are stored as ISO UTC text, energy as integer Wh.
    """

    def __init__(self, db: sqlite_utils.Database):
        self.conn: sqlite3.Connection = db.conn  # the methods' own; tests and tools may look inside with it

    @contextmanager
    def transaction(self) -> Iterator[GatewayDatabase]:
        """``BEGIN IMMEDIATE`` … ``COMMIT``; any error rolls back everything done inside."""
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield self
        except BaseException:
            # SQLite may already have rolled back by itself (a full disk does): roll back only what is open.
            if self.conn.in_transaction:
                self.conn.execute("ROLLBACK")
            raise
        try:
            self.conn.execute("COMMIT")
        except BaseException:
            if self.conn.in_transaction:
                self.conn.execute("ROLLBACK")
            raise

    def close(self) -> None:
        self.conn.close()

    # --- meta: small named values (clock state, open voltage episodes, the chain head) --------------------
    def get_meta(self, key: str, default: str | None = None) -> str | None:
        row = self.conn.execute("SELECT value FROM meta WHERE key = ?", [key]).fetchone()
        return row[0] if row else default

    def set_meta(self, key: str, value: Any) -> None:
        self.conn.execute("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", [key, str(value)])

    # --- events ---------------------------------------------------------------------------------------------
    def add_event(self, ts: datetime, kind: str, meter: str | None = None, detail: dict | None = None,
                  priority: str = NORMAL) -> None:
        self.conn.execute(
            "INSERT INTO events(ts, kind, meter, detail, priority) VALUES (?, ?, ?, ?, ?)",
            [iso_utc(ts), kind, meter, json.dumps(detail or {}, ensure_ascii=False, sort_keys=True), priority],
        )

    def has_event(self, kind: str, start: datetime, end: datetime) -> bool:
        """Whether an event of this kind was recorded in [start, end)."""
        return self.conn.execute("SELECT 1 FROM events WHERE kind = ? AND ts >= ? AND ts < ? LIMIT 1",
                                 [kind, iso_utc(start), iso_utc(end)]).fetchone() is not None

    # --- readings and the meters' state ---------------------------------------------------------------------
    def save_readings(self, at: datetime, mono: float, values: dict[str, dict[str, str]]) -> None:
        """One poll's answers (meter → decoded values): kept as readings, and each meter recorded online."""
        ts = iso_utc(at)
        rows = [(meter, json.dumps(found, sort_keys=True)) for meter, found in values.items()]
        self.conn.executemany("INSERT INTO readings(meter, ts, mono, q) VALUES (?, ?, ?, ?)",
                              [(meter, ts, mono, q) for meter, q in rows])
        self.conn.executemany(
            "INSERT OR REPLACE INTO meter_state(meter, online, since, last_ts, last_q, failures) "
            "VALUES (?, 1, COALESCE((SELECT since FROM meter_state WHERE meter = ? AND online = 1), ?), ?, ?, 0)",
            [(meter, meter, ts, ts, q) for meter, q in rows],
        )

    def mark_offline(self, meter: str, at: datetime, failures: int) -> None:
        """The meter has just gone silent: offline since ``at``, its last answer kept."""
        self.conn.execute(
            "INSERT OR REPLACE INTO meter_state(meter, online, since, last_ts, last_q, failures) VALUES "
            "(?, 0, ?, (SELECT last_ts FROM meter_state WHERE meter = ?), "
            "(SELECT last_q FROM meter_state WHERE meter = ?), ?)",
            [meter, iso_utc(at), meter, meter, failures],
        )

    def set_failures(self, meter: str, failures: int) -> None:
        self.conn.execute("UPDATE meter_state SET failures = ? WHERE meter = ?", [failures, meter])

    def meter_states(self) -> dict[str, MeterState]:
        return {meter: MeterState(bool(online), since, last_ts, failures or 0) for meter, online, since, last_ts,
                failures in self.conn.execute("SELECT meter, online, since, last_ts, failures FROM meter_state")}

    # --- counters: where each meter's interval energy goes on from after a restart -------------------------
    def save_counter(self, meter: str, counter: MeterCounter) -> None:
        """The meter's last reading and the boundary its next interval starts from (none: a new segment)."""
        last, boundary = counter.last, counter.boundary
        if last is not None:
            self.conn.execute("INSERT OR REPLACE INTO last_readings(meter, ts, imp, exp) VALUES (?, ?, ?, ?)",
                              [meter, iso_utc(last.ts), f"{last.imp:f}", f"{last.exp:f}"])
        if boundary is not None:
            self.conn.execute("INSERT OR REPLACE INTO boundaries(meter, ts, imp, exp) VALUES (?, ?, ?, ?)",
                              [meter, iso_utc(boundary.ts), f"{boundary.imp:f}", f"{boundary.exp:f}"])
        else:
            self.conn.execute("DELETE FROM boundaries WHERE meter = ?", [meter])

    def counters(self) -> dict[str, MeterCounter]:
        """Every meter's counter as last saved (its serial number is not kept)."""
        def points(table: str) -> dict[str, CounterPoint]:
            return {meter: CounterPoint(parse_iso(ts), Decimal(imp), Decimal(exp))
                    for meter, ts, imp, exp in self.conn.execute(f"SELECT meter, ts, imp, exp FROM {table}")}

        last, boundaries = points("last_readings"), points("boundaries")
        return {meter: MeterCounter(last.get(meter), boundaries.get(meter)) for meter in last.keys() | boundaries}

    # --- interval energy ------------------------------------------------------------------------------------
    def save_intervals(self, intervals: list[IntervalEnergy]) -> None:
        """Closed intervals, as integer Wh; one already there (the same meter and start) is left as it is."""
        self.conn.executemany(
            "INSERT OR IGNORE INTO intervals(meter, start, imp_wh, exp_wh, flag) VALUES (?, ?, ?, ?, ?)",
            [(i.meter, _stamp(i.start), int(i.imp * 1000), int(i.exp * 1000), i.flag) for i in intervals],
        )

    def energy_per_interval(self, start: datetime, end: datetime) -> Iterator[tuple[str, str, EnergyTotals]]:
        """(interval start, meter, energy) for every interval in [start, end), in time order."""
        for at, meter, imp, exp, flag in self.conn.execute(
                "SELECT start, meter, imp_wh, exp_wh, flag FROM intervals WHERE start >= ? AND start < ? "
                "ORDER BY start", [iso_utc(start), iso_utc(end)]):
            yield at, meter, EnergyTotals(imp, exp, 1, int(flag == "estimated"))

    def energy_in_spans(self, bounds: list[datetime]) -> list[dict[str, EnergyTotals]]:
        """Σ interval energy per meter in each span [bounds[i], bounds[i + 1]), exact to the Wh and the interval.

        The energy counted before an instant is that of the UTC days before the midnight nearest to it (their
        daily totals), plus the intervals from that midnight to it, or less those from it to that midnight; a
        span's energy is the difference at its two ends. A Kyiv midnight is 2 or 3 hours from a UTC one, so a
        Kyiv day or month reads at most 6 hours of intervals however long it is. Spans shorter than what the
        ends would cost are summed from their intervals. A meter with no interval in a span is left out of it.
        """
        if len(bounds) < 2:
            return []
        bounds = [as_utc(t) for t in bounds]
        midnights = [_nearest_midnight(t) for t in bounds]
        if sum((abs(t - m) for t, m in zip(bounds, midnights, strict=True)), timedelta()) >= bounds[-1] - bounds[0]:
            return [_totals(self._sum_intervals(a, b)) for a, b in pairwise(bounds)]
        # Running sums of [imp, exp, intervals, estimated] per meter, one dict a span; first each span's whole
        # UTC days from the daily totals, in one pass (the CASE tells which span a day belongs to) …
        sums: list[dict[str, list[int]]] = [{} for _ in bounds[1:]]
        span_of_day = " ".join("WHEN day < ? THEN ?" for _ in sums)
        for span, meter, *totals in self.conn.execute(
                f"SELECT CASE {span_of_day} END AS span, meter, sum(imp_wh), sum(exp_wh), sum(intervals), "
                "sum(estimated) FROM daily_energy WHERE day >= ? AND day < ? GROUP BY span, meter",
                [*(x for i, m in enumerate(midnights[1:]) for x in (_day(m), i)), _day(midnights[0]),
                 _day(midnights[-1])]):
            sums[span][meter] = totals
        # … then at each bound the intervals between it and its midnight: Σ intervals before the bound, less
        # Σ daily totals before the midnight. They end one span and start the next.
        for index, (t, m) in enumerate(zip(bounds, midnights, strict=True)):
            if t == m:
                continue
            correction, sign = (self._sum_intervals(m, t), 1) if m < t else (self._sum_intervals(t, m), -1)
            if index > 0:
                _add(sums[index - 1], correction, sign)
            if index < len(sums):
                _add(sums[index], correction, -sign)
        return [_totals(found) for found in sums]

    def _sum_intervals(self, start: datetime, end: datetime) -> dict[str, tuple]:
        return {meter: totals for meter, *totals in self.conn.execute(
            "SELECT meter, sum(imp_wh), sum(exp_wh), count(*), sum(flag = 'estimated') FROM intervals "
            "WHERE start >= ? AND start < ? GROUP BY meter", [iso_utc(start), iso_utc(end)])}

    # --- voltage --------------------------------------------------------------------------------------------
    def add_voltage_samples(self, samples: list[tuple[str, str, datetime, float]]) -> None:
        """(meter, phase, 10-minute window start, volts) into the running 10-minute means."""
        self.conn.executemany(
            "INSERT INTO voltage_10min(meter, phase, start, total, samples) VALUES (?, ?, ?, ?, 1) "
            "ON CONFLICT(meter, phase, start) DO UPDATE SET total = total + excluded.total, samples = samples + 1",
            [(meter, phase, iso_utc(window), value) for meter, phase, window, value in samples])

    def voltage_means(self, start: datetime, end: datetime) -> Iterator[tuple[str, str, datetime, float]]:
        """(meter, phase, window start, mean volts) of every 10-minute window in [start, end), in time order."""
        for meter, phase, window, total, samples in self.conn.execute(
                "SELECT meter, phase, start, total, samples FROM voltage_10min WHERE start >= ? AND start < ? "
                "ORDER BY start", [iso_utc(start), iso_utc(end)]):
            yield meter, phase, parse_iso(window), total / samples

    # --- the outbox: unsent rows, sealed batches, their delivery ------------------------------------------
    def unsent_events(self, limit: int) -> list[UnsentEvent]:
        """Events in no batch yet, alerts first, then in the order they happened."""
        return [UnsentEvent(id_, ts, kind, meter, json.loads(detail or "{}"), priority)
                for id_, ts, kind, meter, detail, priority in self.conn.execute(
                    "SELECT id, ts, kind, meter, detail, priority FROM events WHERE seq IS NULL "
                    "ORDER BY priority = 'high' DESC, id LIMIT ?", [limit])]

    def unsent_readings(self, limit: int) -> list[UnsentReading]:
        return [UnsentReading(id_, meter, ts, json.loads(q)) for id_, meter, ts, q in self.conn.execute(
            "SELECT id, meter, ts, q FROM readings WHERE seq IS NULL ORDER BY id LIMIT ?", [limit])]

    def unsent_intervals(self, limit: int) -> list[UnsentInterval]:
        return [UnsentInterval(*row) for row in self.conn.execute(
            "SELECT meter, start, imp_wh, exp_wh, flag FROM intervals WHERE seq IS NULL ORDER BY start, meter LIMIT ?",
            [limit])]

    def chain_head(self) -> tuple[int, str]:
        """(seq, hash) of the last sealed batch: the next one is seq + 1 and points to that hash."""
        return int(self.get_meta("last_seq", "0")), self.get_meta("chain_head", GENESIS_HASH)

    def save_batch(self, batch: SealedBatch, created: str, priority: str, readings: list[UnsentReading],
                   intervals: list[UnsentInterval], events: list[UnsentEvent]) -> None:
        """A sealed batch, pending, with every row it holds marked as in it, and the chain moved on to it.

        Call inside the transaction that selected the rows: then a row is unsent or in exactly one batch.
        """
        self.conn.execute(
            "INSERT INTO batches(seq, hash, prev, body, signature, created, priority, rows, status, attempts) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'pending', 0)",
            [batch.seq, batch.hash, batch.prev, batch.body, batch.signature, created, priority,
             len(readings) + len(intervals) + len(events)],
        )
        self.conn.executemany("UPDATE readings SET seq = ? WHERE id = ?", [(batch.seq, r.id) for r in readings])
        self.conn.executemany("UPDATE events SET seq = ? WHERE id = ?", [(batch.seq, e.id) for e in events])
        self.conn.executemany("UPDATE intervals SET seq = ? WHERE meter = ? AND start = ?",
                              [(batch.seq, i.meter, i.start) for i in intervals])
        self.set_meta("last_seq", batch.seq)
        self.set_meta("chain_head", batch.hash)

    def pending_batch(self) -> tuple[int, bytes, bytes] | None:
        """(seq, body, signature) of the batch to send next: alerts first, then in order; None when all went."""
        return self.conn.execute(
            "SELECT seq, body, signature FROM batches WHERE status = 'pending' "
            "ORDER BY priority = 'high' DESC, seq LIMIT 1"
        ).fetchone()

    def mark_batch_sent(self, seq: int, status: str, at: datetime) -> None:
        """The cloud accepted the batch (``status``: stored or duplicate)."""
        self.conn.execute("UPDATE batches SET status = 'sent', sent_at = ?, last_error = ? WHERE seq = ?",
                          [iso_utc(at), status, seq])

    def mark_batch_refused(self, seq: int, answer: dict) -> None:
        """The cloud refused the batch for good; it is kept, with the cloud's answer."""
        self.conn.execute("UPDATE batches SET status = 'refused', last_error = ? WHERE seq = ?",
                          [json.dumps(answer), seq])

    def pending_batch_count(self) -> int:
        return self.conn.execute("SELECT count(*) FROM batches WHERE status = 'pending'").fetchone()[0]

    def batch_counts(self) -> dict[str, int]:
        """How many batches are pending, sent, refused."""
        return dict(self.conn.execute("SELECT status, count(*) FROM batches GROUP BY status").fetchall())

    def unsealed_row_count(self) -> int:
        """Readings and intervals not in any batch yet."""
        return self.conn.execute(
            "SELECT (SELECT count(*) FROM readings WHERE seq IS NULL) + (SELECT count(*) FROM intervals WHERE seq IS NULL)"
        ).fetchone()[0]

    def last_upload(self) -> str | None:
        """When the cloud last accepted a batch (ISO UTC), or None."""
        return self.conn.execute("SELECT max(sent_at) FROM batches WHERE status = 'sent'").fetchone()[0]

    def strip_sent_batch_bodies(self, sent_before: datetime) -> int:
        """Drop body and signature of batches the cloud accepted before then (it keeps them as evidence)."""
        return self.conn.execute(
            "UPDATE batches SET body = x'', signature = x'' WHERE status = 'sent' AND sent_at < ? AND length(body) > 0",
            [iso_utc(sent_before)]).rowcount

    # --- retention: what may go once the cloud has it (rows in batches it accepted) ------------------------
    def delete_sent_readings(self, before: datetime) -> int:
        return self.conn.execute(
            "DELETE FROM readings WHERE ts < ? AND seq IN (SELECT seq FROM batches WHERE status = 'sent')",
            [iso_utc(before)]).rowcount

    def delete_sent_intervals(self, before: datetime) -> int:
        return self.conn.execute(
            "DELETE FROM intervals WHERE start < ? AND seq IN (SELECT seq FROM batches WHERE status = 'sent')",
            [iso_utc(before)]).rowcount

    def delete_voltage_means(self, before: datetime) -> int:
        return self.conn.execute("DELETE FROM voltage_10min WHERE start < ?", [iso_utc(before)]).rowcount


# The intervals a poll closes share one start or a few: format each once.
_stamp = lru_cache(maxsize=256)(iso_utc)


def _nearest_midnight(ts: datetime) -> datetime:
    midnight = ts.replace(hour=0, minute=0, second=0, microsecond=0)
    return midnight if ts - midnight <= timedelta(hours=12) else midnight + timedelta(days=1)


def _day(midnight: datetime) -> str:
    return midnight.date().isoformat()


def _add(into: dict[str, list[int]], found: dict[str, tuple], sign: int) -> None:
    for meter, totals in found.items():
        running = into.setdefault(meter, [0, 0, 0, 0])
        for i, value in enumerate(totals):
            running[i] += sign * value


def _totals(found: dict[str, Any]) -> dict[str, EnergyTotals]:
    return {meter: EnergyTotals(*values) for meter, values in found.items() if values[2]}


class Store:
    """One connection owned by one thread; ``write`` runs a function in a transaction there.

    The function is given the :class:`GatewayDatabase` and calls its named operations.
    """

    def __init__(self, path: Path):
        self.path = Path(path)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="balans-store")
        self.db: GatewayDatabase = self._executor.submit(open_database, self.path).result()

    def _transaction(self, fn: Callable[[GatewayDatabase], T]) -> T:
        with self.db.transaction():
            return fn(self.db)

    async def write(self, fn: Callable[[GatewayDatabase], T]) -> T:
        """Run ``fn(db)`` inside BEGIN IMMEDIATE … COMMIT on the writer thread."""
        return await asyncio.get_running_loop().run_in_executor(self._executor, self._transaction, fn)

    async def read(self, fn: Callable[[GatewayDatabase], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, self.db)

    def write_sync(self, fn: Callable[[GatewayDatabase], T]) -> T:
        return self._executor.submit(self._transaction, fn).result()

    def read_sync(self, fn: Callable[[GatewayDatabase], T]) -> T:
        return self._executor.submit(fn, self.db).result()

    def close(self) -> None:
        self._executor.submit(self.db.close).result()
        self._executor.shutdown(wait=True)
