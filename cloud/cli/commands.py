"""Every ``balans cloud`` command, gathered from the domain packages, and the server itself."""

from __future__ import annotations

import sys

import click
from flask import Flask
from flask.cli import with_appcontext
from waitress import serve as waitress_serve

from cloud.accounts import commands as accounts
from cloud.accounts import people_commands as people
from cloud.admin import commands as admin
from cloud.admin import token_commands as admin_tokens
from cloud.alerts import commands as alerts
from cloud.billing import commands as billing
from cloud.cli.lookup import app as _app
from cloud.cli.lookup import performs
from cloud.dashboards import commands as dashboards
from cloud.ingest import commands as ingest
from cloud.jobs import commands as jobs
from cloud.notifications import commands as notifications
from cloud.operations import commands as operations
from cloud.payments import commands as payments
from cloud.permissions import Action
from cloud.register import commands as register
from cloud.reports import commands as reports
from cloud.settings import commands as settings
from cloud.sites import commands as sites
from cloud.updates import commands as updates


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



# settings' heating-season (which also lists and ends seasons) takes the place of billing's older one.
SUPERSEDED = {command.name for command in settings.COMMANDS}
COMMANDS: list[click.Command] = [*accounts.COMMANDS, *sites.COMMANDS,
                                 *(c for c in billing.COMMANDS if c.name not in SUPERSEDED), *ingest.COMMANDS,
                                 *payments.COMMANDS, *notifications.COMMANDS, *reports.COMMANDS, *admin.COMMANDS,
                                 *register.COMMANDS, *settings.COMMANDS, *people.COMMANDS, *jobs.COMMANDS, *dashboards.COMMANDS, *alerts.COMMANDS,
                                 *operations.COMMANDS, serve]
GROUPS: list[click.Group] = [admin.db_group, admin_tokens.api_token_group, *alerts.GROUPS, *updates.GROUPS]


def register_flask_commands(app: Flask) -> None:
    for group in GROUPS:
        app.cli.add_command(group)
    for command in COMMANDS:
        app.cli.add_command(command)

