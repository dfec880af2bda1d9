"""Backup and restore of the cloud database, consistent while the app runs.

SQLite: the online backup API (a consistent snapshot, writers are not blocked for long).
PostgreSQL: ``pg_dump --format=custom`` (one consistent snapshot) and ``pg_restore`` into an empty database.
"""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
from pathlib import Path

from sqlalchemy import inspect
from sqlalchemy.engine import make_url

from cloud.db import make_engine


class BackupError(Exception):
    pass


def _libpq_url(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def backup(url: str, out: Path) -> Path:
    """Write a consistent copy of the database at ``url`` to ``out``."""
    out.parent.mkdir(parents=True, exist_ok=True)
    if url.startswith("sqlite"):
        source = make_url(url).database
        if not source or not Path(source).exists():
            raise BackupError(f"no SQLite database at {source!r}")
        partial = out.with_suffix(out.suffix + ".part")
        with sqlite3.connect(source) as src, sqlite3.connect(partial) as dst:
            src.backup(dst)
        partial.replace(out)
        return out
    if shutil.which("pg_dump") is None:
        raise BackupError("pg_dump is not installed (Debian: apt-get install postgresql-client)")
    result = subprocess.run(["pg_dump", "--format=custom", "--no-owner", f"--file={out}", _libpq_url(url)],
                            capture_output=True, text=True)
    if result.returncode != 0:
        raise BackupError(f"pg_dump failed: {result.stderr.strip()}")
    return out


def restore(url: str, source: Path) -> None:
    """Restore a backup into the database at ``url``, which must be empty (nothing is overwritten)."""
    if not source.exists():
        raise BackupError(f"no backup file {source}")
    engine = make_engine(url)
    try:
        tables = inspect(engine).get_table_names()
    finally:
        engine.dispose()
    if tables:
        raise BackupError(f"the target database is not empty ({len(tables)} tables); restore only into an empty one")
    if url.startswith("sqlite"):
        target = make_url(url).database
        with sqlite3.connect(source) as src, sqlite3.connect(target) as dst:
            src.backup(dst)
        return
    if shutil.which("pg_restore") is None:
        raise BackupError("pg_restore is not installed (Debian: apt-get install postgresql-client)")
    result = subprocess.run(["pg_restore", "--no-owner", "--exit-on-error", f"--dbname={_libpq_url(url)}",
                             str(source)], capture_output=True, text=True)
    if result.returncode != 0:
        raise BackupError(f"pg_restore failed: {result.stderr.strip()}")
