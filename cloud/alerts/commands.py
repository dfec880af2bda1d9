"""``balans cloud alerts | alert-rule add|list|set|off | ack-alert | evaluate-alerts | telegram-bot``: the alerts
from the command line — the same rules, checks and audit as the pages and the API."""

from __future__ import annotations

import asyncio
import json

import click
from flask import current_app
from flask.cli import with_appcontext

from cloud.alerts.engine import AlertFilter, acknowledge, alert_json, evaluate, list_alerts, site_codes
from cloud.alerts.rules import (
    KINDS,
    AlertError,
    add_rule,
    find_rule,
    list_rules,
    parse_params,
    rule_json,
    set_rule,
)
from cloud.alerts.telegram import BotRunner
from cloud.cli.lookup import app as _app
from cloud.cli.lookup import find_org, performs
from cloud.clock import utcnow
from cloud.db import session_scope
from cloud.permissions import Action

ACTOR = "cli"


def _refused(exc: AlertError) -> click.ClickException:
    return click.ClickException(f"{exc.field}: {exc}" if exc.field and not str(exc).startswith(exc.field) else str(exc))


@performs(Action.VIEW_SITES)
@click.command("alerts")
@click.option("--org", "org_ref", required=True, help="organisation id or exact name")
@click.option("--kind", default="", help=" | ".join(KINDS))
@click.option("--site", default="", help="a site's code")
@click.option("--state", default="open", help="open | closed | all")
@click.option("--json", "as_json", is_flag=True)
@with_appcontext
def alerts(org_ref, kind, site, state, as_json):
    """List the organisation's alerts, open first.  Example: balans cloud alerts --org 1 --state all --json"""
    with session_scope(_app()) as db:
        org = find_org(db, org_ref)
        try:
            wanted = AlertFilter.parse({"kind": kind, "site": site, "state": state})
        except AlertError as exc:
            raise _refused(exc) from exc
        sites = site_codes(db, org.id)
        rows = [alert_json(a, sites) for a in list_alerts(db, org.id, wanted)]
    if as_json:
        click.echo(json.dumps(rows, ensure_ascii=False, indent=2))
        return
    for row in rows:
        state_word = "closed" if row["closed_at"] else ("acknowledged" if row["acknowledged_at"] else "OPEN")
        click.echo(f"{row['id']:>5}  {state_word:<12} {row['kind']:<15} {row['subject']:<30} {row['opened_at']}")
    if not rows:
        click.echo("no alerts")


@performs(Action.ADMINISTER)
@click.command("ack-alert")
@click.argument("alert_id", type=int)
@click.option("--org", "org_ref", required=True, help="organisation id or exact name")
@with_appcontext
def ack_alert(alert_id, org_ref):
    """Acknowledge an alert: it is not escalated after this.  Example: balans cloud ack-alert 12 --org 1"""
    with session_scope(_app()) as db:
        try:
            acknowledge(db, find_org(db, org_ref).id, alert_id, ACTOR, utcnow())
        except AlertError as exc:
            raise _refused(exc) from exc
    click.echo(f"alert {alert_id} acknowledged")


@performs(Action.SEND_MESSAGES)
@click.command("evaluate-alerts")
@click.option("--org", "org_ref", default="", help="only this organisation's rules")
@with_appcontext
def evaluate_alerts(org_ref):
    """Judge the alert rules now, as the worker's minute job does.  Example: balans cloud evaluate-alerts --org 1"""
    with session_scope(_app()) as db:
        counts = evaluate(db, utcnow(), find_org(db, org_ref).id if org_ref else None)
    click.echo(", ".join(f"{v} {k}" for k, v in counts.items()))


@click.group("alert-rule")
def alert_rule():
    """Alert rules: added, listed, changed, turned off."""


def _print(rule: dict) -> None:
    params = ", ".join(f"{k}={v}" for k, v in rule["params"].items())
    who = ", ".join(rule["users"] + rule["roles"])
    click.echo(f"{rule['id']:>4}  {'on ' if rule['active'] else 'off'}  {rule['kind']:<15} {rule['name']}  "
               f"[{params}]  → {who} by {','.join(rule['channels'])}"
               + (f", escalated after {rule['escalate_minutes']} min" if rule["escalate_minutes"] else ""))


def _params(pairs: tuple[str, ...]) -> dict:
    return parse_params(",".join(pairs))


@performs(Action.SET_UP)
@alert_rule.command("add")
@click.option("--org", "org_ref", required=True, help="organisation id or exact name")
@click.option("--kind", required=True, help=" | ".join(KINDS))
@click.option("--name", default="")
@click.option("--site", default="", help="one site's code (every site when not given)")
@click.option("--set", "pairs", multiple=True, help="a threshold: raise_pct=25 (repeat)")
@click.option("--users", default="", help="staff e-mails, comma-separated")
@click.option("--roles", default="", help="staff roles, comma-separated: manager,org_admin")
@click.option("--channels", default="email", help="email,telegram")
@click.option("--escalate", "escalate_minutes", default="0", help="minutes unacknowledged before the org admins "
              "are told too (0: never)")
@click.option("--json", "as_json", is_flag=True)
@with_appcontext
def add(org_ref, kind, name, site, pairs, users, roles, channels, escalate_minutes, as_json):
    """Add a rule.

    Example: balans cloud alert-rule add --org 1 --kind line_elevated --set raise_pct=25 --set count=3
    --roles manager --channels email,telegram --escalate 30
    """
    with session_scope(_app()) as db:
        try:
            rule = add_rule(db, find_org(db, org_ref), {
                "kind": kind, "name": name, "site": site, "params": _params(pairs), "users": users, "roles": roles,
                "channels": channels, "escalate_minutes": escalate_minutes}, ACTOR)
        except AlertError as exc:
            db.rollback()
            raise _refused(exc) from exc
        found = rule_json(db, rule)
    click.echo(json.dumps(found, ensure_ascii=False) if as_json else f"rule {found['id']} added")


@performs(Action.SET_UP)
@alert_rule.command("list")
@click.option("--org", "org_ref", required=True, help="organisation id or exact name")
@click.option("--json", "as_json", is_flag=True)
@with_appcontext
def list_(org_ref, as_json):
    """The organisation's rules.  Example: balans cloud alert-rule list --org 1"""
    with session_scope(_app()) as db:
        rows = [rule_json(db, r) for r in list_rules(db, find_org(db, org_ref).id)]
    if as_json:
        click.echo(json.dumps(rows, ensure_ascii=False, indent=2))
        return
    for row in rows:
        _print(row)
    if not rows:
        click.echo("no rules")


@performs(Action.SET_UP)
@alert_rule.command("set")
@click.argument("rule_id", type=int)
@click.option("--org", "org_ref", required=True, help="organisation id or exact name")
@click.option("--name", default=None)
@click.option("--set", "pairs", multiple=True, help="a threshold: clear_pct=20 (repeat)")
@click.option("--users", default=None)
@click.option("--roles", default=None)
@click.option("--channels", default=None)
@click.option("--escalate", "escalate_minutes", default=None)
@click.option("--on", "turn_on", is_flag=True, help="turn a rule that was off on again")
@with_appcontext
def set_(rule_id, org_ref, name, pairs, users, roles, channels, escalate_minutes, turn_on):
    """Change what is given; the rest stays.  Example: balans cloud alert-rule set 3 --org 1 --escalate 60"""
    given = {k: v for k, v in {"name": name, "users": users, "roles": roles, "channels": channels,
                               "escalate_minutes": escalate_minutes}.items() if v is not None}
    if pairs:
        given["params"] = _params(pairs)
    if turn_on:
        given["active"] = True
    _change(rule_id, org_ref, given)


@performs(Action.SET_UP)
@alert_rule.command("off")
@click.argument("rule_id", type=int)
@click.option("--org", "org_ref", required=True, help="organisation id or exact name")
@with_appcontext
def off(rule_id, org_ref):
    """Turn a rule off (its open alerts stay as they are).  Example: balans cloud alert-rule off 3 --org 1"""
    _change(rule_id, org_ref, {"active": False})


def _change(rule_id: int, org_ref: str, given: dict) -> None:
    with session_scope(_app()) as db:
        org = find_org(db, org_ref)
        try:
            _print(rule_json(db, set_rule(db, org, find_rule(db, org.id, rule_id), given, ACTOR)))
        except AlertError as exc:
            db.rollback()
            raise _refused(exc) from exc


@performs(Action.SEND_MESSAGES)
@click.command("telegram-bot")
@click.option("--poll-timeout", default=30, show_default=True, help="seconds one getUpdates waits for messages")
@with_appcontext
def telegram_bot(poll_timeout):
    """Run the Telegram bot: long-poll getUpdates (BALANS_TELEGRAM_TOKEN, BALANS_TELEGRAM_API) and answer /start
    CODE, /balance, /voltage, /bill. Runs until stopped (a systemd unit: docs/alerts.md).

    Example: BALANS_TELEGRAM_TOKEN=123:abc balans cloud telegram-bot
    """
    config = current_app.config
    if not config["TELEGRAM_TOKEN"]:
        raise click.ClickException("BALANS_TELEGRAM_TOKEN is not set: the bot's token from @BotFather")
    asyncio.run(BotRunner(_app(), config["TELEGRAM_TOKEN"], config["TELEGRAM_API"], poll_timeout).run())


COMMANDS = [alerts, ack_alert, evaluate_alerts, telegram_bot]
GROUPS = [alert_rule]
