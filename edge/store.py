"""The gateway's local store (SQLite via sqlite-utils): readings, interval energy, events, outbox.

All writes go through one writer thread, each as a function run inside ``BEGIN IMMEDIATE``,
so the event loop never blocks on disk and every change is all-or-nothing. WAL plus
``synchronous=FULL`` means what was committed survives a power cut.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import sqlite_utils

T = TypeVar("T")


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
    # Daily totals of interval energy (UTC days, as periods are), kept equal to the sum of the day's intervals
    # by triggers in the same transaction as every change to them: a month's balance reads 31 rows a meter
    # instead of 2 976 (a Pi balances a month in milliseconds). Rows go when their last interval goes.
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


def open_database(path: Path) -> sqlite_utils.Database:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None, timeout=30)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA foreign_keys=ON")
    db = sqlite_utils.Database(conn)
    migrate(db)
    return db


def migrate(db: sqlite_utils.Database) -> int:
    version = db.conn.execute("PRAGMA user_version").fetchone()[0]
    for number, migration in enumerate(MIGRATIONS[version:], start=version + 1):
        db.conn.execute("BEGIN IMMEDIATE")
        try:
            migration(db)
            db.conn.execute(f"PRAGMA user_version = {number}")
            db.conn.execute("COMMIT")
        except BaseException:
            db.conn.execute("ROLLBACK")
            raise
    return len(MIGRATIONS)


class Store:
    """One connection owned by one thread; ``write`` runs a function in a transaction there."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="balans-store")
        self.db: sqlite_utils.Database = self._executor.submit(open_database, self.path).result()

    def _transaction(self, fn: Callable[[sqlite_utils.Database], T]) -> T:
        self.db.conn.execute("BEGIN IMMEDIATE")
        try:
            result = fn(self.db)
        except BaseException:
            # SQLite may already have rolled back by itself (a full disk does): roll back only what is open.
            if self.db.conn.in_transaction:
                self.db.conn.execute("ROLLBACK")
            raise
        try:
            self.db.conn.execute("COMMIT")
        except BaseException:
            if self.db.conn.in_transaction:
                self.db.conn.execute("ROLLBACK")
            raise
        return result

    async def write(self, fn: Callable[[sqlite_utils.Database], T]) -> T:
        """Run ``fn(db)`` inside BEGIN IMMEDIATE … COMMIT on the writer thread."""
        return await asyncio.get_running_loop().run_in_executor(self._executor, self._transaction, fn)

    async def read(self, fn: Callable[[sqlite_utils.Database], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, self.db)

    def write_sync(self, fn: Callable[[sqlite_utils.Database], T]) -> T:
        return self._executor.submit(self._transaction, fn).result()

    def read_sync(self, fn: Callable[[sqlite_utils.Database], T]) -> T:
        return self._executor.submit(fn, self.db).result()

    def close(self) -> None:
        self._executor.submit(self.db.conn.close).result()
        self._executor.shutdown(wait=True)


def get_meta(db: sqlite_utils.Database, key: str, default: str | None = None) -> str | None:
    row = db.execute("SELECT value FROM meta WHERE key = ?", [key]).fetchone()
    return row[0] if row else default


def set_meta(db: sqlite_utils.Database, key: str, value: Any) -> None:
    db.execute("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", [key, str(value)])
