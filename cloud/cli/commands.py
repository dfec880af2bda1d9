"""Every ``balans cloud`` command, gathered from the domain packages, and the server itself."""

from __future__ import annotations

import sys

import click
from flask import Flask
from flask.cli import with_appcontext
from waitress import serve as waitress_serve

from cloud.accounts import commands as accounts
from cloud.admin import commands as admin
from cloud.billing import commands as billing
from cloud.cli.lookup import app as _app
from cloud.cli.lookup import performs
from cloud.ingest import commands as ingest
from cloud.notifications import commands as notifications
from cloud.payments import commands as payments
from cloud.permissions import Action
from cloud.reports import commands as reports
from cloud.sites import commands as sites


@performs(Action.MAINTAIN)
@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True)
@click.option("--threads", default=8, show_default=True)
@with_appcontext
def serve(host, port, threads):
    """Serve the cloud with waitress (production: gunicorn 'cloud:create_app()').  Example: balans cloud serve"""

    click.echo(f"Balans cloud on http://{host}:{port}", err=True)
    sys.stderr.flush()
    waitress_serve(_app(), host=host, port=port, threads=threads, ident="balans")



COMMANDS: list[click.Command] = [*accounts.COMMANDS, *sites.COMMANDS, *billing.COMMANDS, *ingest.COMMANDS,
                                 *payments.COMMANDS, *notifications.COMMANDS, *reports.COMMANDS, *admin.COMMANDS,
                                 serve]
GROUPS: list[click.Group] = [admin.db_group]


def register_flask_commands(app: Flask) -> None:
    for group in GROUPS:
        app.cli.add_command(group)
    for command in COMMANDS:
        app.cli.add_command(command)

