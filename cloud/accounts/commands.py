"""``balans cloud create-org | create-user``: organisations and the people who sign in."""

from __future__ import annotations

import click
from flask.cli import with_appcontext
from sqlalchemy import select

from cloud.accounts.organisations import SetupError, create_organisation, create_user
from cloud.cli.lookup import app as _app
from cloud.cli.lookup import find_org, performs
from cloud.db import session_scope
from cloud.models import Account
from cloud.permissions import Action


@performs(Action.SET_UP)
@click.command("create-org")
@click.option("--name", required=True)
@click.option("--kind", required=True, help="cooperative | osbb | cottage_town | supplier | heat")
@click.option("--edrpou", default="")
@click.option("--iban", default="")
@click.option("--address", default="")
@with_appcontext
def create_org(name, kind, edrpou, iban, address):
    """Create an organisation.  Example: balans cloud create-org --name "ОК Сосновий Бір" --kind cooperative"""
    with session_scope(_app()) as db:
        try:
            org = create_organisation(db, name, kind, edrpou, iban, address)
        except SetupError as exc:
            raise click.ClickException(str(exc)) from exc
        click.echo(f"organisation {org.id}: {org.name}")


@performs(Action.SET_UP)
@click.command("create-user")
@click.option("--email", required=True)
@click.option("--password", prompt=True, hide_input=True, confirmation_prompt=True)
@click.option("--role", required=True)
@click.option("--org", "org_ref", default="", help="organisation id or exact name")
@click.option("--account", default="", help="account number (residents)")
@with_appcontext
def create_user_cmd(email, password, role, org_ref, account):
    """Create a user.  Example: balans cloud create-user --email boss@coop.ua --role manager --org 1"""
    with session_scope(_app()) as db:
        org = find_org(db, org_ref) if org_ref else None
        acc = None
        if account:
            acc = db.scalar(select(Account).where(Account.number == account, Account.org_id == (org.id if org else -1)))
            if acc is None:
                raise click.ClickException(f"account {account} not found in that organisation")
        try:
            user = create_user(db, email, password, role, org, account=acc)
        except SetupError as exc:
            raise click.ClickException(str(exc)) from exc
        click.echo(f"user {user.email} ({user.role})")


COMMANDS = [create_org, create_user_cmd]
