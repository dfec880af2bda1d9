"""Backup while the app runs, restore into an empty database: the copy equals the original."""

from __future__ import annotations

import pytest
from sqlalchemy import MetaData, select

from cloud.admin.backup import BackupError, backup, restore
from cloud.db import make_engine
from tests.cloud.test_evidence import chain
from tests.cloud.test_ingestion import post


def snapshot(url: str) -> dict[str, list]:
    engine = make_engine(url)
    try:
        metadata = MetaData()
        metadata.reflect(engine)
        with engine.connect() as conn:
            return {name: sorted(map(tuple, conn.execute(select(table)).all()), key=repr)
                    for name, table in metadata.tables.items()}
    finally:
        engine.dispose()


@pytest.fixture
def empty_url(database_url, tmp_path, request):
    if database_url.startswith("sqlite"):
        return f"sqlite:///{tmp_path / 'restored.sqlite3'}"
    return request.getfixturevalue("new_pg_database")()


def test_a_restore_equals_the_original(app, client, gateway, database_url, empty_url, tmp_path):
    for batch in chain(gateway.key, 3):
        post(client, batch)
    dump = backup(database_url, tmp_path / "balans.backup")
    restore(empty_url, dump)
    original, restored = snapshot(database_url), snapshot(empty_url)
    assert original["batches"] and original == restored


def test_restore_refuses_a_database_that_is_not_empty(app, database_url, tmp_path):
    dump = backup(database_url, tmp_path / "balans.backup")
    with pytest.raises(BackupError, match="not empty"):
        restore(database_url, dump)
