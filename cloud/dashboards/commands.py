"""``balans cloud rebuild-daily``: the dashboards' daily sums recomputed from the interval energy stored."""

from __future__ import annotations

import json

import click
from flask.cli import with_appcontext

from cloud.audit import audit
from cloud.cli.lookup import app as _app
from cloud.cli.lookup import find_site, performs, site_org_option
from cloud.dashboards.daily import rebuild_daily
from cloud.db import session_scope, write_lock
from cloud.permissions import Action


@performs(Action.MAINTAIN)
@click.command("rebuild-daily")
@click.option("--site", "site_code", default="", help="one site's code (default: every site)")
@site_org_option
@click.option("--json", "as_json", is_flag=True, help="the count as JSON")
@with_appcontext
def rebuild_daily_cmd(site_code, org_ref, as_json):
    """Recompute daily_energy (the Kyiv-day sums the dashboards read) from interval_energy, for data stored
    before the table existed or after a repair.  Example: balans cloud rebuild-daily --site TP-118"""
    with write_lock(), session_scope(_app()) as db:
        site = find_site(db, site_code, org_ref) if site_code else None
        rows = rebuild_daily(db, site)
        audit(db, site.org_id if site else None, "cli", "daily.rebuild", f"site:{site.code}" if site else "all",
              None, {"rows": rows})
    if as_json:
        click.echo(json.dumps({"site": site_code or None, "rows": rows}))
    else:
        click.echo(f"daily_energy: {rows} rows for {site_code or 'every site'}")


COMMANDS = [rebuild_daily_cmd]
