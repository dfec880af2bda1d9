"""``balans cloud gateway-request | gateway-requests | gateway-health | site-config``: diagnostics and the site
configuration a gateway pulls (docs/remote.md)."""

from __future__ import annotations

import json

import click
from flask.cli import with_appcontext

from cloud.cli.lookup import app as _app
from cloud.cli.lookup import find_gateway, find_site, performs, site_org_option
from cloud.db import session_scope
from cloud.ingest.health import latest_health, queue_request, request_json, requests_of
from cloud.ingest.site_config import current_document, latest_version, new_version, version_json
from cloud.permissions import Action
from shared.remote import REQUEST_KINDS, RemoteError


@performs(Action.MANAGE_GATEWAYS)
@click.command("gateway-request")
@click.option("--gateway", "gateway_code", required=True)
@click.option("--kind", required=True, type=click.Choice(REQUEST_KINDS))
@click.option("--lines", default=100, show_default=True, help="log: how many of its last lines")
@click.option("--json", "as_json", is_flag=True)
@with_appcontext
def gateway_request(gateway_code, kind, lines, as_json):
    """Queue a diagnostic request; the gateway picks it up with its next heartbeat.

    Example: balans cloud gateway-request --gateway gw-tp-118 --kind log --lines 200
    """
    with session_scope(_app()) as db:
        gateway = find_gateway(db, gateway_code)
        try:
            row = queue_request(db, gateway, kind, "cli", lines)
        except RemoteError as exc:
            raise click.BadParameter(exc.reason, param_hint=f"--{exc.field}") from exc
        db.flush()
        document = request_json(row, gateway)
    click.echo(json.dumps(document, ensure_ascii=False, indent=2) if as_json
               else f"request {document['id']} ({kind}) queued for {gateway_code}")


@performs(Action.MANAGE_GATEWAYS)
@click.command("gateway-requests")
@click.option("--gateway", "gateway_code", required=True)
@click.option("--json", "as_json", is_flag=True)
@with_appcontext
def gateway_requests(gateway_code, as_json):
    """A gateway's requests, newest first, with their results.  Example: balans cloud gateway-requests --gateway gw-1"""
    with session_scope(_app()) as db:
        rows = requests_of(db, find_gateway(db, gateway_code))
    if as_json:
        click.echo(json.dumps(rows, ensure_ascii=False, indent=2))
        return
    for row in rows:
        click.echo(f"{row['id']:>5} {row['kind']:<7} {row['status']:<7} {row['created_at']} {row['created_by']}")


@performs(Action.MANAGE_GATEWAYS)
@click.command("gateway-health")
@click.option("--gateway", "gateway_code", required=True)
@click.option("--json", "as_json", is_flag=True)
@with_appcontext
def gateway_health(gateway_code, as_json):
    """The gateway's last heartbeat: backlog, disk, clock, meters, version, configuration in force.

    Example: balans cloud gateway-health --gateway gw-tp-118 --json
    """
    with session_scope(_app()) as db:
        health = latest_health(db, find_gateway(db, gateway_code))
    if as_json:
        click.echo(json.dumps(health, ensure_ascii=False, indent=2))
    elif health is None:
        click.echo(f"{gateway_code}: no heartbeat yet")
    else:
        click.echo(f"{gateway_code}: seen {health['received_at']}, backlog {health['backlog']}, meters "
                   f"{health['meters_answering']}/{health['meters_configured']}, software "
                   f"{health['software_version']}, clock {health['clock_offset_s']:+d} s, configuration "
                   f"v{health['config_version']}" + (f", last change {health['config_last']}"
                                                     if health['config_last'] else ""))


@performs(Action.MANAGE_GATEWAYS)
@click.command("site-config")
@click.option("--site", "site_code", required=True)
@click.option("--set", "changes", multiple=True, help="key=value, e.g. poll_seconds=60 or meter.SDM-1.unit=9")
@click.option("--show", is_flag=True, help="print the latest version (the default without --set)")
@site_org_option
@with_appcontext
def site_config(site_code, changes, show, org_ref):
    """Make a new signed version of a site's gateway configuration, or show the latest.

    Example: balans cloud site-config --site TP-118 --set poll_seconds=60
    """
    parsed = {}
    for change in changes:
        key, sep, value = change.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{change!r}: expected key=value", param_hint="--set")
        parsed[key.strip()] = value.strip()
    with session_scope(_app()) as db:
        site = find_site(db, site_code, org_ref)
        if parsed:
            try:
                row = new_version(db, site, parsed, "cli")
            except RemoteError as exc:
                raise click.BadParameter(f"{exc.field}: {exc.reason}", param_hint="--set") from exc
            click.echo(f"{site_code}: configuration version {row.version} signed", err=True)
            if not show:
                return
        latest = latest_version(db, site)
        document = version_json(latest) if latest else {"version": 0, "document": current_document(db, site)}
    document.pop("body", None)
    click.echo(json.dumps(document, ensure_ascii=False, indent=2))


COMMANDS = [gateway_request, gateway_requests, gateway_health, site_config]
