"""``balans cloud db upgrade | backup | restore``: the schema and the daily backup."""

from __future__ import annotations

from pathlib import Path

import click
from flask import current_app
from flask.cli import with_appcontext

from cloud.admin.backup import BackupError, backup, restore
from cloud.cli.lookup import performs
from cloud.migrate import upgrade
from cloud.permissions import Action


@click.group("db")
def db_group():
    """Database schema (Alembic migrations)."""


@performs(Action.MAINTAIN)
@db_group.command("upgrade")
@with_appcontext
def db_upgrade():
    """Apply all migrations.  Example: balans cloud db upgrade"""
    upgrade(current_app.config["DATABASE_URL"])
    click.echo("database is at the latest schema")


@performs(Action.MAINTAIN)
@click.command("backup")
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False))
@with_appcontext
def backup_cmd(out):
    """A consistent backup while the app runs (SQLite online backup; pg_dump for PostgreSQL).

    Example: balans cloud backup --out /var/backups/balans/$(date +%F).dump
    """


    try:
        path = backup(current_app.config["DATABASE_URL"], Path(out))
    except BackupError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"backup written to {path} ({path.stat().st_size} bytes)")


@performs(Action.MAINTAIN)
@click.command("restore")
@click.argument("source", type=click.Path(exists=True, dir_okay=False))
@with_appcontext
def restore_cmd(source):
    """Restore a backup into the configured (empty) database.

    Example: BALANS_DATABASE_URL=postgresql+psycopg://…/balans_new balans cloud restore 2026-11-22.dump
    """


    try:
        restore(current_app.config["DATABASE_URL"], Path(source))
    except BackupError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo("restored")


COMMANDS = [backup_cmd, restore_cmd]
