"""``balans cloud org-settings | tariff-history | heating-season | reminder-rule``: the settings pages from the
command line, over the same services (a new tariff: ``set-tariff``, cloud/billing/commands.py)."""

from __future__ import annotations

import json

import click
from flask.cli import with_appcontext

from cloud.cli.lookup import app as _app
from cloud.cli.lookup import find_org, performs
from cloud.clock import kyiv_today
from cloud.db import session_scope
from cloud.permissions import Action
from cloud.settings.organisation import organisation_values, update_organisation
from cloud.settings.rules import own_rule, rule_json, rules, save_rule
from cloud.settings.seasons import add_season, end_season, season_json, seasons
from cloud.settings.tariffs import tariff_history, tariff_json


def _refuse(errors) -> None:
    raise click.ClickException("; ".join(str(e) for e in errors) + " — nothing changed")


@performs(Action.SET_UP)
@click.command("org-settings")
@click.option("--org", "org_ref", required=True, help="organisation id or exact name")
@click.option("--name", default=None, help="the name printed on invoices")
@click.option("--address", default=None)
@click.option("--edrpou", default=None, help="ЄДРПОУ, 8 digits (a sole trader's РНОКПП: 10)")
@click.option("--iban", default=None, help="UA and 27 digits")
@click.option("--net-billing", default=None, type=click.Choice(["netting", "money"]),
              help="solar export: netted against consumption, or paid for at --export-price")
@click.option("--export-price", default=None, help="UAH/kWh paid for exported energy (at most 5 decimals)")
@click.option("--invoice-note", default=None, help="printed under the total of invoices issued from now on")
@with_appcontext
def org_settings(org_ref, **options):
    """Show the organisation's settings, or change those given (checked, audited).

    Example: balans cloud org-settings --org 2 --iban UA853005280000026007012345678 --net-billing money
    --export-price 4.5
    """
    given = {key: value for key, value in options.items() if value is not None}
    with session_scope(_app()) as db:
        org = find_org(db, org_ref)
        if given:
            errors = update_organisation(db, org, given, "cli")
            if errors:
                db.rollback()
                _refuse(errors)
        shown = organisation_values(org)
    click.echo(json.dumps(shown, ensure_ascii=False, indent=2))


@performs(Action.SET_UP)
@click.command("tariff-history")
@click.option("--org", "org_ref", required=True, help="organisation id or exact name")
@click.option("--json", "as_json", is_flag=True)
@with_appcontext
def tariff_history_cmd(org_ref, as_json):
    """Every tariff of the organisation, newest first; «*» marks the one in force today (Kyiv).

    Example: balans cloud tariff-history --org 2   (add one: balans cloud set-tariff …)
    """
    with session_scope(_app()) as db:
        rows = [tariff_json(row) for row in tariff_history(db, find_org(db, org_ref).id, kyiv_today())]
    if as_json:
        click.echo(json.dumps(rows, ensure_ascii=False, indent=2))
        return
    for t in rows:
        zones = ",".join(f"{z}={k}" for z, k in (t["zones"] or {}).items())
        fee = f" fee {t['monthly_fee']} {t['fee_name']}".rstrip() if t["monthly_fee"] != "0.00" else ""
        click.echo(f"{'*' if t['in_force'] else ' '} #{t['id']} {t['kind']}{' ' + t['segment'] if t['segment'] else ''}"
                   f" {t['valid_from']} – {t['valid_to'] or '…'}: {t['purchase_price']} × {t['coefficient']}"
                   f"{' ' + zones if zones else ''}{fee}")
    if not rows:
        click.echo("no tariffs yet")


@performs(Action.SET_UP)
@click.command("heating-season")
@click.option("--org", "org_ref", required=True, help="organisation id or exact name")
@click.option("--from", "starts", default="", help="YYYY-MM-DD, the first day of a new season")
@click.option("--to", "ends", default="", help="YYYY-MM-DD, its last day (leave out while it goes on)")
@click.option("--end", "end_id", default=None, type=int, help="end the season with this id on --to")
@with_appcontext
def heating_season(org_ref, starts, ends, end_id):
    """List the heating seasons; record a new one the council declared (--from, --to); end one (--end ID --to).

    Example: balans cloud heating-season --org 2 --from 2026-10-15
    """
    with session_scope(_app()) as db:
        org = find_org(db, org_ref)
        if end_id is not None:
            season, errors = end_season(db, org, end_id, ends, "cli")
        elif starts:
            season, errors = add_season(db, org, {"starts": starts, "ends": ends}, "cli")
        else:
            season, errors = None, []
        if errors:
            db.rollback()
            _refuse(errors)
        if season is not None:
            click.echo(f"heating season from {season.starts}" + (f" to {season.ends}" if season.ends else ""))
            return
        for found in seasons(db, org.id):
            shown = season_json(found)
            click.echo(f"#{shown['id']} {shown['starts']} – {shown['ends'] or 'goes on'}")


@performs(Action.SET_UP)
@click.command("reminder-rule")
@click.argument("verb", type=click.Choice(["add", "list", "set", "off"]))
@click.option("--org", "org_ref", required=True, help="organisation id or exact name")
@click.option("--id", "rule_id", type=int, default=None, help="the rule (set, off)")
@click.option("--name", default=None)
@click.option("--min-debt", default=None, help="UAH: remind when the debt is over this")
@click.option("--min-days", default=None, help="days past the due date")
@click.option("--channels", default=None, help="email,telegram")
@click.option("--text", default=None, help='the message, "" for the standard one; {account} {debt} {holder}')
@click.option("--active/--inactive", default=None)
@with_appcontext
def reminder_rule(verb, org_ref, rule_id, name, min_debt, min_days, channels, text, active):
    """Reminder rules: list them, add one, change one (set), switch one off (off).

    Example: balans cloud reminder-rule add --org 2 --name "Борг понад 500" --min-debt 500 --min-days 30
    --text "Борг {debt} грн за о/р {account}"
    """
    given = {key: value for key, value in (("rule_name", name), ("min_debt", min_debt), ("min_days", min_days),
                                           ("channels", channels), ("text", text)) if value is not None}
    if active is not None:
        given["active"] = "yes" if active else "no"
    if verb == "off":
        given = {"active": "no"}
    with session_scope(_app()) as db:
        org = find_org(db, org_ref)
        if verb == "list":
            shown = [rule_json(rule) for rule in rules(db, org.id)]
            click.echo(json.dumps(shown, ensure_ascii=False, indent=2))
            return
        rule = None
        if verb in ("set", "off"):
            if rule_id is None:
                raise click.ClickException(f"reminder-rule {verb}: say which rule with --id")
            rule = own_rule(db, org, rule_id)
            if rule is None:
                raise click.ClickException(f"reminder rule {rule_id} is not {org.name}'s")
        rule, errors = save_rule(db, org, rule, given, "cli")
        if errors:
            db.rollback()
            _refuse(errors)
        click.echo(json.dumps(rule_json(rule), ensure_ascii=False, indent=2))


COMMANDS = [org_settings, tariff_history_cmd, heating_season, reminder_rule]
