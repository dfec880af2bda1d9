"""``balans cloud register-import | register-export | account | meter | meters``: the register from the command
line — the same file formats, the same preview and all-or-nothing apply, the same fields as the pages."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click
from flask.cli import with_appcontext

from cloud.cli.lookup import app as _app
from cloud.cli.lookup import find_org, find_site, performs, site_org_option
from cloud.db import session_scope
from cloud.models import Organisation
from cloud.permissions import Action
from cloud.register.export import register_rows, to_csv, to_xlsx
from cloud.register.fields import BY_KEY
from cloud.register.importer import ImportRefused, apply, plan
from cloud.register.meters import (
    METER_FIELDS,
    MeterNotFound,
    find_meter,
    list_meters,
    meter_texts,
    save_meter,
    time_text,
)
from cloud.register.subscribers import AccountNotFound, account_texts, find_account, save_account
from cloud.register.table import TableError, read_table


@performs(Action.MANAGE_REGISTER)
@click.command("register-import")
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
@click.option("--org", "org_ref", required=True, help="organisation id or exact name")
@click.option("--apply", "do_apply", is_flag=True, help="write it (all rows or, on any error, none)")
@click.option("--json", "as_json", is_flag=True, help="the outcome as JSON")
@with_appcontext
def register_import(path, org_ref, do_apply, as_json):
    """Preview a register file (XLSX or CSV): each row's fate and every error with its line and column; with
    --apply, write it.  Example: balans cloud register-import abonenty.xlsx --org 2 --apply"""
    body = Path(path).read_bytes()
    try:
        table = read_table(path, body)
    except TableError as exc:
        raise click.ClickException(f"{path}: {exc}") from exc
    with session_scope(_app()) as db:
        org = find_org(db, org_ref)
        try:
            found = apply(db, org, table, "cli") if do_apply else plan(db, org, table, "cli")
        except ImportRefused:
            db.rollback()
            found = plan(db, org, table, "cli")
        if not do_apply:
            db.rollback()
    outcome = found.outcome(first_errors=10_000)
    if as_json:
        click.echo(json.dumps(outcome, ensure_ascii=False, indent=2))
    else:
        counts = outcome["counts"]
        for error in outcome["errors"]:
            click.echo(f"{path}: line {error['line']}, column «{error['column']}»: {error['message']}", err=True)
        if outcome["unknown_headers"]:
            click.echo(f"columns skipped (not the register's): {', '.join(outcome['unknown_headers'])}", err=True)
        verb = "applied" if do_apply and found.ok else "would apply" if found.ok else "nothing imported"
        click.echo(f"{counts['new']} new, {counts['changed']} changed, {counts['unchanged']} unchanged, "
                   f"{counts['error']} with errors: {verb}")
    if not found.ok:
        sys.exit(1)


@performs(Action.VIEW_REGISTER)
@click.command("register-export")
@click.option("--org", "org_ref", required=True, help="organisation id or exact name")
@click.option("--site", "site_code", default="", help="only this site's accounts")
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="a .xlsx or .csv file")
@with_appcontext
def register_export(org_ref, site_code, out):
    """Write the register as the office keeps it in Excel (read back by register-import, it changes nothing).
    Example: balans cloud register-export --org 2 --out reiestr.xlsx"""
    with session_scope(_app()) as db:
        org = find_org(db, org_ref)
        site_id = find_site(db, site_code, str(org.id)).id if site_code else None
        rows = register_rows(db, org, site_id)
    Path(out).write_bytes(to_xlsx(rows) if out.lower().endswith(".xlsx") else to_csv(rows))
    click.echo(f"{len(rows)} rows in {out}")


@performs(Action.MANAGE_REGISTER)
@click.command("account")
@click.option("--org", "org_ref", required=True, help="organisation id or exact name")
@click.option("--number", required=True, help="особовий рахунок")
@click.option("--create", is_flag=True, help="a new account")
@click.option("--set", "assignments", multiple=True, metavar="FIELD=VALUE",
              help=f"a field to set (repeatable): {', '.join(k for k, f in BY_KEY.items() if not f.meter)}")
@with_appcontext
def account_cmd(org_ref, number, create, assignments):
    """Show an account, or create or change it (audited).  Example: balans cloud account --org 2 --number 12-045
    --set phone="067 123 45 67" --set email=ivan@example.com"""
    texts = {}
    for assignment in assignments:
        key, sep, value = assignment.partition("=")
        if not sep:
            raise click.ClickException(f"--set {assignment!r}: write FIELD=VALUE")
        texts[key.strip()] = value
    with session_scope(_app()) as db:
        org = find_org(db, org_ref)
        try:
            found = None if create else find_account(db, org, number)
        except AccountNotFound as exc:
            raise click.ClickException(f"{exc} (add --create for a new one)") from exc
        if create:
            texts = {"number": number, **texts}
        if texts:
            found, errors = save_account(db, org, found, texts, "cli")
            if errors:
                db.rollback()
                raise click.ClickException("; ".join(str(e) for e in errors) + " — nothing changed")
        shown = account_texts(db, found)
    click.echo(json.dumps(shown, ensure_ascii=False, indent=2))


def _assignments(assignments) -> dict[str, str]:
    texts = {}
    for assignment in assignments:
        key, sep, value = assignment.partition("=")
        if not sep:
            raise click.ClickException(f"--set {assignment!r}: write FIELD=VALUE")
        texts[key.strip()] = value
    return texts


@performs(Action.MANAGE_REGISTER)
@click.command("meter")
@click.option("--site", "site_code", required=True, help="the site's code")
@site_org_option
@click.option("--code", required=True, help="the meter's code (its serial, as the gateway names it)")
@click.option("--create", is_flag=True, help="a new meter")
@click.option("--set", "assignments", multiple=True, metavar="FIELD=VALUE",
              help=f"a field to set (repeatable): {', '.join(METER_FIELDS)}; times are Kyiv wall clock")
@with_appcontext
def meter_cmd(site_code, org_ref, code, create, assignments):
    """Show a meter, or create or change it (audited).  Example: balans cloud meter --site TP-7 --code M01001
    --create --set role=subscriber --set account=12-045 --set line=1 --set "installed_at=2026-10-01 09:00"
    """
    texts = _assignments(assignments)
    with session_scope(_app()) as db:
        site = find_site(db, site_code, org_ref)
        org = db.get(Organisation, site.org_id)
        try:
            found = None if create else find_meter(db, org, site.code, code)
        except MeterNotFound as exc:
            raise click.ClickException(f"{exc} (add --create for a new one)") from exc
        if create:
            texts = {"site": site.code, "code": code, **texts}
        if texts:
            found, errors = save_meter(db, org, found, texts, "cli")
            if errors:
                db.rollback()
                raise click.ClickException("; ".join(str(e) for e in errors) + " — nothing changed")
        shown = {"id": found.id, **meter_texts(db, found)}
    click.echo(json.dumps(shown, ensure_ascii=False, indent=2))


@performs(Action.VIEW_REGISTER)
@click.command("meters")
@click.option("--site", "site_code", required=True, help="the site's code")
@site_org_option
@click.option("--json", "as_json", is_flag=True, help="every meter as JSON")
@with_appcontext
def meters_cmd(site_code, org_ref, as_json):
    """A site's meters with their last reading.  Example: balans cloud meters --site TP-7 --json"""
    with session_scope(_app()) as db:
        site = find_site(db, site_code, org_ref)
        org = db.get(Organisation, site.org_id)
        rows, page, pages = [], 1, 1
        while page <= pages:
            listing = list_meters(db, org, site=site.code, page=page)
            rows += [{"id": row.meter.id, **meter_texts(db, row.meter), "last_value": row.last_value,
                      "last_at": time_text(row.last_at)} for row in listing.rows]
            page, pages = page + 1, listing.pages
    if as_json:
        click.echo(json.dumps(rows, ensure_ascii=False, indent=2))
        return
    for row in rows:
        state = f"removed {row['removed_at']}" if row["removed_at"] else "in service"
        click.echo(f"{row['code']:<16} {row['role']:<14} line {row['line'] or '-':<5} account {row['account'] or '-':<10} "
                   f"{state}  last {row['last_value'] or '-'} {row['last_at']}")
    click.echo(f"{len(rows)} meters at {site.code}")


COMMANDS = [register_import, register_export, account_cmd, meter_cmd, meters_cmd]
