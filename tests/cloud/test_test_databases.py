"""The databases the tests stand on: the app's is migrated to head and empty, and what a test writes stays in
its own copy — the session's template, from which the next test's database is made, never sees it."""

from __future__ import annotations

import shutil

from alembic.script import ScriptDirectory
from sqlalchemy import MetaData, func, inspect, select, text

from cloud.db import make_engine
from cloud.migrate import alembic_config
from tests.cloud.conftest import setup_cooperative


def rows_per_table(url: str) -> dict[str, int]:
    engine = make_engine(url)
    try:
        metadata = MetaData()
        metadata.reflect(engine)
        with engine.connect() as conn:
            return {name: conn.scalar(select(func.count()).select_from(table))
                    for name, table in metadata.tables.items() if name != "alembic_version"}
    finally:
        engine.dispose()


def revision(url: str) -> str:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return conn.scalar(text("SELECT version_num FROM alembic_version"))
    finally:
        engine.dispose()


def test_the_app_gets_a_database_at_head_with_nothing_in_it(app, database_url):
    assert revision(database_url) == ScriptDirectory.from_config(alembic_config(database_url)).get_current_head()
    counts = rows_per_table(database_url)
    assert counts and set(counts.values()) == {0}


def test_a_database_url_without_the_app_is_empty(database_url):
    engine = make_engine(database_url)
    try:
        assert inspect(engine).get_table_names() == []
    finally:
        engine.dispose()


def test_what_a_test_writes_never_reaches_the_next_tests_database(app, db, seed_scenario, database_url, request,
                                                                   tmp_path):
    setup_cooperative(db, seed_scenario)
    assert rows_per_table(database_url)["organisations"] == 1
    if database_url.startswith("sqlite"):
        shutil.copyfile(request.getfixturevalue("sqlite_template"), tmp_path / "next.sqlite3")
        next_url = f"sqlite:///{tmp_path / 'next.sqlite3'}"
    else:
        next_url = request.getfixturevalue("new_pg_database")(migrated=True)
    assert set(rows_per_table(next_url).values()) == {0}
