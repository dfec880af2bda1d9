"""``balans cloud create-site | balance``: transformer stations and their micro-balance."""

from __future__ import annotations

import json

import click
from flask.cli import with_appcontext

from cloud.accounts.organisations import create_site
from cloud.cli.lookup import app as _app
from cloud.cli.lookup import find_org, find_site, performs, site_org_option
from cloud.db import session_scope
from cloud.permissions import Action
from cloud.sites.balance import site_balance


@performs(Action.SET_UP)
@click.command("create-site")
@click.option("--org", "org_ref", required=True)
@click.option("--code", required=True)
@click.option("--name", default="")
@with_appcontext
def create_site_cmd(org_ref, code, name):
    """Create a site (transformer station).  Example: balans cloud create-site --org 1 --code TP-118"""
    with session_scope(_app()) as db:
        site = create_site(db, find_org(db, org_ref), code, name)
        click.echo(f"site {site.code}")


@performs(Action.VIEW_SITES)
@click.command("balance")
@click.option("--site", "site_code", required=True)
@click.option("--period", required=True, help="YYYY-MM")
@site_org_option
@with_appcontext
def balance_cmd(site_code, period, org_ref):
    """The site's micro-balance as JSON.  Example: balans cloud balance --site TP-118 --period 2026-10"""
    with session_scope(_app()) as db:
        click.echo(json.dumps({"period": period, **site_balance(db, find_site(db, site_code, org_ref), period).as_json()},
                              ensure_ascii=False, indent=2))


COMMANDS = [create_site_cmd, balance_cmd]
