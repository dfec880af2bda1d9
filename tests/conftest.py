"""Shared fixtures: the seed scenario, databases (SQLite always, PostgreSQL when present), the app."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import psycopg
import pytest

from cloud import create_app
from cloud.db import session_scope
from cloud.migrate import upgrade
from edge.clock import VirtualClock
from edge.config import config_toml_from_scenario, load_config
from provisioning.ports import free_port
from shared.scenario import load_scenario

ROOT = Path(__file__).resolve().parent.parent
SEED = ROOT / "examples" / "seed-cottage-town.toml"
PG_ADMIN_URL = os.environ.get("BALANS_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")


@pytest.fixture(scope="session")
def seed_scenario():
    return load_scenario(SEED.read_text(encoding="utf-8"), str(SEED))


def _pg_available() -> str | None:
    try:
        with psycopg.connect(PG_ADMIN_URL, connect_timeout=3):
            return None
    except Exception as exc:  # any failure means: no PostgreSQL here
        return f"PostgreSQL at {PG_ADMIN_URL} is not reachable ({exc.__class__.__name__}: {exc})"


@pytest.fixture(scope="session")
def pg_server():
    """Admin URL of the PostgreSQL server; skips without it, fails under CI=true."""
    reason = _pg_available()
    if reason:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true but {reason}")
        pytest.skip(reason)
    return PG_ADMIN_URL


@pytest.fixture
def new_pg_database(pg_server):
    """A factory of fresh, empty PostgreSQL databases, dropped after the test."""
    created = []
    base = pg_server.rsplit("/", 1)[0]

    def make() -> str:
        name = f"balans_test_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(pg_server, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        created.append(name)
        return f"postgresql+psycopg://{base.split('://', 1)[1]}/{name}"

    yield make
    with psycopg.connect(pg_server, autocommit=True) as conn:
        for name in created:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def pg_database(new_pg_database):
    """A fresh, empty PostgreSQL database for one test, dropped afterwards."""
    return new_pg_database()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request, tmp_path):
    """Each cloud test runs on SQLite and on PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'cloud.sqlite3'}"
    return request.getfixturevalue("pg_database")


@pytest.fixture
def app(database_url):
    upgrade(database_url)
    application = create_app({"DATABASE_URL": database_url, "SECRET_KEY": "test", "TESTING": True,
                              "WTF_CSRF_ENABLED": False})
    yield application
    application.extensions["balans_engine"].dispose()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def db(app):
    def scope():
        return session_scope(app)

    return scope


@pytest.fixture
def station_setup(tmp_path, seed_scenario):
    """(scenario, clock, port, gateway config) — the station is started by the test."""
    port = free_port()
    path = tmp_path / "gateway.toml"

    path.write_text(config_toml_from_scenario(seed_scenario, gateway_id="gw-test", host="127.0.0.1", port=port,
                                              cloud_url="http://127.0.0.1:9", poll_seconds=900), encoding="utf-8")

    return seed_scenario, VirtualClock(seed_scenario.period_start), port, load_config(path)
