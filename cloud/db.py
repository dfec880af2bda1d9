"""Engine and sessions: one engine per app, one session per request (or per CLI command)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path

from flask import Flask, current_app, g, has_app_context
from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite:///") and not url.startswith("sqlite:///:memory:"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 30})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection, _record):
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()
            # SQLite's own lower() knows only ASCII: «Іваненко» would never be found as «іваненко».
            dbapi_connection.create_function("lower", 1, _unicode_lower, deterministic=True)

        return engine
    return create_engine(url, pool_pre_ping=True)


def _unicode_lower(value):
    return value.lower() if isinstance(value, str) else value


def init_app(app: Flask) -> None:
    engine = make_engine(app.config["DATABASE_URL"])
    app.extensions["balans_engine"] = engine
    # SQLite has one writer at a time and its busy handler waits by sleeping; queueing the app's own
    # writers on a lock instead keeps concurrent gateways at full speed. PostgreSQL needs no such thing.
    app.extensions["balans_write_lock"] = threading.Lock() if engine.dialect.name == "sqlite" else nullcontext()
    app.extensions["balans_sessions"] = sessionmaker(engine, expire_on_commit=False)
    app.teardown_appcontext(_close_session)


def write_lock():
    """Hold it around a write transaction: serialises writers on SQLite, a no-op on PostgreSQL and outside the
    app (a command runs alone)."""
    if not has_app_context():
        return nullcontext()
    return current_app.extensions["balans_write_lock"]


def session() -> Session:
    """The request's session (opened on first use, closed at teardown)."""
    if "db_session" not in g:
        g.db_session = current_app.extensions["balans_sessions"]()
    return g.db_session


def _close_session(_exc) -> None:
    db_session = g.pop("db_session", None)
    if db_session is not None:
        db_session.close()


@contextmanager
def session_scope(app: Flask) -> Iterator[Session]:
    """A session for CLI commands and background work: commit on success, roll back on error."""
    with app.extensions["balans_sessions"]() as db_session:
        try:
            yield db_session
            db_session.commit()
        except BaseException:
            db_session.rollback()
            raise


def driver_rows(db: Session, sql: str, params: tuple) -> list[tuple]:
    """Run a SELECT straight through the driver (``?`` placeholders on every database) and return plain tuples:
    for the queries run with every received batch, where SQLAlchemy's compiling and row objects cost more
    than the query itself."""
    return _through_driver(db, sql, params, fetch=True)


def driver_execute(db: Session, sql: str, params: tuple) -> None:
    """A statement with no result (an UPDATE), straight through the driver, as ``driver_rows`` runs a SELECT."""
    _through_driver(db, sql, params, fetch=False)


def _through_driver(db: Session, sql: str, params: tuple, fetch: bool) -> list[tuple]:
    connection = db.connection()
    if connection.dialect.name == "postgresql":
        sql = sql.replace("?", "%s")
    cursor = connection.connection.cursor()
    try:
        cursor.execute(sql, params)
        return cursor.fetchall() if fetch else []
    finally:
        cursor.close()


def insert_rows(db: Session, table: str, columns: tuple[str, ...], rows: list[tuple], ignore_duplicates: bool = False) -> None:
    """INSERT plain tuples straight through the driver (executemany): for the paths that write thousands of
    rows at once, where per-row ORM work would cost more than the database. With ``ignore_duplicates`` a row
    that is already stored is skipped (ON CONFLICT DO NOTHING)."""
    if not rows:
        return
    connection = db.connection()
    names = ", ".join(f'"{c}"' for c in columns)
    postgres = connection.dialect.name == "postgresql"
    marks = ", ".join(["%s" if postgres else "?"] * len(columns))
    # ON CONFLICT DO NOTHING skips only a row whose key is already there; SQLite's "OR IGNORE" would also
    # skip a row that breaks NOT NULL or CHECK — silently losing data — so it is never used.
    sql = f"INSERT INTO {table} ({names}) VALUES ({marks})" + (" ON CONFLICT DO NOTHING" if ignore_duplicates else "")
    connection.exec_driver_sql(sql, rows)
