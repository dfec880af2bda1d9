"""``balans cloud enrolment-token | verify | evidence | revoke-gateway``: gateways, their keys and what they
proved (re-checking the signed batches, an inspector's evidence)."""

from __future__ import annotations

import json
import sys
from datetime import datetime
from pathlib import Path

import click
from flask.cli import with_appcontext

from cloud.cli.lookup import app as _app
from cloud.cli.lookup import find_gateway, find_org, find_site, performs, site_org_option
from cloud.db import session_scope
from cloud.ingest import remote_commands
from cloud.ingest.enrolment import issue_token
from cloud.ingest.evidence import export_evidence, find_line, seq_ranges, verify_gateway
from cloud.ingest.gateways import revoke
from cloud.permissions import Action
from shared.calendar import from_kyiv_wall


@performs(Action.SET_UP)
@click.command("enrolment-token")
@click.option("--site", "site_code", required=True)
@click.option("--hours", default=72, show_default=True)
@site_org_option
@with_appcontext
def enrolment_token(site_code, hours, org_ref):
    """Issue a one-time enrolment token for a site.  Example: balans cloud enrolment-token --site TP-118"""
    with session_scope(_app()) as db:
        click.echo(issue_token(db, find_site(db, site_code, org_ref), hours))


@performs(Action.MANAGE_GATEWAYS)
@click.command("verify")
@click.option("--gateway", "gateway_code", required=True)
@click.option("--from", "since", default="", help="received on or after (YYYY-MM-DD)")
@click.option("--to", "until", default="", help="received before (YYYY-MM-DD)")
@click.option("--json", "as_json", is_flag=True)
@with_appcontext
def verify(gateway_code, since, until, as_json):
    """Re-verify every stored batch of a gateway (signatures, hashes, chain); exit 1 on any break.

    Example: balans cloud verify --gateway gw-tp-118 --from 2026-10-01 --to 2026-11-01
    """


    with session_scope(_app()) as db:
        gateway = find_gateway(db, gateway_code)
        report = verify_gateway(db, gateway, from_kyiv_wall(datetime.fromisoformat(since)) if since else None,
                                from_kyiv_wall(datetime.fromisoformat(until)) if until else None)
    if as_json:
        click.echo(json.dumps(report.as_json(), ensure_ascii=False, indent=2))
    else:
        click.echo(f"{report.gateway}: {report.batches} batches ({report.first_seq}…{report.last_seq}), "
                   f"{'all verify' if report.ok else f'{len(report.problems)} problems'}"
                   + (f", gaps {seq_ranges(report.gaps)}" if report.gaps else ""))
        for problem in report.problems:
            click.echo(f"  ! {problem}")
    if not report.ok:
        sys.exit(1)


@performs(Action.MANAGE_GATEWAYS)
@click.command("evidence")
@click.option("--line", "line_number", required=True)
@click.option("--site", "site_code", default="", help="needed when several sites have that line number")
@click.option("--period", required=True, help="YYYY-MM")
@click.option("--out", "out", required=True, type=click.Path(file_okay=False))
@site_org_option
@with_appcontext
def evidence(line_number, site_code, period, out, org_ref):
    """Export a line's raw signed batches, the gateway keys and a README for an inspector.

    Example: balans cloud evidence --site TP-118 --line 4 --period 2026-10 --out evidence-line4
    """


    with session_scope(_app()) as db:
        try:
            site_id = find_site(db, site_code, org_ref).id if site_code else None
            org_id = find_org(db, org_ref).id if org_ref else None
            site, line = find_line(db, line_number, site_id, org_id)
            manifest = export_evidence(db, site, line, period, Path(out))
        except ValueError as exc:
            raise click.ClickException(str(exc)) from exc
    click.echo(f"{len(manifest['batches'])} batches of line {line_number} ({site.code}, {period}) in {out}/")


@performs(Action.MANAGE_GATEWAYS)
@click.command("revoke-gateway")
@click.option("--gateway", "gateway_code", required=True)
@click.option("--reason", default="", help="kept in the audit log")
@with_appcontext
def revoke_gateway(gateway_code, reason):
    """Revoke a gateway: its batches are refused from now on (stolen or replaced device).

    Example: balans cloud revoke-gateway --gateway gw-tp-118 --reason "stolen from the cabinet"
    """
    with session_scope(_app()) as db:
        gateway = find_gateway(db, gateway_code)
        revoke(db, gateway, "cli", reason)
    click.echo(f"gateway {gateway_code} revoked")


COMMANDS = [enrolment_token, verify, evidence, revoke_gateway, *remote_commands.COMMANDS]
