"""``balans cloud …``: set up and run the cloud from the command line (also under ``flask --app cloud``)."""

from __future__ import annotations

import json
import sys
from datetime import date
from decimal import Decimal

import click
from flask import Flask, current_app
from flask.cli import with_appcontext
from sqlalchemy import select

from cloud.billing.commands import BILLING_COMMANDS
from cloud.db import session_scope
from cloud.payments_cli import PAYMENT_COMMANDS


def _app() -> Flask:
    return current_app._get_current_object()


def _site(db, code: str):
    from cloud.models import Site

    site = db.scalar(select(Site).where(Site.code == code))
    if site is None:
        raise click.ClickException(f"site {code!r} does not exist")
    return site


def _org(db, ref: str):
    from cloud.models import Organisation

    org = db.get(Organisation, int(ref)) if ref.isdigit() else db.scalar(
        select(Organisation).where(Organisation.name == ref))
    if org is None:
        raise click.ClickException(f"organisation {ref!r} does not exist (give its id or exact name)")
    return org


@click.group("db")
def db_group():
    """Database schema (Alembic migrations)."""


@db_group.command("upgrade")
@with_appcontext
def db_upgrade():
    """Apply all migrations.  Example: balans cloud db upgrade"""
    from cloud.migrate import upgrade

    upgrade(current_app.config["DATABASE_URL"])
    click.echo("database is at the latest schema")


@click.command("create-org")
@click.option("--name", required=True)
@click.option("--kind", required=True, help="cooperative | osbb | cottage_town | supplier | heat")
@click.option("--edrpou", default="")
@click.option("--iban", default="")
@click.option("--address", default="")
@with_appcontext
def create_org(name, kind, edrpou, iban, address):
    """Create an organisation.  Example: balans cloud create-org --name "ОК Сосновий Бір" --kind cooperative"""
    from cloud.organisations import SetupError, create_organisation

    with session_scope(_app()) as db:
        try:
            org = create_organisation(db, name, kind, edrpou, iban, address)
        except SetupError as exc:
            raise click.ClickException(str(exc)) from exc
        click.echo(f"organisation {org.id}: {org.name}")


@click.command("create-user")
@click.option("--email", required=True)
@click.option("--password", prompt=True, hide_input=True, confirmation_prompt=True)
@click.option("--role", required=True)
@click.option("--org", "org_ref", default="", help="organisation id or exact name")
@click.option("--account", default="", help="account number (residents)")
@with_appcontext
def create_user_cmd(email, password, role, org_ref, account):
    """Create a user.  Example: balans cloud create-user --email boss@coop.ua --role manager --org 1"""
    from cloud.models import Account
    from cloud.organisations import SetupError, create_user

    with session_scope(_app()) as db:
        org = _org(db, org_ref) if org_ref else None
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


@click.command("create-site")
@click.option("--org", "org_ref", required=True)
@click.option("--code", required=True)
@click.option("--name", default="")
@with_appcontext
def create_site_cmd(org_ref, code, name):
    """Create a site (transformer station).  Example: balans cloud create-site --org 1 --code TP-118"""
    from cloud.organisations import create_site

    with session_scope(_app()) as db:
        site = create_site(db, _org(db, org_ref), code, name)
        click.echo(f"site {site.code}")


@click.command("set-tariff")
@click.option("--org", "org_ref", required=True)
@click.option("--kind", default="cooperative", help="cooperative | supplier | heat")
@click.option("--price", required=True, help="UAH/kWh (purchase price for a cooperative, sale price for a supplier), "
              "UAH/Gcal for heat")
@click.option("--coefficient", default="1", help="approved coefficient for losses and maintenance")
@click.option("--from", "valid_from", required=True, help="YYYY-MM-DD")
@click.option("--to", "valid_to", default="", help="YYYY-MM-DD, inclusive (open-ended without)")
@click.option("--segment", default="", help="supplier: the customer segment (account category) this grid is for")
@click.option("--zones", default="", help="time of use: day=1,night=0.5 or night=0.4,half_peak=1,peak=1.5")
@click.option("--fee", default="0", help="fixed monthly fee per account, UAH")
@click.option("--fee-name", default="", help="as printed, e.g. «абонентська плата»")
@with_appcontext
def set_tariff_cmd(org_ref, kind, price, coefficient, valid_from, valid_to, segment, zones, fee, fee_name):
    """Add a tariff.  Example: balans cloud set-tariff --org 1 --price 4.20 --coefficient 1.15 --from 2026-01-01

    A supplier's two-zone household grid: --kind supplier --segment household --price 4.32 --zones day=1,night=0.5;
    heat: --kind heat --price 1654.18 --fee 30 --fee-name "абонентська плата".
    """
    from cloud.organisations import SetupError, set_tariff

    try:
        zone_map = {z.split("=")[0].strip(): Decimal(z.split("=")[1]) for z in zones.split(",") if z.strip()}
    except (IndexError, ArithmeticError) as exc:
        raise click.ClickException(f"--zones must look like day=1,night=0.5, got {zones!r}") from exc
    with session_scope(_app()) as db:
        try:
            tariff = set_tariff(db, _org(db, org_ref), kind, Decimal(price), Decimal(coefficient),
                                date.fromisoformat(valid_from), date.fromisoformat(valid_to) if valid_to else None,
                                segment=segment, zones=zone_map or None, monthly_fee=Decimal(fee), fee_name=fee_name)
        except SetupError as exc:
            raise click.ClickException(str(exc)) from exc
        click.echo(f"tariff {tariff.id}")


@click.command("enrolment-token")
@click.option("--site", "site_code", required=True)
@click.option("--hours", default=72, show_default=True)
@with_appcontext
def enrolment_token(site_code, hours):
    """Issue a one-time enrolment token for a site.  Example: balans cloud enrolment-token --site TP-118"""
    from cloud.enrolment import issue_token

    with session_scope(_app()) as db:
        click.echo(issue_token(db, _site(db, site_code), hours))


@click.command("balance")
@click.option("--site", "site_code", required=True)
@click.option("--period", required=True, help="YYYY-MM")
@with_appcontext
def balance_cmd(site_code, period):
    """The site's micro-balance as JSON.  Example: balans cloud balance --site TP-118 --period 2026-10"""
    from cloud.site_balance import site_balance

    with session_scope(_app()) as db:
        click.echo(json.dumps({"period": period, **site_balance(db, _site(db, site_code), period).as_json()},
                              ensure_ascii=False, indent=2))


@click.command("bill")
@click.option("--site", "site_code", required=True)
@click.option("--period", required=True, help="YYYY-MM")
@click.option("--issue", is_flag=True, help="issue the invoices (otherwise a draft preview)")
@click.option("--json", "as_json", is_flag=True)
@with_appcontext
def bill(site_code, period, issue, as_json):
    """Billing run for a site and period.  Example: balans cloud bill --site TP-118 --period 2026-10 --issue"""
    from cloud.billing.run import BillingError, billing_run

    with session_scope(_app()) as db:
        try:
            result = billing_run(db, _site(db, site_code), period, issue=issue, actor="cli")
        except BillingError as exc:
            raise click.ClickException(str(exc)) from exc
    if as_json:
        click.echo(json.dumps(result.as_json(), ensure_ascii=False, indent=2))
    else:
        recovery = result.summary.get("cost_recovery_pct")
        click.echo(f"{result.status}: {result.invoices} invoices, {result.summary['distributed_uah']} UAH"
                   + (f", cost recovery {recovery} %" if recovery else "")
                   + (f", {result.summary['estimated']} estimated" if result.summary.get("estimated") else ""))
        for problem in result.problems:
            click.echo(f"  ! {problem}", err=True)


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
    from datetime import datetime

    from cloud.evidence import verify_gateway
    from cloud.models import Gateway

    with session_scope(_app()) as db:
        gateway = db.scalar(select(Gateway).where(Gateway.code == gateway_code))
        if gateway is None:
            raise click.ClickException(f"gateway {gateway_code!r} is not enrolled")
        report = verify_gateway(db, gateway, datetime.fromisoformat(since) if since else None,
                                datetime.fromisoformat(until) if until else None)
    if as_json:
        click.echo(json.dumps(report.as_json(), ensure_ascii=False, indent=2))
    else:
        click.echo(f"{report.gateway}: {report.batches} batches ({report.first_seq}…{report.last_seq}), "
                   f"{'all verify' if report.ok else f'{len(report.problems)} problems'}"
                   + (f", gaps {report.gaps}" if report.gaps else ""))
        for problem in report.problems:
            click.echo(f"  ! {problem}")
    if not report.ok:
        sys.exit(1)


@click.command("evidence")
@click.option("--line", "line_number", required=True)
@click.option("--site", "site_code", default="", help="needed when several sites have that line number")
@click.option("--period", required=True, help="YYYY-MM")
@click.option("--out", "out", required=True, type=click.Path(file_okay=False))
@with_appcontext
def evidence(line_number, site_code, period, out):
    """Export a line's raw signed batches, the gateway keys and a README for an inspector.

    Example: balans cloud evidence --site TP-118 --line 4 --period 2026-10 --out evidence-line4
    """
    from pathlib import Path

    from cloud.evidence import export_evidence, find_line

    with session_scope(_app()) as db:
        try:
            site, line = find_line(db, line_number, site_code or None)
            manifest = export_evidence(db, site, line, period, Path(out))
        except ValueError as exc:
            raise click.ClickException(str(exc)) from exc
    click.echo(f"{len(manifest['batches'])} batches of line {line_number} ({site.code}, {period}) in {out}/")


@click.command("revoke-gateway")
@click.option("--gateway", "gateway_code", required=True)
@click.option("--reason", default="", help="kept in the audit log")
@with_appcontext
def revoke_gateway(gateway_code, reason):
    """Revoke a gateway: its batches are refused from now on (stolen or replaced device).

    Example: balans cloud revoke-gateway --gateway gw-tp-118 --reason "stolen from the cabinet"
    """
    from cloud.gateways import revoke
    from cloud.models import Gateway

    with session_scope(_app()) as db:
        gateway = db.scalar(select(Gateway).where(Gateway.code == gateway_code))
        if gateway is None:
            raise click.ClickException(f"gateway {gateway_code!r} is not enrolled")
        revoke(db, gateway, "cli", reason)
    click.echo(f"gateway {gateway_code} revoked")


@click.command("backup")
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False))
@with_appcontext
def backup_cmd(out):
    """A consistent backup while the app runs (SQLite online backup; pg_dump for PostgreSQL).

    Example: balans cloud backup --out /var/backups/balans/$(date +%F).dump
    """
    from pathlib import Path

    from cloud.backup import BackupError, backup

    try:
        path = backup(current_app.config["DATABASE_URL"], Path(out))
    except BackupError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"backup written to {path} ({path.stat().st_size} bytes)")


@click.command("restore")
@click.argument("source", type=click.Path(exists=True, dir_okay=False))
@with_appcontext
def restore_cmd(source):
    """Restore a backup into the configured (empty) database.

    Example: BALANS_DATABASE_URL=postgresql+psycopg://…/balans_new balans cloud restore 2026-11-22.dump
    """
    from pathlib import Path

    from cloud.backup import BackupError, restore

    try:
        restore(current_app.config["DATABASE_URL"], Path(source))
    except BackupError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo("restored")


@click.command("invoices")
@click.option("--site", "site_code", required=True)
@click.option("--period", required=True, help="YYYY-MM")
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False))
@with_appcontext
def invoices_cmd(site_code, period, out):
    """All invoices of a run as one PDF.  Example: balans cloud invoices --site TP-118 --period 2026-10 --out r.pdf"""
    from pathlib import Path

    from cloud.billing.delivery import run_pdf

    with session_scope(_app()) as db:
        pdf = run_pdf(db, _site(db, site_code), period)
    Path(out).write_bytes(pdf)
    click.echo(f"{out}: {len(pdf)} bytes")


@click.command("email-invoices")
@click.option("--site", "site_code", required=True)
@click.option("--period", required=True, help="YYYY-MM")
@with_appcontext
def email_invoices(site_code, period):
    """Queue an e-mail with the PDF for every issued invoice (sent by send-mail).

    Example: balans cloud email-invoices --site TP-118 --period 2026-10 && balans cloud send-mail
    """
    from cloud.billing.delivery import queue_invoice_emails

    with session_scope(_app()) as db:
        click.echo(f"{queue_invoice_emails(db, _site(db, site_code), period)} e-mails queued")


@click.command("send-mail")
@with_appcontext
def send_mail():
    """Send queued e-mail over SMTP (BALANS_SMTP_*) and Telegram messages (BALANS_TELEGRAM_TOKEN, _API).

    Example: BALANS_SMTP_HOST=mail.example.ua balans cloud send-mail
    """
    from cloud.mail import SmtpSender, TelegramSender, send_pending

    config = current_app.config
    sender = SmtpSender(config["SMTP_HOST"], int(config["SMTP_PORT"]), config["SMTP_USER"],
                        config["SMTP_PASSWORD"], str(config["SMTP_STARTTLS"]).lower() in ("1", "true", "yes"))
    telegram = TelegramSender(config["TELEGRAM_TOKEN"], config["TELEGRAM_API"]) if config["TELEGRAM_TOKEN"] else None
    with session_scope(_app()) as db:
        result = send_pending(db, sender, config["MAIL_FROM"], telegram=telegram)
    click.echo(f"{result['sent']} sent, {result['failed']} failed (will be retried)")


@click.command("import-statement")
@click.option("--org", "org_ref", required=True, help="organisation id or exact name")
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
@click.option("--format", "fmt", default="camt053", show_default=True, help="camt053, csv:MAPPING "
              "(csv:privatbank-business, csv:monobank-business) or csv:path/to/mapping.toml")
@click.option("--json", "as_json", is_flag=True)
@with_appcontext
def import_statement_cmd(org_ref, path, fmt, as_json):
    """Import a bank statement: whole or nothing; a re-import adds nothing.

    Example: balans cloud import-statement --org 1 statement-2026-11-03.xml --json
    """
    from pathlib import Path

    from cloud.payments.importer import import_statement
    from cloud.payments.statement import StatementError

    with session_scope(_app()) as db:
        try:
            result = import_statement(db, _org(db, org_ref), Path(path).read_bytes(), Path(path).name, fmt, "cli")
        except (StatementError, ValueError) as exc:
            raise click.ClickException(str(exc)) from exc
    if as_json:
        click.echo(json.dumps(result.as_json(), ensure_ascii=False, indent=2))
    else:
        click.echo(f"{result.imported} imported ({result.matched} matched, {result.unmatched} unmatched), "
                   f"{result.duplicates} already there; {result.total:.2f} UAH"
                   + (f"; {result.reversed} reversed ({result.reversed_total:.2f} UAH"
                      + (f", {result.partial_refunds} of them partial refunds" if result.partial_refunds else "")
                      + ")" if result.reversed else "")
                   + (f"; {result.unlinked_reversals} reversals to link (balans cloud unmatched)"
                      if result.unlinked_reversals else "")
                   + (f"; {result.conflicting_ibans} payer IBANs no longer trusted" if result.conflicting_ibans
                      else ""))


@click.command("remind")
@click.option("--org", "org_ref", required=True)
@with_appcontext
def remind(org_ref):
    """Queue reminders to debtors by the organisation's rules (once per rule, account and month).

    Example: balans cloud remind --org 1 && balans cloud send-mail
    """
    from datetime import date

    from cloud.reminders import queue_reminders

    with session_scope(_app()) as db:
        click.echo(f"{queue_reminders(db, _org(db, org_ref), date.today())} reminders queued")


@click.command("report")
@click.argument("kind", type=click.Choice(["turnover", "debtors", "payments", "collection", "consumption", "revenue",
                                          "regulator"]))
@click.option("--org", "org_ref", required=True, help="organisation id or exact name")
@click.option("--period", required=True, help="YYYY-MM")
@click.option("--format", "fmt", type=click.Choice(["json", "csv", "xlsx"]), default="json", show_default=True)
@click.option("--out", "out", default="", type=click.Path(dir_okay=False), help="file to write (default: stdout; "
              "needed for xlsx)")
@click.option("--lang", type=click.Choice(["uk", "en"]), default="uk", show_default=True)
@with_appcontext
def report_cmd(kind, org_ref, period, fmt, out, lang):
    """A report as on the page: turnover (ОСВ), debtors, payments, collection, consumption, revenue, regulator.

    Example: balans cloud report turnover --org 1 --period 2026-10 --format xlsx --out osv-2026-10.xlsx
    """
    from pathlib import Path

    from cloud.report_export import export
    from cloud.reports import build_report

    if fmt == "xlsx" and not out:
        raise click.ClickException("--format xlsx needs --out FILE (a workbook is not for the terminal)")
    with session_scope(_app()) as db:
        try:
            report = build_report(db, _org(db, org_ref), kind, period, lang=lang)
        except ValueError as exc:
            raise click.ClickException(str(exc)) from exc
    body, _, _ = export(report, fmt)
    if out:
        Path(out).write_bytes(body)
        click.echo(f"{out}: {report.title}, {len(report.rows)} rows", err=True)
    else:
        click.echo(body.decode("utf-8"))


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True)
@click.option("--threads", default=8, show_default=True)
@with_appcontext
def serve(host, port, threads):
    """Serve the cloud with waitress (production: gunicorn 'cloud:create_app()').  Example: balans cloud serve"""
    from waitress import serve as waitress_serve

    click.echo(f"Balans cloud on http://{host}:{port}", err=True)
    sys.stderr.flush()
    waitress_serve(_app(), host=host, port=port, threads=threads, ident="balans")


COMMANDS = [create_org, create_user_cmd, create_site_cmd, set_tariff_cmd, enrolment_token, balance_cmd, bill, verify,
            evidence, revoke_gateway, backup_cmd, restore_cmd, invoices_cmd, email_invoices, send_mail,
            import_statement_cmd, remind, report_cmd, serve]

COMMANDS += PAYMENT_COMMANDS  # cash, unmatched, assign-payment, reverse-payment, link-reversal
COMMANDS += BILLING_COMMANDS  # correct, heating-season, set-account, enter-reading, import-readings, replace-meter


def register_flask_commands(app: Flask) -> None:
    app.cli.add_command(db_group)
    for command in COMMANDS:
        app.cli.add_command(command)


def cloud_group() -> click.Group:
    """``balans cloud``: the same commands with an app built from BALANS_* settings."""
    from flask.cli import FlaskGroup

    def make_app():
        from cloud import create_app

        return create_app()

    group = FlaskGroup(name="cloud", create_app=make_app, add_default_commands=False, add_version_option=False,
                       load_dotenv=False, set_debug_flag=False,
                       help="The cloud: database, organisations, users, billing, server.")
    group.add_command(db_group)
    for command in COMMANDS:
        group.add_command(command)
    return group
