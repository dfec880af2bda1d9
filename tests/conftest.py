"""Shared fixtures: the seed scenario, databases (SQLite always, PostgreSQL when present), the app.

The migrations run once per session, into a template; each test that uses the app gets its own copy of it
(a file copy on SQLite, ``CREATE DATABASE … TEMPLATE`` on PostgreSQL), so no test sees another's rows and none
waits for Alembic. A test that asks only for ``database_url`` (the migration tests) still gets an empty database.
"""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path

import psycopg
import pytest
from argon2 import PasswordHasher

from cloud import create_app
from cloud.accounts import auth
from cloud.db import session_scope
from cloud.migrate import upgrade
from edge.clock import VirtualClock
from edge.config import config_toml_from_scenario, load_config
from provisioning.ports import free_port
from shared.scenario import load_scenario

ROOT = Path(__file__).resolve().parent.parent
SEED = ROOT / "examples" / "seed-cottage-town.toml"
PG_ADMIN_URL = os.environ.get("BALANS_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
# The URL of a database that was made as a copy of the migrated template (so the app need not migrate it).
MIGRATED_URL = pytest.StashKey[str]()


@pytest.fixture(scope="session", autouse=True)
def cheap_password_hashes():
    """Argon2 at its lowest cost: a real hash takes 0.3 s of CPU, and an office fixture makes four of them.
    The hashes are still argon2 and still checked, so signing in works as in production."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(auth, "hasher", PasswordHasher(time_cost=1, memory_cost=8, parallelism=1))
        yield


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


def _pg_url(admin_url: str, name: str) -> str:
    return f"postgresql+psycopg://{admin_url.rsplit('/', 1)[0].split('://', 1)[1]}/{name}"


@pytest.fixture(scope="session")
def pg_template(pg_server):
    """Name of a PostgreSQL database migrated to head once per session, dropped at the end.

    Its name is unique, so parallel workers and other people's test runs on the same server keep their own;
    connections to it are then disallowed, as ``CREATE DATABASE … TEMPLATE`` fails while anyone is connected.
    """
    name = f"balans_template_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_server, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        upgrade(_pg_url(pg_server, name))
        with psycopg.connect(pg_server, autocommit=True) as conn:
            conn.execute(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS false')
        yield name
    finally:
        with psycopg.connect(pg_server, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def new_pg_database(pg_server, request):
    """A factory of fresh PostgreSQL databases, dropped after the test: empty, or with ``migrated=True`` a copy
    of the session's migrated template."""
    created = []

    def make(migrated: bool = False) -> str:
        name = f"balans_test_{uuid.uuid4().hex[:12]}"
        template = f' TEMPLATE "{request.getfixturevalue("pg_template")}"' if migrated else ""
        with psycopg.connect(pg_server, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"{template}')
        created.append(name)
        return _pg_url(pg_server, name)

    yield make
    with psycopg.connect(pg_server, autocommit=True) as conn:
        for name in created:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def pg_database(new_pg_database):
    """A fresh, empty PostgreSQL database for one test, dropped afterwards."""
    return new_pg_database()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory) -> Path:
    """A SQLite file migrated to head once per session; tests only ever open copies of it."""
    path = tmp_path_factory.mktemp("template") / "cloud.sqlite3"
    upgrade(f"sqlite:///{path}")
    return path


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request, tmp_path):
    """Each cloud test runs on SQLite and on PostgreSQL. The database is empty, or — when the test uses the
    app — already migrated: a copy of the session's template, made here so that it is made only once."""
    migrated = "app" in request.fixturenames
    if request.param == "sqlite":
        path = tmp_path / "cloud.sqlite3"
        if migrated:
            shutil.copyfile(request.getfixturevalue("sqlite_template"), path)
        url = f"sqlite:///{path}"
    else:
        url = request.getfixturevalue("new_pg_database")(migrated=migrated)
    if migrated:
        request.node.stash[MIGRATED_URL] = url
    return url


@pytest.fixture
def app(database_url, request):
    # Only an app asked for late (request.getfixturevalue) finds its database empty and migrates it itself.
    if request.node.stash.get(MIGRATED_URL, None) != database_url:
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
